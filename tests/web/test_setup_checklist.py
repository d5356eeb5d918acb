"""A new company's set-up checklist on the overview: each step ticks itself when done, the list goes when all
are, and an admin can hide it earlier."""

from django.utils import timezone

from engagement import assignment, imports
from tenants.actors import Actor
from tenants.api_keys import api_key_create
from tenants.models import AuditEntry
from tenants.scoping import tenant_scope
from tests.factories import MemberFactory, TenantFactory, make_offering
from tests.web.conftest import buy
from tests.web.test_pages import text

STEPS = (
    "Define a journey", "Invite your team", "Set assignment rules", "Bring customers in", "Record the first purchase",
)  # fmt: skip


def _ticked(page):
    """The steps shown as done, in order."""
    return [step for step in STEPS if f"Done: {step}" in page]


def test_each_step_ticks_itself_and_the_list_goes_when_all_are_done(db, login):
    tenant = TenantFactory(slug="fresh", name="Fresh")
    actor = Actor.system("tests")
    with tenant_scope(tenant):
        admin = MemberFactory(tenant=tenant, role="admin", user__email="admin@fresh.test")
    client = login(admin)
    page = text(client.get("/t/fresh/"))
    assert "Set up Fresh" in page and _ticked(page) == []
    assert 'href="/t/fresh/journeys/"' in client.get("/t/fresh/").content.decode()

    with tenant_scope(tenant):
        offering = make_offering(tenant, key="software")
        owner = MemberFactory(tenant=tenant, role="owner", user__email="owner@fresh.test")
    assert _ticked(text(client.get("/t/fresh/"))) == ["Define a journey", "Invite your team"]

    with tenant_scope(tenant):
        assignment.rule_add(
            tenant=tenant, actor=actor, offering=None, segment="", method="round_robin", members=[owner]
        )
        api_key_create(tenant=tenant, name="CRM", scope="write", actor=actor)
    assert _ticked(text(client.get("/t/fresh/")))[-1] == "Bring customers in"
    assert 'href="/t/fresh/settings/imports/"' in client.get("/t/fresh/").content.decode()

    with tenant_scope(tenant):
        buy(tenant, offering, actor, ref="first")
    assert "Set up Fresh" not in text(client.get("/t/fresh/"))


def test_an_import_that_stored_rows_brings_customers_in(db, login):
    tenant = TenantFactory(slug="fresh", name="Fresh")
    with tenant_scope(tenant):
        admin = MemberFactory(tenant=tenant, role="admin", user__email="admin@fresh.test")
        make_offering(tenant, key="software")
        run = imports.import_create(tenant=tenant, actor=Actor.system("tests"), kind="customers",
                                    filename="c.csv", raw=b"external_id,name\nC-1,One\n", start=True)  # fmt: skip
    client = login(admin)
    assert "Bring customers in" not in _ticked(text(client.get("/t/fresh/")))  # only uploaded
    with tenant_scope(tenant):
        imports.run_import(tenant, str(run.pk))
    assert "Bring customers in" in _ticked(text(client.get("/t/fresh/")))


def test_only_admins_see_it_and_an_admin_can_hide_it_for_everyone(acme, login):
    acme.tenant.setup_dismissed_at = None
    assert "Set up Acme" not in text(login(acme.members["owner"]).get(acme.path()))
    admin = login(acme.members["admin"])
    assert "Set up Acme" in text(admin.get(acme.path()))  # acme has no assignment rule yet
    assert login(acme.members["owner"]).post(acme.path("setup/dismiss/")).status_code == 403

    admin = login(acme.members["admin"])
    response = admin.post(acme.path("setup/dismiss/"), follow=True)
    assert "The set-up checklist is hidden." in text(response) and "Set up Acme" not in text(response)
    acme.tenant.refresh_from_db()
    assert acme.tenant.setup_dismissed_at <= timezone.now()
    with tenant_scope(acme.tenant):
        assert AuditEntry.objects.filter(action="tenant.setup_dismissed").count() == 1
