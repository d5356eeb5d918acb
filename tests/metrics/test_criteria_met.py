"""How often each offering's success criteria are met (docs/metrics.md, "Success criteria met"): each
customer's latest answer counts, the same words in any case are one criterion, the five most answered per
offering; the team page shows them for its filters, another company's answers never (the admins' digest:
tests/notify/test_digest_content.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from engagement.filters import EngagementFilter
from engagement.services import event_record
from metrics.queries import criteria_met
from tenants.scoping import tenant_scope
from tests.factories import MemberFactory, make_offering
from tests.web.conftest import buy
from tests.web.test_pages import text


def _answer(tenant, engagement, actor, answers, *, hours_ago=1):
    event_record(tenant=tenant, engagement=engagement, type="satisfaction", score=4, criteria_met=answers,
                 occurred_at=timezone.now() - timedelta(hours=hours_ago), actor=actor)  # fmt: skip


@pytest.fixture
def answered(tenant, other_tenant, actor):
    """Acme: software customers answered about "Invoices out in one day" (3 answers, 2 met) and two other
    criteria; a hardware customer about one; Charlie's customer answered too."""
    with tenant_scope(tenant):
        software, hardware = make_offering(tenant, key="software"), make_offering(tenant, key="hardware")
        first, second, third = (buy(tenant, software, actor, segment=s) for s in ("smb", "smb", "enterprise"))
        # The first customer changed their mind about invoices (only the latest answer counts) and was not
        # asked about training again (their earlier answer still counts).
        _answer(tenant, first, actor, {"Invoices out in one day": False, "Team trained": True}, hours_ago=5)
        _answer(tenant, first, actor, {"invoices out in one day": True})
        _answer(tenant, second, actor, {"invoices OUT in one day": True, "Reports by Monday": False}, hours_ago=3)
        _answer(tenant, third, actor, {"Invoices out in one day": False}, hours_ago=2)
        _answer(tenant, third, actor, None, hours_ago=0.5)  # a satisfaction event that answers nothing
        buy(tenant, software, actor)  # never answered
        _answer(tenant, buy(tenant, hardware, actor), actor, {"Arrives in a week": True})
    with tenant_scope(other_tenant):
        theirs = make_offering(other_tenant, key="software")
        _answer(other_tenant, buy(other_tenant, theirs, actor), actor, {"Invoices out in one day": False})
    return tenant


def test_each_customer_s_latest_answer_counts_per_offering_and_criterion(answered):
    with tenant_scope(answered):
        rows = criteria_met(EngagementFilter(), answered)
        by_segment = criteria_met(EngagementFilter(segment="enterprise"), answered)

    # Each criterion spelled as most recently written.
    assert [(r["offering"], r["criterion"], r["answered"], r["met"]) for r in rows] == [
        ("Hardware", "Arrives in a week", 1, 1),
        ("Software", "invoices out in one day", 3, 2),
        ("Software", "Reports by Monday", 1, 0),
        ("Software", "Team trained", 1, 1),
    ]
    assert rows[1]["share"] == pytest.approx(2 / 3)
    assert [(r["criterion"], r["answered"], r["met"]) for r in by_segment] == [("Invoices out in one day", 1, 0)]


def test_only_the_five_most_answered_criteria_of_an_offering_show(tenant, actor):
    with tenant_scope(tenant):
        offering = make_offering(tenant)
        for n in range(7):
            answers = {f"Criterion {c}": True for c in range(n + 1)}  # criterion 0 answered 7 times, 6 once
            _answer(tenant, buy(tenant, offering, actor), actor, answers)
        rows = criteria_met(EngagementFilter(), tenant)
    assert [(r["criterion"], r["answered"]) for r in rows] == [(f"Criterion {c}", 7 - c) for c in range(5)]


def test_the_team_page_shows_them_for_its_filters(answered, login):
    with tenant_scope(answered):
        admin = MemberFactory(tenant=answered, role="admin")
    client = login(admin)

    page = text(client.get(f"/t/{answered.slug}/team/"))
    filtered = text(client.get(f"/t/{answered.slug}/team/?offering=hardware"))

    assert "What customers expected, and got" in page
    assert "Software invoices out in one day 67 % 3" in page and "Reports by Monday 0 % 1" in page
    assert "Arrives in a week 100 % 1" in filtered and "Invoices out" not in filtered
