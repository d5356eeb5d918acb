"""Deactivating a member: they can no longer open the company, nobody can hand them anything, their
engagements are listed for a new owner; reactivating undoes it; the last admin stays."""

from django.test import Client

from engagement.models import Engagement
from tenants.models import Member
from tenants.scoping import tenant_scope
from tests.web.test_pages import text


def _active(world, role):
    with tenant_scope(world.tenant):
        return Member.objects.get(pk=world.members[role].pk).is_active


def test_a_deactivated_owner_loses_access_and_their_engagements_are_listed_for_a_new_owner(acme, login):
    admin = login(acme.members["admin"])
    response = admin.post(acme.path(f"settings/members/{acme.members['owner'].id}/active/"), {"active": "no"})
    assert response.status_code == 302
    assert response["Location"] == acme.path("engagements/?owner=owner%40acme.test")
    listed = text(admin.get(response["Location"]))
    assert acme.engagement.customer.name in listed and "Hand the ticked engagements to" in listed
    assert not _active(acme, "owner")
    assert "deactivated" in text(admin.get(acme.path("settings/")))

    owner = Client()
    acme.members["owner"].user.refresh_from_db()
    owner.force_login(acme.members["owner"].user)
    assert owner.get(acme.path()).status_code == 404, "a deactivated member still opens the company"
    handoff = {"engagement": [str(acme.engagement.id)], "owner": "owner@acme.test"}
    assert "is deactivated" in text(admin.post(acme.path("engagements/reassign/"), handoff, follow=True))

    admin.post(acme.path(f"settings/members/{acme.members['owner'].id}/active/"), {"active": "yes"})
    assert _active(acme, "owner")
    with tenant_scope(acme.tenant):
        assert Engagement.objects.get(pk=acme.engagement.pk).owner_id == acme.members["owner"].pk


def test_the_last_admin_cannot_be_deactivated_and_others_cannot_do_it(acme, login):
    admin = login(acme.members["admin"])
    page = admin.post(acme.path(f"settings/members/{acme.members['admin'].id}/active/"), {"active": "no"}, follow=True)
    assert "The company needs at least one active admin." in text(page)
    assert _active(acme, "admin")
    sales = acme.path(f"settings/members/{acme.members['sales'].id}/active/")
    assert login(acme.members["owner"]).post(sales, {"active": "no"}).status_code == 403
    assert _active(acme, "sales")
