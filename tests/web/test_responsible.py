"""On the pages, as in the API: only members who act own engagements or take alerts, and naming another
company's member is an error, never a silent unassignment."""

from engagement.models import Engagement
from metrics.models import Alert
from tenants.scoping import tenant_scope
from tests.factories import MemberFactory
from tests.web.conftest import snapshot
from tests.web.test_pages import text


def _alert(world):
    with tenant_scope(world.tenant):
        return Alert.objects.get(pk=world.alert.pk)


def test_assigning_an_alert_to_another_companys_member_is_an_error(acme, charlie, login):
    client = login(acme.members["service"])
    client.post(acme.path(f"alerts/{acme.alert.id}/acknowledge/"), {"assignee": ""})  # taken by service
    before = snapshot(acme)
    for assignee in (str(charlie.members["owner"].pk), "not-a-member"):
        response = client.post(acme.path(f"alerts/{acme.alert.id}/assign/"), {"assignee": assignee}, follow=True)
        assert response.status_code == 200
        assert "That person is not a member of this company." in text(response)
    assert snapshot(acme) == before
    assert _alert(acme).assignee_id == acme.members["service"].pk


def test_an_alert_goes_to_a_viewer_never(acme, login):
    client = login(acme.members["service"])
    before = snapshot(acme)
    response = client.post(
        acme.path(f"alerts/{acme.alert.id}/assign/"), {"assignee": str(acme.members["viewer"].pk)}, follow=True
    )
    assert "viewer@acme.test is a viewer" in text(response)
    assert snapshot(acme) == before


def test_the_menus_offer_only_members_who_act(acme, login):
    MemberFactory(tenant=acme.tenant, user__email="gone@acme.test", role="owner", is_active=False)
    client = login(acme.members["owner"])
    for page in (f"engagements/{acme.engagement.id}/", "alerts/"):
        shown = text(client.get(acme.path(page)))
        assert "owner@acme.test" in shown or "Owner" in shown, page
        assert "viewer@acme.test" not in shown, page
        assert "gone@acme.test" not in shown, page


def test_an_engagement_is_not_handed_to_a_viewer(acme, login):
    client = login(acme.members["owner"])
    before = snapshot(acme)
    response = client.post(
        acme.path(f"engagements/{acme.engagement.id}/reassign/"), {"owner": "viewer@acme.test"}, follow=True
    )
    assert "viewer@acme.test is a viewer" in text(response)
    assert snapshot(acme) == before
    with tenant_scope(acme.tenant):
        assert Engagement.objects.get(pk=acme.engagement.pk).owner_id == acme.members["owner"].pk
