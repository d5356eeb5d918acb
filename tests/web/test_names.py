"""Pages show people and steps by name, never by key or email where a name exists, and dates carry the
year when it is not this year."""

from datetime import datetime

from django.utils import timezone

from engagement.models import Note
from engagement.templatetags.pov import day
from tenants.scoping import tenant_scope
from tests.web.test_pages import text


def _named(world):
    """Give the owner and the service member names; the milestones are named "Milestone 1" and so on."""
    for role, (first, last) in {"owner": ("Olga", "Owens"), "service": ("Sam", "Service")}.items():
        user = world.members[role].user
        user.first_name, user.last_name = first, last
        user.save(update_fields=["first_name", "last_name"])


def test_the_alert_queue_names_the_step_and_the_people(acme, login):
    _named(acme)
    client = login(acme.members["service"])
    client.post(acme.path(f"alerts/{acme.alert.id}/acknowledge/"), {"assignee": ""})
    page = text(client.get(acme.path("alerts/")))
    row = page[page.index("Stuck before") :]  # the table, not the header naming who is signed in
    assert "Milestone 1" in row and " m1 " not in row
    assert "Olga Owens" in row and "Sam Service" in row
    assert "owner@acme.test" not in row and "service@acme.test" not in row


def test_the_list_names_the_next_step_and_the_owner(acme, login):
    _named(acme)
    page = text(login(acme.members["owner"]).get(acme.path("engagements/")))
    assert "Milestone 1" in page and " m1 " not in page
    assert "Olga Owens" in page


def test_a_handoff_note_names_the_people(acme, login):
    _named(acme)
    login(acme.members["owner"]).post(
        acme.path(f"engagements/{acme.engagement.id}/reassign/"), {"owner": "service@acme.test", "note": "Yours."}
    )
    with tenant_scope(acme.tenant):
        body = Note.objects.get(engagement=acme.engagement).body
    assert "Owner: Olga Owens → Sam Service" in body


def test_a_day_shows_its_year_only_when_it_is_not_this_year():
    this_year = timezone.localtime(timezone.now()).year
    assert day(datetime(this_year, 3, 7, 12, tzinfo=timezone.get_current_timezone())) == "7 Mar"
    assert day(datetime(this_year - 1, 12, 24, 12, tzinfo=timezone.get_current_timezone())) == f"24 Dec {this_year - 1}"
    assert day(None) == ""


def test_the_timeline_says_who_recorded_each_line_by_name(acme, login):
    _named(acme)
    client = login(acme.members["owner"])
    detail = acme.path(f"engagements/{acme.engagement.id}/")
    client.post(detail + "note/", {"body": "Called them."})
    client.post(detail + "milestone/", {"milestone": "m1", "occurred_at": ""})
    timeline = text(client.get(detail))
    timeline = timeline[timeline.index("Timeline") :]
    assert "Note by Olga Owens" in timeline and "Milestone 1 reached by Olga Owens" in timeline
    assert "owner@acme.test" not in timeline
