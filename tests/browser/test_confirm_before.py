"""What cannot simply be taken back asks first, in a real browser: marking a customer lost, resolving an
alert, changing a role and revoking an API key. "Cancel" leaves everything as it was; "OK" does it, and a
lost customer can be reopened."""

import pytest

from engagement.models import Engagement, Status
from metrics.models import Alert
from tenants.models import ApiKey, Member
from tenants.scoping import tenant_scope
from tests.browser import test_dashboards as dashboards
from tests.web.conftest import build_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

browser = dashboards.browser
PASSWORD = "correct-horse-battery"


@pytest.fixture
def world(tenant, actor):
    world = build_world(tenant, actor)
    for member in world.members.values():
        member.user.set_password(PASSWORD)  # the factory sets it without saving it
        member.user.save(update_fields=["password"])
    return world


def _signed_in(browser, live_server, email):
    page = browser.new_context(viewport=dashboards.LAPTOP).new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/t/**")
    return page


def _answer(page, accept, questions):
    def on_dialog(dialog):
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", on_dialog)


def _state(world):
    with tenant_scope(world.tenant):
        return (
            Engagement.objects.get(pk=world.engagement.pk).status,
            Alert.objects.get(pk=world.alert.pk).state,
            Member.objects.get(pk=world.members["viewer"].pk).role,
            ApiKey.objects.filter(revoked_at__isnull=False).count(),
        )


def test_each_irreversible_action_asks_and_cancel_changes_nothing(browser, live_server, world):
    expect = dashboards._expect()
    page = _signed_in(browser, live_server, "admin@acme.test")
    before, questions = _state(world), []

    page.goto(f"{live_server.url}{world.path(f'engagements/{world.engagement.id}/')}")
    page.get_by_label("Reason").fill("Chose a competitor")
    _answer(page, False, questions)
    page.get_by_role("button", name="Mark as lost").click()

    page.goto(f"{live_server.url}{world.path('alerts/')}")
    _answer(page, False, questions)
    page.get_by_role("button", name="Resolve").click()

    page.goto(f"{live_server.url}{world.path('settings/')}")
    page.get_by_label("Role of viewer@acme.test").select_option("owner")
    _answer(page, False, questions)
    page.get_by_role("row", name="viewer@acme.test").get_by_role("button", name="Change").click()
    _answer(page, False, questions)
    page.get_by_role("button", name="Revoke").first.click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    assert len(questions) == 4, questions
    assert questions[0].startswith("Mark ") and "as lost?" in questions[0]
    assert "Revoke the key" in questions[3] and "cannot be undone" in questions[3]
    assert _state(world) == before


def test_ok_does_it(browser, live_server, world):
    page = _signed_in(browser, live_server, "owner@acme.test")
    questions = []
    page.goto(f"{live_server.url}{world.path(f'engagements/{world.engagement.id}/')}")
    page.get_by_label("Reason").fill("Chose a competitor")
    _answer(page, True, questions)
    page.get_by_role("button", name="Mark as lost").click()
    # Once lost, the engagement offers no "Mark as lost" any more.
    expect = dashboards._expect()
    expect(page.get_by_role("button", name="Mark as lost")).to_have_count(0)
    assert len(questions) == 1 and _state(world)[0] == Status.LOST

    # A loss can be taken back: focus is on "Reopen", and the timeline keeps both events.
    expect(page.locator(":focus")).to_have_text("Reopen")
    page.get_by_label("Why").fill("They came back")
    page.get_by_role("button", name="Reopen").click()
    expect(page.locator("#action-feedback").get_by_role("status")).to_have_text(
        "Reopened: the engagement is open again."
    )
    expect(page.get_by_role("button", name="Mark as lost")).to_have_count(1)
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("Lost — Chose a competitor")
    expect(timeline).to_contain_text("Reopened — They came back")
    assert _state(world)[0] != Status.LOST
