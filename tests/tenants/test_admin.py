"""/admin/: staff work inside one company at a time; superusers may choose any company, other staff
only their own tenants; non-staff get nothing.

Tenant A's data all carry "acme" (tenant "Acme", owner@acme.test, "acme buyer", "acme-p1", ...),
tenant B's "charlie", so a page leaks A's rows exactly when "acme" appears in it.
"""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

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
    """The rows of `model` that belong to `tenant` (a list, read in its scope), or None for models
    that hold no tenant data."""
    manager = model._default_manager
    with tenant_scope(tenant):
        if any(f.name == "tenant" for f in model._meta.fields):
            return list(manager.filter(tenant=tenant)[:1])
        if model is Tenant:
            return list(manager.filter(pk=tenant.pk))
        if model is User:
            return list(manager.filter(memberships__tenant=tenant).distinct()[:1])
    return None


def is_company_data(model):
    return any(f.name == "tenant" for f in model._meta.fields)


def choose(client, tenant, next_url=None):
    data = {"next": next_url} if next_url else {}
    response = client.post(reverse("admin:choose_company", args=[tenant.slug]), data)
    assert response.status_code == 302
    return response


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
def test_superuser_changelist_lists_the_chosen_companys_rows(data, superuser_client, model):
    for tenant, marker, other_marker in ((data[0], A, B), (data[1], B, A)):
        assert rows_of(model, tenant) != [], f"no {_label(model)} row of {marker}: the data fixture misses one"
        choose(superuser_client, tenant)
        # The rows, not the header's company switcher, which names every company.
        text = _text(superuser_client.get(_url(model, "changelist"))).split('id="content"', 1)[1]
        if rows_of(model, tenant) is not None:
            assert marker in text, f"{marker}'s {_label(model)} rows missing for a superuser working in it"
        if is_company_data(model):
            assert other_marker not in text, f"{_label(model)} shows {other_marker}'s rows inside {marker}"


@pytest.mark.parametrize("model", REGISTERED, ids=_label)
def test_staff_member_of_one_tenant_sees_none_of_another_tenants_rows(data, b_staff_client, model):
    response = b_staff_client.get(_url(model, "changelist"))
    assert response.status_code == 200
    assert A not in _text(response), f"{_label(model)} changelist shows tenant A's rows to B's staff"
    if rows_of(model, data[1]) is not None:
        assert B in _text(response), f"B's staff do not see B's own {_label(model)} rows"


def test_staff_cannot_choose_a_company_they_do_not_belong_to(data, b_staff_client):
    tenant, _ = data
    assert b_staff_client.post(reverse("admin:choose_company", args=[tenant.slug])).status_code == 404
    assert A not in _text(b_staff_client.get(_url(Customer, "changelist")))


def test_choosing_a_company_takes_a_post_and_returns_only_to_this_site(data, superuser_client):
    tenant, other = data
    url = reverse("admin:choose_company", args=[tenant.slug])
    assert superuser_client.get(url).status_code == 405, "a link (or a mail scanner) switched the company"
    customers = _url(Customer, "changelist")
    assert choose(superuser_client, tenant, customers)["Location"] == customers
    for elsewhere in ("https://evil.example/", "//evil.example/", "https:evil.example", "javascript:alert(1)"):
        assert choose(superuser_client, other, elsewhere)["Location"] == reverse("admin:index"), elsewhere


def test_the_company_switcher_posts(data, superuser_client):
    tenant, other = data
    choose(superuser_client, tenant)
    page = superuser_client.get(reverse("admin:index")).content.decode()
    switch = reverse("admin:choose_company", args=[other.slug])
    assert f'<form method="post" action="{switch}"' in page
    assert f'href="{switch}' not in page


@pytest.mark.parametrize("model", REGISTERED, ids=_label)
def test_change_page_of_another_tenants_object_is_not_shown_to_staff(data, b_staff_client, superuser_client, model):
    tenant, other = data
    rows = rows_of(model, tenant)
    if rows is None:
        pytest.skip(f"{_label(model)} holds no tenant data")
    theirs, ours = rows[0], rows_of(model, other)[0]

    response = b_staff_client.get(_url(model, "change", theirs.pk))
    assert response.status_code != 200
    assert A not in _text(response)
    # The same page of their own tenant's object opens, and a superuser working in A opens A's.
    assert b_staff_client.get(_url(model, "change", ours.pk)).status_code == 200
    choose(superuser_client, tenant)
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
    with tenant_scope(tenant):
        assert not Customer.objects.filter(external_id="into-a").exists()
    with tenant_scope(other):
        assert Customer.objects.get(external_id="into-b").tenant_id == other.pk


def test_offering_with_a_milestone_can_be_added_in_the_admin(data, superuser_client):
    _, other = data
    form = {
        "tenant": str(other.pk), "key": "admin-made", "name": "Admin made", "satisfaction_threshold": "4",
        "target_days": "5", "milestones-TOTAL_FORMS": "1", "milestones-INITIAL_FORMS": "0",
        "milestones-MIN_NUM_FORMS": "0", "milestones-MAX_NUM_FORMS": "1000", "milestones-0-order": "0",
        "milestones-0-key": "m1", "milestones-0-name": "M1", "milestones-0-due_day": "5", "milestones-0-is_pov": "on",
    }  # fmt: skip
    choose(superuser_client, other)
    response = superuser_client.post(_url(Offering, "add"), form)
    assert response.status_code == 302
    with tenant_scope(other):
        offering = Offering.objects.get(key="admin-made")
        assert offering.tenant_id == other.pk
        assert {m.tenant_id for m in Milestone.objects.filter(offering=offering)} <= {other.pk}
