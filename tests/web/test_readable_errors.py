"""Errors a person can read: fields named as the form labels them, times in the zone they were given in,
and the journey row at fault highlighted."""

import re
from datetime import timedelta

from django.utils import timezone

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
