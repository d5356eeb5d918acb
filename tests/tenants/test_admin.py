"""/admin/: superusers see every tenant, other staff only their own tenants' rows, non-staff nothing.

Tenant A's data all carry "acme" (tenant "Acme", owner@acme.test, "acme buyer", "acme-p1", ...),
tenant B's "charlie", so a page leaks A's rows exactly when "acme" appears in it.
"""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django_scopes import scopes_disabled

from engagement.models import Customer, Milestone, Offering
from tenants.models import Tenant, User
from tenants.scoping import tenant_scope
from tenants.services import member_add
from tests.tenants.test_scoping import _populate

A, B = "acme", "charlie"
REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


def _label(model):
    return model._meta.label


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def rows_of(model, tenant):
    """The rows of `model` that belong to `tenant`, or None for models that hold no tenant data."""
    manager = model._default_manager
    if any(f.name == "tenant" for f in model._meta.fields):
        return manager.filter(tenant=tenant)
    if model is Tenant:
        return manager.filter(pk=tenant.pk)
    if model is User:
        return manager.filter(memberships__tenant=tenant).distinct()
    return None


def _text(response):
    return response.content.decode().lower()


@pytest.fixture
def data(tenant, other_tenant, actor):
    _populate(tenant, A, actor)
    _populate(other_tenant, B, actor)
    return tenant, other_tenant


@pytest.fixture
def superuser_client(db):
    client = Client()
    client.force_login(User.objects.create_superuser(email="root@ops.test", password="unused-password-1"))
    return client


@pytest.fixture
def b_staff_client(data):
    _, other = data
    with tenant_scope(other):
        member, _ = member_add(tenant=other, email=f"staff@{B}.test", role="admin")
    user = member.user
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(Permission.objects.all())
    client = Client()
    client.force_login(user)
    return client


def test_every_registered_model_is_covered():
    labels = {_label(m) for m in REGISTERED}
    assert {"tenants.Tenant", "tenants.Member", "engagement.Customer", "engagement.OutboxMessage"} <= labels


@pytest.mark.parametrize("model", REGISTERED, ids=_label)
def test_superuser_changelist_lists_every_tenants_rows(data, superuser_client, model):
    response = superuser_client.get(_url(model, "changelist"))
    assert response.status_code == 200
    with scopes_disabled():
        for tenant, marker in zip(data, (A, B), strict=True):
            rows = rows_of(model, tenant)
            if rows is not None:
                assert rows.exists(), f"no {_label(model)} row of {marker}: the data fixture misses one"
                assert marker in _text(response), f"{marker}'s {_label(model)} rows missing for a superuser"


@pytest.mark.parametrize("model", REGISTERED, ids=_label)
def test_staff_member_of_one_tenant_sees_none_of_another_tenants_rows(data, b_staff_client, model):
    response = b_staff_client.get(_url(model, "changelist"))
    assert response.status_code == 200
    assert A not in _text(response), f"{_label(model)} changelist shows tenant A's rows to B's staff"
    with scopes_disabled():
        if rows_of(model, data[1]) is not None:
            assert B in _text(response), f"B's staff do not see B's own {_label(model)} rows"


@pytest.mark.parametrize("model", REGISTERED, ids=_label)
def test_change_page_of_another_tenants_object_is_not_shown_to_staff(data, b_staff_client, superuser_client, model):
    tenant, other = data
    with scopes_disabled():
        rows = rows_of(model, tenant)
        if rows is None:
            pytest.skip(f"{_label(model)} holds no tenant data")
        theirs = rows.first()
        ours = rows_of(model, other).first()

    response = b_staff_client.get(_url(model, "change", theirs.pk))
    assert response.status_code != 200
    assert A not in _text(response)
    # The same page of their own tenant's object opens, and a superuser opens A's.
    assert b_staff_client.get(_url(model, "change", ours.pk)).status_code == 200
    assert superuser_client.get(_url(model, "change", theirs.pk)).status_code == 200


@pytest.mark.parametrize("model", REGISTERED, ids=_label)
def test_add_page_offers_staff_no_choice_from_another_tenant(data, b_staff_client, model):
    response = b_staff_client.get(_url(model, "add"))
    if response.status_code == 403:
        pytest.skip(f"{_label(model)} cannot be added in the admin")
    assert response.status_code == 200
    assert A not in _text(response), f"the {_label(model)} add form offers tenant A's rows to B's staff"


@pytest.fixture
def non_staff_client(data):
    tenant, _ = data
    with tenant_scope(tenant):
        member, _ = member_add(tenant=tenant, email="viewer@acme.test", role="admin")
    client = Client()
    client.force_login(member.user)
    return client


@pytest.mark.parametrize("who", ["anonymous", "non-staff member"])
@pytest.mark.parametrize("model", REGISTERED, ids=_label)
def test_changelist_sends_non_staff_to_the_admin_login(data, non_staff_client, who, model):
    client = Client() if who == "anonymous" else non_staff_client
    url = _url(model, "changelist")
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


def _customer_form(tenant, external_id):
    return {"tenant": str(tenant.pk), "external_id": external_id, "name": "Form-made", "attributes": "{}"}


def test_staff_cannot_create_a_row_in_another_tenant(data, b_staff_client):
    tenant, other = data
    response = b_staff_client.post(_url(Customer, "add"), _customer_form(tenant, "into-a"))
    assert response.status_code == 200, "the form should be redisplayed with an error"
    assert "select a valid choice" in _text(response)
    response = b_staff_client.post(_url(Customer, "add"), _customer_form(other, "into-b"))
    assert response.status_code == 302
    with scopes_disabled():
        assert not Customer.objects.filter(external_id="into-a").exists()
        assert Customer.objects.get(external_id="into-b").tenant_id == other.pk


def test_offering_with_a_milestone_can_be_added_in_the_admin(data, superuser_client):
    _, other = data
    form = {
        "tenant": str(other.pk), "key": "admin-made", "name": "Admin made", "satisfaction_threshold": "4",
        "target_days": "5", "milestones-TOTAL_FORMS": "1", "milestones-INITIAL_FORMS": "0",
        "milestones-MIN_NUM_FORMS": "0", "milestones-MAX_NUM_FORMS": "1000", "milestones-0-order": "0",
        "milestones-0-key": "m1", "milestones-0-name": "M1", "milestones-0-due_day": "5", "milestones-0-is_pov": "on",
    }  # fmt: skip
    response = superuser_client.post(_url(Offering, "add"), form)
    assert response.status_code == 302
    with scopes_disabled():
        offering = Offering.objects.get(key="admin-made")
        assert offering.tenant_id == other.pk
        assert {m.tenant_id for m in Milestone.objects.filter(offering=offering)} <= {other.pk}
