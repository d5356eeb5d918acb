"""Errors a person can read: fields named as the form labels them, times in the zone they were given in,
and the journey row at fault highlighted."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from engagement.models import Event
from tenants.scoping import tenant_scope
from tests.web.conftest import reach
from tests.web.test_pages import journey_post, text


def test_a_time_in_the_future_is_named_by_its_label_in_the_company_s_time(acme, login):
    berlin = timezone.localtime(timezone.now(), acme.tenant.tzinfo) + timedelta(days=2)
    response = login(acme.members["owner"]).post(
        acme.path(f"engagements/{acme.engagement.id}/milestone/"),
        {"milestone": "m1", "occurred_at": berlin.strftime("%Y-%m-%dT%H:%M")},
    )
    page = text(response)
    offset = berlin.strftime("%z")
    expected = f"When: {berlin.day} {berlin:%b %Y, %H:%M} (UTC{offset[:3]}:{offset[3:]}) is more than 5 minutes"
    assert expected in page, page[:2000]
    assert "occurred_at" not in page and "+01:00 is" not in page


def test_an_event_before_the_purchase_shows_both_times_in_the_same_zone(acme, login):
    before = timezone.localtime(acme.engagement.pos_at, acme.tenant.tzinfo) - timedelta(days=3)
    response = login(acme.members["owner"]).post(
        acme.path(f"engagements/{acme.engagement.id}/milestone/"),
        {"milestone": "m1", "occurred_at": before.strftime("%Y-%m-%dT%H:%M")},
    )
    message = re.search(r"When: .*? \((UTC[^)]*)\) is before the purchase \(.*? \((UTC[^)]*)\)\)", text(response))
    assert message, text(response)[:2000]
    assert message.group(1) == message.group(2) != "UTC", "both in the company's zone, not UTC"


def test_a_bad_journey_row_is_named_as_the_form_numbers_it_and_highlighted(acme, login):
    rows = [("a", "A", 5), ("b", "B", 9), ("c", "C", 4)]
    response = login(acme.members["admin"]).post(acme.path("journeys/new/"), journey_post("bad", rows))
    page = response.content.decode()
    assert response.status_code == 400
    assert "Milestone 3, due day: Due on day 4, before the milestone before it (day 9)." in text(response)
    assert "milestones.2" not in page
    highlighted = re.findall(r'<tr class="invalid">\s*<td>(\d+)</td>', page)
    assert highlighted == ["3"]
    assert page.count('aria-invalid="true"') == 3


@pytest.mark.parametrize(
    ("action", "body", "message"),
    [
        ("resumed", {}, "engagement is not paused."),
        ("reopened", {}, "engagement is not lost."),
        ("lost", {"reason": " "}, "Reason: Say why the customer was lost."),
        ("milestone", {"milestone": "m1", "occurred_at": ""}, "Milestone 1 was already reached on"),
    ],
)
def test_an_action_that_does_not_fit_the_engagement_now_is_refused_saying_why(
    acme, login, actor, action, body, message
):
    with tenant_scope(acme.tenant):
        reach(acme.tenant, acme.engagement, "m1", actor, days_ago=2)
        before = Event.objects.count()
    response = login(acme.members["owner"]).post(acme.path(f"engagements/{acme.engagement.id}/{action}/"), body)
    assert response.status_code == 400
    assert message in text(response), text(response)[:1500]
    with tenant_scope(acme.tenant):
        assert Event.objects.count() == before


def test_a_date_before_1970_is_named_plainly_whatever_the_zone_did_then(acme, login):
    response = login(acme.members["owner"]).post(
        acme.path(f"engagements/{acme.engagement.id}/milestone/"),
        {"milestone": "m1", "occurred_at": "0001-01-01T00:00"},
    )
    assert "When: 0001-01-01 is before 1970; give a date from 1970 on." in text(response)


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [("grace_days", "-1", "Grace days"), ("escalation_days", "0", "Escalation days"),
     ("time_zone", "Mars/Base", "Time zone"), ("at_risk_percent", "101", "At risk under (%)")],
)  # fmt: skip
def test_company_settings_errors_are_named_as_the_form_labels_them(acme, login, field, value, label):
    body = {"name": "Acme", "time_zone": "Europe/Berlin", "grace_days": "3", "escalation_days": "7",
            "at_risk_percent": "30", field: value}  # fmt: skip
    page = text(login(acme.members["admin"]).post(acme.path("settings/company/"), body, follow=True))
    assert f"{label}: " in page and f"{field}:" not in page, page[:2000]


def test_a_bad_due_day_names_its_row_and_keeps_every_row_as_typed(acme, login):
    rows = [("a", "Kickoff", 2), ("b", "Live", "1e1")]
    response = login(acme.members["admin"]).post(acme.path("journeys/new/"), journey_post("typed", rows))
    assert response.status_code == 400
    assert "Milestone 2, due day: '1e1' is not a whole number." in text(response)
    page = response.content.decode()
    assert 'value="Kickoff"' in page and 'value="1e1"' in page


def test_the_company_s_time_zone_is_chosen_among_real_zones(acme, login):
    page = login(acme.members["admin"]).get(acme.path("settings/")).content.decode()
    assert "<option selected>Europe/Berlin</option>" in page and "<option >UTC</option>" in page
    for odd in ("localtime", "Factory", "EST5EDT", "posixrules"):
        assert f">{odd}</option>" not in page


def test_a_paused_customer_can_be_marked_lost_and_the_page_offers_it(acme, login):
    client = login(acme.members["owner"])
    detail = acme.path(f"engagements/{acme.engagement.id}/")
    client.post(detail + "paused/", {})
    assert "Mark as lost" in text(client.get(detail))
    assert client.post(detail + "lost/", {"reason": "Went quiet for good"}).status_code == 302
    with tenant_scope(acme.tenant):
        acme.engagement.refresh_from_db()
    assert acme.engagement.status == "lost"
