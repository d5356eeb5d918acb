"""Fair scoreboards (docs/metrics.md, "Scoreboards"): ranked by the share reaching PoV by the target day only
with at least 20 engagements and an interval at most 30 points wide; ties by days to value, then name; the
rest after them, "too few to rank"."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from engagement.filters import EngagementFilter
from engagement.models import Customer, Engagement, Purchase, Status
from metrics.compute import empty_summary
from metrics.queries import scoreboard, scoreboard_row
from tenants.scoping import tenant_scope
from tests.factories import MemberFactory, TenantFactory, make_offering

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
_n = itertools.count()


def engagements(tenant, offering, owner, outcomes):
    """outcomes: [(status, clock day)] of ended engagements."""
    rows = []
    for status, day in outcomes:
        n = next(_n)
        pos_at = NOW - timedelta(days=day + 30)
        customer = Customer(tenant=tenant, external_id=f"c{n}", name=f"C{n}")
        purchase = Purchase(tenant=tenant, external_id=f"p{n}", customer=customer, offering=offering,
                            purchased_at=pos_at)  # fmt: skip
        rows.append((customer, purchase, Engagement(
            tenant=tenant, purchase=purchase, customer=customer, offering=offering, pos_at=pos_at, owner=owner,
            status=status, days_to_value=day if status == Status.REACHED else None,
            days_to_loss=day if status == Status.LOST else None,
        )))  # fmt: skip
    for model, objs in zip((Customer, Purchase, Engagement), zip(*rows, strict=True), strict=True):
        model.objects.bulk_create(objs)


@pytest.mark.django_db
def test_rank_by_share_by_the_target_ties_by_name_and_the_few_last():
    tenant = TenantFactory(slug="scoreboard")
    with tenant_scope(tenant):
        offering = make_offering(tenant, due_days=(14,))
        owner = {name: MemberFactory(tenant=tenant, user__email=f"{name}@scoreboard.test") for name in "abcde"}
        reached, lost = Status.REACHED, Status.LOST
        engagements(tenant, offering, owner["a"], [(reached, 5.0)] * 60 + [(lost, 3.0)] * 20)  # 75 %
        engagements(tenant, offering, owner["d"], [(reached, 10.0)] * 40 + [(lost, 2.0)] * 40)  # 50 %, tie with b
        engagements(tenant, offering, owner["b"], [(reached, 10.0)] * 40 + [(lost, 2.0)] * 40)
        engagements(tenant, offering, owner["e"], [(reached, 12.0)] * 40 + [(lost, 2.0)] * 40)  # 50 %, slower
        engagements(tenant, offering, owner["c"], [(reached, 1.0)] * 5)  # 100 %, but five customers
        rows = scoreboard(EngagementFilter(), tenant, "owner", now=NOW)["results"]

    order = [(row["owner"].split("@")[0], row["rankable"]) for row in rows]
    assert order == [("a", True), ("b", True), ("d", True), ("e", True), ("c", False)]
    assert rows[0]["reached_by_target"]["share"] == pytest.approx(0.75)
    assert rows[-1]["reached_by_target"]["share"] == pytest.approx(1.0)


def summary(purchases, share, low, high):
    return {**empty_summary(), "purchases": purchases, "reached_by_target": {"share": share, "low": low, "high": high}}


@pytest.mark.parametrize(
    ("key", "row", "rankable"),
    [
        ("a@x", summary(20, 0.5, 0.4, 0.7), True),  # 20 engagements, 30 points: just rankable
        ("a@x", summary(19, 0.5, 0.4, 0.6), False),  # too few
        ("a@x", summary(400, 0.5, 0.3, 0.61), False),  # too wide
        ("a@x", summary(400, 1.0, None, None), True),  # every one by the target: no interval, enough customers
        ("a@x", summary(19, 1.0, None, None), False),
        ("", summary(400, 0.5, 0.45, 0.55), False),  # nobody: the unowned are not ranked
    ],
)
def test_the_too_few_rule(key, row, rankable):
    assert scoreboard_row("owner", key, row)["rankable"] is rankable
