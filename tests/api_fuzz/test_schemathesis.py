"""Schemathesis over the whole OpenAPI schema, against the live app with a real write key:
no 5xx, and every response matches the schema (status code, content type, body)."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from engagement.services import event_record, offering_save, purchase_record
from tenants.actors import Actor
from tenants.api_keys import api_key_create
from tenants.scoping import tenant_scope
from tests.factories import CustomerFactory, TenantFactory

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.fixture
def fuzz_key(transactional_db):
    tenant = TenantFactory(slug="fuzz")
    actor = Actor.system("tests")
    with tenant_scope(tenant):
        milestones = [
            {"key": "kickoff", "name": "Kickoff", "due_day": 2},
            {"key": "used", "name": "Used", "due_day": 9},
        ]
        offering, _ = offering_save(tenant=tenant, key="software", name="Software", actor=actor, milestones=milestones)
        customer = CustomerFactory(tenant=tenant, external_id="C-1")
        purchase, _ = purchase_record(tenant=tenant, external_id="P-1", customer=customer, offering=offering,
                                      purchased_at=timezone.now() - timedelta(days=20), actor=actor)  # fmt: skip
        event_record(tenant=tenant, engagement=purchase.engagement, type="milestone", milestone="kickoff",
                     occurred_at=purchase.purchased_at + timedelta(days=1), actor=actor)  # fmt: skip
        return api_key_create(tenant=tenant, name="fuzz", scope="write", actor=actor)[1]


def test_every_operation_conforms_to_the_schema(live_server, fuzz_key, settings, tmp_path):
    settings.API_RATE_LIMIT = (1_000_000, 60)
    result = subprocess.run(
        [
            str(SCHEMATHESIS), "run", f"{live_server.url}/api/schema/",
            "--header", f"Authorization: Bearer {fuzz_key}",
            "--checks", CHECKS,
            "--max-examples", "12",
            "--seed", "20261122",
            "--workers", "1",
            "--request-timeout", "30",
            "--suppress-health-check", "all",
            "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    assert "No issues found" in result.stdout or "passed" in result.stdout.lower(), report
