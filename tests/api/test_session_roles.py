"""A signed-in member writing through the API (session and CSRF, as the browsable API does) may change
exactly what their role may change on the pages: journeys are the admins', the record the acting roles'."""

import json
import uuid

import pytest
from django.test import Client

from engagement.models import Offering
from tenants.models import ACTING_ROLES, ADMIN_ONLY, Role
from tenants.scoping import tenant_scope
from tenants.services import member_add

# Fixed, so every test process collects the same test ids.
NOWHERE = uuid.UUID("00000000-0000-4000-8000-00000000dead")
# Each write the API offers, with the roles its page allows. The bodies are empty or name nothing: a
# role that may write gets past the permission (and then a 400 or 404); one that may not gets a 403.
WRITES = [
    ("post", "customers/", ACTING_ROLES),
    ("post", "purchases/", ACTING_ROLES),
    ("post", "events/", ACTING_ROLES),
    ("post", "batch/", ACTING_ROLES),
    ("patch", f"engagements/{NOWHERE}/", ACTING_ROLES),
    ("post", f"alerts/{NOWHERE}/acknowledge/", ACTING_ROLES),
    ("post", f"alerts/{NOWHERE}/resolve/", ACTING_ROLES),
    ("post", "offerings/", ADMIN_ONLY),
    ("put", "offerings/software/", ADMIN_ONLY),
]


def _session(tenant, role):
    member = member_add(tenant=tenant, email=f"{role}@acme.test", role=role)[0]
    client = Client(enforce_csrf_checks=True)
    client.force_login(member.user)
    client.get(f"/t/{tenant.slug}/")  # sets the CSRF cookie, as opening any page does
    return client


def _write(client, method, path, body):
    send = getattr(client, method)
    return send(
        f"/api/v1/{path}?tenant=acme", data=json.dumps(body), content_type="application/json",
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )  # fmt: skip


@pytest.mark.parametrize("role", Role.values)
@pytest.mark.parametrize(("method", "path", "allowed"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_the_api_lets_a_role_write_what_its_pages_let_it(acme, software, role, method, path, allowed):
    response = _write(_session(acme, role), method, path, {})
    if role in allowed:
        assert response.status_code in (400, 404), (response.status_code, response.content[:300])
    else:
        assert response.status_code == 403, (response.status_code, response.content[:300])
        assert f"Your role ({Role(role).label}) cannot make this change" in response.json()["error"]["message"]


JOURNEY = {"key": "software", "name": "Renamed", "milestones": [{"key": "live", "name": "Live", "due_day": 9}]}


@pytest.mark.parametrize("role", ["owner", "sales", "service"])
def test_an_acting_role_changes_no_journey_through_the_api_or_the_page(acme, software, role):
    client = _session(acme, role)
    assert _write(client, "put", "offerings/software/", JOURNEY).status_code == 403
    assert _write(client, "post", "offerings/", {**JOURNEY, "key": "new"}).status_code == 403
    page = client.post(
        "/t/acme/journeys/new/", {"key": "new", "name": "New"}, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value
    )
    assert page.status_code == 403
    with tenant_scope(acme):
        assert list(Offering.objects.values_list("key", "name")) == [("software", "Software")]


def test_an_admin_changes_a_journey_through_the_api(acme, software):
    response = _write(_session(acme, "admin"), "put", "offerings/software/", JOURNEY)
    assert response.status_code == 200, response.content[:300]
    with tenant_scope(acme):
        assert Offering.objects.get(key="software").name == "Renamed"
