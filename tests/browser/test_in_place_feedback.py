"""An in-place action answers beside its controls, in a live region, and keeps focus where the person
acted (a real browser: htmx swaps the engagement in place)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.browser import test_dashboards as dashboards
from tests.browser.test_confirm_before import _signed_in, world  # noqa: F401 - `world` is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

browser = dashboards.browser


def test_success_and_failure_are_said_beside_the_controls_and_focus_stays(browser, live_server, world):  # noqa: F811
    expect = dashboards._expect()
    page = _signed_in(browser, live_server, "owner@acme.test")
    page.goto(f"{live_server.url}{world.path(f'engagements/{world.engagement.id}/')}")
    feedback = page.locator("#action-feedback")
    expect(feedback).to_have_attribute("aria-live", "polite")

    tomorrow = (timezone.localtime(timezone.now(), world.tenant.tzinfo) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("When").fill(tomorrow)
    page.get_by_role("button", name="Record milestone").click()
    expect(feedback.get_by_role("alert")).to_contain_text("Not saved")
    expect(feedback.get_by_role("alert")).to_contain_text("in the future")
    expect(page.locator(":focus")).to_have_text("Record milestone")  # htmx focuses once the swap settles

    page.get_by_role("button", name="Record milestone").click()  # "When" is now again
    expect(feedback.get_by_role("status")).to_have_text("Milestone recorded.")
    expect(page.locator(":focus")).to_have_text("Record milestone")

    page.get_by_role("button", name="Pause").click()
    expect(feedback.get_by_role("status")).to_have_text("Paused: the value clock stops.")
    expect(page.locator(":focus")).to_have_text("Resume")  # the control that took the acted one's place


def test_an_alert_row_says_what_happened_and_why_not(browser, live_server, world):  # noqa: F811
    expect = dashboards._expect()
    page = _signed_in(browser, live_server, "service@acme.test")
    page.goto(f"{live_server.url}{world.path('alerts/')}")
    row = page.locator(f"#alert-{world.alert.id}")
    row.get_by_role("button", name="Acknowledge").click()
    expect(row.get_by_role("status")).to_have_text("Acknowledged.")
    expect(page.locator(":focus")).to_have_text("Assign")

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Resolve").click()
    expect(row.get_by_role("status")).to_have_text("Resolved.")


def test_on_a_phone_the_message_shows_beside_the_acted_on_button(browser, live_server, world):  # noqa: F811
    expect = dashboards._expect()
    page = _signed_in(browser, live_server, "owner@acme.test")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}{world.path(f'engagements/{world.engagement.id}/')}")
    page.get_by_label("Note", exact=True).fill("Called the customer.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(":focus")).to_have_text("Add note")
    beside = page.locator(".done-here")
    expect(beside).to_have_text("Note added.")
    button, said = page.locator(":focus").bounding_box(), beside.bounding_box()
    assert 0 <= said["y"] - (button["y"] + button["height"]) < 40, (button, said)
