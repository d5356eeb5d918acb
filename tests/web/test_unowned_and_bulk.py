"""The unowned: the overview's figure links to them, the owner filter has them, and the list hands ticked
engagements to one owner at once (one handoff each, as on an engagement's page)."""

from engagement.models import Engagement, Note
from tenants.scoping import tenant_scope
from tests.web.conftest import buy, snapshot
from tests.web.test_pages import text


def _unowned(world, actor, n=2):
    with tenant_scope(world.tenant):
        return [buy(world.tenant, world.offering, actor, name=f"Nobody's {i}") for i in range(n)]


def test_the_unowned_figure_links_to_the_unowned_engagements(acme, login, actor):
    _unowned(acme, actor)
    client = login(acme.members["owner"])
    overview = client.get(acme.path()).content.decode()
    assert f'href="/t/{acme.tenant.slug}/engagements/?owner=unowned">2</a>' in overview
    listed = text(client.get(acme.path("engagements/"), {"owner": "unowned"}))
    assert "Nobody's 0" in listed and "Nobody's 1" in listed
    assert acme.engagement.customer.name not in listed  # owned by the owner
    summary = text(client.get(acme.path(), {"owner": "unowned"}))
    assert "2 of 2 customers" in summary or "of 2 customers" in summary


def test_ticked_engagements_are_handed_to_one_owner_with_a_handoff_each(acme, login, actor):
    nobody = _unowned(acme, actor)
    client = login(acme.members["owner"])
    response = client.post(
        acme.path("engagements/reassign/"),
        {"engagement": [str(e.id) for e in nobody], "owner": "service@acme.test", "note": "Service onboards these.",
         "next": acme.path("engagements/?owner=unowned")},
        follow=True,
    )  # fmt: skip
    assert response.redirect_chain[-1][0] == acme.path("engagements/?owner=unowned")
    assert "2 engagements handed to service@acme.test." in text(response)
    with tenant_scope(acme.tenant):
        owners = set(Engagement.objects.filter(id__in=[e.id for e in nobody]).values_list("owner_id", flat=True))
        notes = list(Note.objects.filter(engagement__in=nobody).values_list("body", flat=True))
    assert owners == {acme.members["service"].pk}
    assert len(notes) == 2 and all("Service onboards these." in body for body in notes)


def test_nothing_ticked_a_viewer_as_owner_or_another_company_s_ids_move_nothing(acme, charlie, login, actor):
    _unowned(acme, actor)
    client = login(acme.members["owner"])
    before = snapshot(acme), snapshot(charlie)
    path = acme.path("engagements/reassign/")
    assert "Tick the engagements to hand over first." in text(client.post(path, {"owner": ""}, follow=True))
    viewer = {"engagement": [str(acme.engagement.id)], "owner": "viewer@acme.test"}
    assert "viewer@acme.test is a viewer" in text(client.post(path, viewer, follow=True))
    theirs = {"engagement": [str(charlie.engagement.id)], "owner": "service@acme.test"}
    assert "0 engagements handed" in text(client.post(path, theirs, follow=True))
    assert (snapshot(acme), snapshot(charlie)) == before


def test_a_viewer_cannot_reassign_and_sees_no_ticks(acme, login):
    client = login(acme.members["viewer"])
    assert 'form="bulk"' not in client.get(acme.path("engagements/")).content.decode()
    response = client.post(acme.path("engagements/reassign/"), {"engagement": [str(acme.engagement.id)]})
    assert response.status_code == 403
