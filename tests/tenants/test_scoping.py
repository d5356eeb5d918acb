"""Tenant scoping fails closed: managers outside a scope, web requests, and the Celery task base."""

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.test import Client
from django.utils import timezone
from django_scopes import ScopeError

from engagement import assignment, imports
from engagement.models import Customer
from engagement.services import customer_upsert, event_record, note_add, offering_save, purchase_record
from metrics import backtest
from metrics.alerts import stalled_scan
from metrics.rollups import run_recompute
from pov.celery import app as celery_app
from tenants.api_keys import api_key_create
from tenants.models import IdempotencyKey, Member
from tenants.scoping import current_tenant, tenant_scope
from tenants.services import member_add
from tenants.tasks import TenantTask
from tests.factories import TenantFactory

# Apps whose tenant-owned models get a row per tenant below; every project app for the closed-manager check.
ISOLATED_APPS = ("tenants", "engagement", "metrics")
PROJECT_APPS = [a.label for a in apps.get_app_configs() if Path(a.path).parent == settings.BASE_DIR]
# Managers that are deliberately not scoped are named so a grep finds them (DESIGN.md).
UNSCOPED_MANAGER_NAMES = {"unscoped"}


def tenant_models(app_labels):
    return [
        model
        for model in apps.get_models()
        if model._meta.app_label in app_labels and any(f.name == "tenant" for f in model._meta.fields)
    ]


def _label(model):
    return model._meta.label


def test_the_model_list_is_not_empty():
    labels = {_label(m) for m in tenant_models(PROJECT_APPS)}
    assert {"tenants.Member", "engagement.Customer", "engagement.OutboxMessage"} <= labels


@pytest.mark.parametrize("model", tenant_models(PROJECT_APPS), ids=_label)
def test_every_scoped_manager_of_a_tenant_model_raises_outside_a_scope(db, model):
    assert model._default_manager.name == "objects"
    managers = [m for m in model._meta.managers if m.name not in UNSCOPED_MANAGER_NAMES]
    assert managers, f"{_label(model)} has no scoped manager"
    for manager in managers:
        with pytest.raises(ScopeError):
            list(manager.all())
        with pytest.raises(ScopeError):
            manager.filter(pk=uuid.uuid4()).exists()
        with pytest.raises(ScopeError):
            manager.count()


JOURNEY = [{"key": "kickoff", "name": "Kickoff", "due_day": 2}, {"key": "live", "name": "Live", "due_day": 9}]


def _populate(tenant, marker, actor):
    """One row (at least) of every tenant-owned model, written through the services."""
    now = timezone.now()
    with tenant_scope(tenant):
        owner, _ = member_add(tenant=tenant, email=f"owner@{marker}.test", role="owner")
        api_key_create(tenant=tenant, name=f"{marker} key", scope="read", actor=actor)  # + an AuditEntry
        IdempotencyKey.objects.create(tenant=tenant, key=f"{marker}-idem", request_hash="0" * 64)
        customer, _ = customer_upsert(tenant=tenant, external_id=f"{marker}-c1", name=f"{marker} buyer", actor=actor)
        offering, _ = offering_save(
            tenant=tenant, key="onboarding", name=f"{marker} onboarding", actor=actor,
            milestones=JOURNEY,
        )  # fmt: skip
        purchase, _ = purchase_record(
            tenant=tenant, external_id=f"{marker}-p1", customer=customer, offering=offering,
            purchased_at=now - timedelta(days=3), actor=actor, owner=owner,
        )  # fmt: skip
        engagement = purchase.engagement
        event_record(
            tenant=tenant, engagement=engagement, type="milestone", milestone="kickoff",
            occurred_at=now - timedelta(days=2), actor=actor,
        )  # fmt: skip
        note_add(tenant=tenant, engagement=engagement, body=f"{marker} called", actor=actor)
        # A second purchase long past due: stalled, with an open alert.
        purchase_record(
            tenant=tenant, external_id=f"{marker}-p2", customer=customer, offering=offering,
            purchased_at=now - timedelta(days=30), actor=actor,
        )  # fmt: skip
        stalled_scan(tenant, now=now)
        assignment.rule_add(tenant=tenant, actor=actor, offering=None, segment="", method="round_robin",
                            members=[owner])  # fmt: skip
        rows = b"external_id,name\n,nameless\n"
        run = imports.import_create(tenant=tenant, actor=actor, kind="customers", filename="c.csv", raw=rows,
                                    start=True)  # fmt: skip
        imports.run_import(tenant, str(run.pk))  # an Import and an ImportRejection (its row has no id)
        run_recompute(tenant, force=True)  # MetricRollup, RollupState and Forecast rows
        backtest.save(tenant, backtest.run(tenant, (now - timedelta(days=10)).date(), now))  # a BacktestRun


@pytest.fixture
def two_populated_tenants(tenant, other_tenant, actor):
    _populate(tenant, "acme", actor)
    _populate(other_tenant, "charlie", actor)
    return tenant, other_tenant


@pytest.mark.parametrize("model", tenant_models(ISOLATED_APPS), ids=_label)
def test_inside_a_tenants_scope_no_row_of_another_tenant_is_visible(two_populated_tenants, model):
    tenant, other = two_populated_tenants
    per_tenant = {}
    for each in (tenant, other):
        with tenant_scope(each):
            per_tenant[each.pk] = model._default_manager.filter(tenant=each).count()
    assert all(per_tenant.values()), f"no {_label(model)} row built for a tenant: add one to _populate"

    with tenant_scope(tenant):
        visible = list(model.objects.values_list("tenant_id", flat=True))
        assert model.objects.filter(tenant=other).count() == 0
    assert set(visible) == {tenant.pk}
    assert len(visible) == per_tenant[tenant.pk]

    with tenant_scope(other):
        assert set(model.objects.values_list("tenant_id", flat=True)) == {other.pk}


@pytest.mark.parametrize("not_a_tenant", [None, "acme", uuid.uuid4()], ids=["None", "slug", "uuid"])
def test_tenant_scope_refuses_anything_but_a_tenant(tenant, not_a_tenant):
    with pytest.raises(TypeError), tenant_scope(not_a_tenant):
        pytest.fail("the body ran without a tenant")
    assert current_tenant() is None
    with tenant_scope(tenant) as entered:
        assert entered == tenant and current_tenant() == tenant
    assert current_tenant() is None


# TenantScopeMiddleware ---------------------------------------------------------------------------


def _client_for(tenant, email, **member):
    with tenant_scope(tenant):
        created, _ = member_add(tenant=tenant, email=email, role=member.pop("role", "viewer"))
        if member:
            Member.unscoped.filter(pk=created.pk).update(**member)
    client = Client()
    client.force_login(created.user)
    return client


def test_anonymous_request_for_a_tenant_page_is_sent_to_login(tenant):
    response = Client().get("/t/acme/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/t/acme/"


def test_tenant_page_is_404_for_a_member_of_another_tenant(tenant, other_tenant):
    outsider = _client_for(other_tenant, "someone@charlie.test")
    response = outsider.get("/t/acme/")
    assert response.status_code == 404
    assert b"Acme" not in response.content
    # The same answer as for a tenant that does not exist.
    assert outsider.get("/t/no-such-tenant/").status_code == 404
    # And their own tenant's page works.
    assert outsider.get("/t/charlie/").status_code == 200


def test_tenant_page_is_404_for_an_inactive_member(tenant):
    former = _client_for(tenant, "former@acme.test", is_active=False)
    assert former.get("/t/acme/").status_code == 404


def test_tenant_page_runs_inside_the_members_tenant_scope(two_populated_tenants):
    tenant, _ = two_populated_tenants
    member = _client_for(tenant, "viewer@acme.test")
    response = member.get("/t/acme/")
    assert response.status_code == 200
    assert response.context["tenant"] == tenant
    # Each tenant has two engagements; the page counts only its own.
    assert response.context["summary"]["purchases"] == 2
    assert current_tenant() is None, "the scope ends with the request"


# TenantTask --------------------------------------------------------------------------------------


@celery_app.task(base=TenantTask, bind=True, name="tests.tenants.visible_customers")
def visible_customers(self, *, tenant):
    return tenant, current_tenant(), sorted(Customer.objects.values_list("name", flat=True))


def test_tenant_task_runs_its_body_inside_the_tenants_scope(two_populated_tenants):
    tenant, other = two_populated_tenants
    received, scoped_to, names = visible_customers(tenant_id=str(tenant.pk))
    assert received == tenant and scoped_to == tenant
    assert names == ["acme buyer"]
    assert visible_customers(tenant_id=str(other.pk))[2] == ["charlie buyer"]
    assert current_tenant() is None, "the scope ends with the task"


def test_tenant_task_does_nothing_for_a_deleted_tenant(db):
    gone = TenantFactory()
    gone_id = str(gone.pk)
    gone.delete()
    assert visible_customers(tenant_id=gone_id) is None
    assert visible_customers(tenant_id=str(uuid.uuid4())) is None
    # A live tenant does run (so the None above is not the task failing for another reason).
    assert visible_customers(tenant_id=str(TenantFactory().pk)) is not None


def test_tenant_task_needs_a_tenant_id(db):
    with pytest.raises(TypeError):
        visible_customers()
