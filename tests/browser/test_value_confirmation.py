"""The customer's value question in a real browser: the link from the email opens the question with its
answer chosen and the button focused, at a phone's width without sideways scrolling; sending it, with a
comment, records both (the browser's own Origin and CSRF handling included)."""

import re

import pytest
from django.utils import timezone

from engagement.models import Event, EventType
from engagement.services import success_criteria_set
from notify import confirmations
from notify.models import ValueConfirmation
from tenants.scoping import tenant_scope
from tests.browser import test_dashboards as dashboards
from tests.notify.test_confirmations import BUYER, _engagement, _offering, _reach_pov

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

browser, shots = dashboards.browser, dashboards.shots
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def link(tenant, actor):
    """The path of the "4 of 5" link a reached customer was sent."""
    engagement = _engagement(tenant, _offering(tenant), actor)
    _reach_pov(tenant, engagement, actor)
    with tenant_scope(tenant):
        confirmation = ValueConfirmation.objects.create(
            tenant=tenant, engagement=engagement, email=BUYER, claimed_at=timezone.now(), sent_at=timezone.now()
        )
        return f"/value/{confirmations.make_token(confirmation, 4)}/"


def _answers(tenant):
    with tenant_scope(tenant):
        scores = list(Event.objects.filter(type=EventType.SATISFACTION).values_list("score", flat=True))
        comments = list(ValueConfirmation.objects.values_list("comment", flat=True))
    return scores, comments


def test_the_customer_answers_with_one_button_and_adds_a_comment(browser, live_server, tenant, link, shots):
    expect = dashboards._expect()
    page = browser.new_context(viewport=PHONE).new_page()
    page.goto(live_server.url + link)

    expect(page.get_by_role("heading", level=1)).to_contain_text("give you the value you expected?")
    expect(page.get_by_role("radio", name=re.compile(r"^4\b"))).to_be_checked()
    expect(page.get_by_role("button", name="Send my answer")).to_be_focused()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "sideways scrolling"
    dashboards._shoot(page, shots, "value-question-phone")
    assert _answers(tenant) == ([], [""]), "opening the link answered"

    page.get_by_label("Anything you would like to add?").fill("Onboarding was quick.")
    page.get_by_role("button", name="Send my answer").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you!")
    expect(page.get_by_role("main")).to_contain_text("4 of 5")
    expect(page.get_by_role("main")).to_contain_text("We received your comment")
    dashboards._shoot(page, shots, "value-thanks-phone")
    assert _answers(tenant) == ([4], ["Onboarding was quick."])


def test_a_comment_sent_after_the_answer_is_kept(browser, live_server, tenant, link):
    expect = dashboards._expect()
    page = browser.new_context(viewport=dashboards.LAPTOP).new_page()
    page.goto(live_server.url + link)
    page.get_by_role("radio", name=re.compile(r"^5\b")).check()
    page.get_by_role("button", name="Send my answer").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you!")

    page.get_by_label("Anything you would like to add?").fill("And support answered within the hour.")
    page.get_by_role("button", name="Send comment").click()
    expect(page.get_by_role("main")).to_contain_text("We received your comment")
    assert _answers(tenant) == ([5], ["And support answered within the hour."])


def test_on_a_phone_the_customer_answers_about_each_success_criterion(browser, live_server, tenant, actor, shots):
    engagement = _engagement(tenant, _offering(tenant), actor)
    criteria = ["Invoices out in one day", "A month-end close without a single spreadsheet"]
    with tenant_scope(tenant):
        success_criteria_set(tenant=tenant, engagement=engagement, actor=actor, criteria=criteria)
    _reach_pov(tenant, engagement, actor)
    with tenant_scope(tenant):
        confirmation = ValueConfirmation.objects.create(
            tenant=tenant, engagement=engagement, email=BUYER, claimed_at=timezone.now(), sent_at=timezone.now()
        )
    expect = dashboards._expect()
    page = browser.new_context(viewport=PHONE).new_page()
    page.goto(live_server.url + f"/value/{confirmations.make_token(confirmation, 5)}/")

    first = page.get_by_role("group", name="Did you get: Invoices out in one day?")
    second = page.get_by_role("group", name=re.compile("Did you get: A month-end close"))
    first.get_by_role("radio", name="Yes").check()
    second.get_by_role("radio", name="No").check()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "sideways scrolling"
    dashboards._shoot(page, shots, "value-question-criteria-phone")
    page.get_by_role("button", name="Send my answer").click()

    expect(page.get_by_role("main")).to_contain_text("Invoices out in one day: yes")
    expect(page.get_by_role("main")).to_contain_text("A month-end close without a single spreadsheet: no")
    with tenant_scope(tenant):
        answered = Event.objects.get(type=EventType.SATISFACTION)
    assert (answered.score, answered.criteria_met) == (
        5, {"Invoices out in one day": True, "A month-end close without a single spreadsheet": False}
    )  # fmt: skip
