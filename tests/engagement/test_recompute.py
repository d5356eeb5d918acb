"""The incremental projection equals a rebuild (docs/metrics.md): events recorded one at a time through
`event_record`, in any arrival order, leave exactly the rows `recompute` would write, and
`recompute` repairs rows that drifted.

`recompute` reads the clock itself, so the data keeps every status clear of the clock: old
purchases have all their events and due dates long past (stalled unless reached, lost or paused),
young ones are due far ahead (on track unless reached, lost or paused).
"""

import re
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engagement.models import Engagement, MilestoneReach
from engagement.services import event_record, purchase_record
from tests.factories import CustomerFactory, make_offering

EVENT_TYPES = ("milestone", "satisfaction", "lost", "paused", "resumed")
ENGAGEMENT_FIELDS = [f.attname for f in Engagement._meta.concrete_fields if f.name != "updated_at"]
REACH_FIELDS = [f.attname for f in MilestoneReach._meta.concrete_fields]


@dataclass(frozen=True)
class Age:
    """How long ago the purchase was, the span its events fall in, and the due days its journey uses."""

    ago: timedelta
    window: timedelta
    min_due: int
    max_due: int


AGES = {
    # Due by day 30; events (and so pauses) within 200 days; bought 400 days ago: past due + grace.
    "old": Age(ago=timedelta(days=400), window=timedelta(days=200), min_due=0, max_due=30),
    # Bought 30 days ago, nothing due before day 60: on track whatever the pauses.
    "young": Age(ago=timedelta(days=30), window=timedelta(days=29), min_due=60, max_due=365),
}


@dataclass(frozen=True)
class PlannedEvent:
    engagement: int
    type: str
    offset: timedelta  # after the purchase
    milestone: int
    score: int
    external_id: str | None
    replayed: bool  # sent twice with the same external_id


@st.composite
def journeys(draw, age):
    n = draw(st.integers(1, 4))
    due_days = sorted(draw(st.lists(st.integers(age.min_due, age.max_due), min_size=n, max_size=n)))
    return {
        "due_days": tuple(due_days),
        "requires_satisfaction": draw(st.booleans()),
        "threshold": draw(st.integers(1, 5)),
    }


@st.composite
def plans(draw):
    offerings = {name: draw(journeys(age)) for name, age in AGES.items()}
    engagements = draw(st.lists(st.sampled_from(sorted(AGES)), min_size=1, max_size=4))
    planned = []
    for index, name in enumerate(engagements):
        window_us = AGES[name].window // timedelta(microseconds=1)
        shared = draw(st.lists(st.integers(0, window_us), min_size=1, max_size=2))
        offsets = st.one_of(st.integers(0, window_us), st.sampled_from([0, *shared]))
        types = sorted(draw(st.sets(st.sampled_from(EVENT_TYPES), min_size=1)))
        n_milestones = len(offerings[name]["due_days"])
        for _ in range(draw(st.integers(0, 7))):
            type_ = draw(st.sampled_from(types))
            with_id = draw(st.booleans())
            planned.append(
                PlannedEvent(
                    engagement=index,
                    type=type_,
                    offset=timedelta(microseconds=draw(offsets)),
                    milestone=draw(st.integers(0, n_milestones - 1)),
                    score=draw(st.integers(1, 5)),
                    external_id=f"ev-{len(planned)}" if with_id else None,
                    replayed=with_id and draw(st.booleans()),
                )
            )
    arrival = draw(st.permutations(planned))
    return offerings, engagements, arrival


def snapshot():
    """Every projection row, every concrete field but updated_at."""
    return (
        list(Engagement.objects.order_by("id").values_list(*ENGAGEMENT_FIELDS)),
        list(MilestoneReach.objects.order_by("engagement_id", "milestone_id").values_list(*REACH_FIELDS)),
    )


def recompute():
    """Run the command; returns (rows changed, status changes) from its report."""
    out = StringIO()
    call_command("recompute", stdout=out, stderr=StringIO())
    found = re.search(r"(\d+) rows changed, (\d+) changed status", out.getvalue())
    assert found, out.getvalue()
    return int(found.group(1)), int(found.group(2))


def record(tenant, actor, engagement, event, now):
    kwargs = {
        "tenant": tenant,
        "engagement": engagement,
        "type": event.type,
        "occurred_at": engagement.pos_at + event.offset,
        "milestone": f"m{event.milestone + 1}" if event.type == "milestone" else None,
        "score": event.score if event.type == "satisfaction" else None,
        "external_id": event.external_id,
        "actor": actor,
        "now": now,
    }
    stored, created = event_record(**kwargs)
    assert created
    if event.replayed:
        again, created_again = event_record(**kwargs)
        assert not created_again and again.pk == stored.pk


def open_engagements(tenant, actor, offerings, ages, now):
    made = {
        name: make_offering(
            tenant,
            key=name,
            due_days=spec["due_days"],
            requires_satisfaction=spec["requires_satisfaction"],
            threshold=spec["threshold"],
        )
        for name, spec in offerings.items()
    }
    customer = CustomerFactory(tenant=tenant)
    engagements = []
    for index, name in enumerate(ages):
        purchase, _ = purchase_record(
            tenant=tenant, external_id=f"p-{index}", customer=customer, offering=made[name],
            purchased_at=now - AGES[name].ago, actor=actor, now=now,
        )  # fmt: skip
        engagements.append(purchase.engagement)
    return engagements


def check_plan(tenant, actor, plan):
    offerings, ages, arrival = plan
    now = timezone.now()
    engagements = open_engagements(tenant, actor, offerings, ages, now)
    for event in arrival:
        record(tenant, actor, engagements[event.engagement], event, now)

    before = snapshot()
    statuses = {e.pk: e.status for e in Engagement.objects.all()}
    for engagement, age in zip(engagements, ages, strict=True):
        # The data keeps the status clear of the clock (see the module docstring).
        assert statuses[engagement.pk] != ("on_track" if age == "old" else "stalled")
    assert recompute() == (0, 0)
    assert repr(snapshot()) == repr(before)

    # A drifted row is repaired: the command writes it back and reports the change.
    victim = engagements[0]
    wrong_status = "on_track" if statuses[victim.pk] == "lost" else "lost"
    Engagement.objects.filter(pk=victim.pk).update(
        status=wrong_status, pov_at=None, next_step="corrupt", days_to_value=-1.0, paused_days=F("paused_days") + 1
    )
    MilestoneReach.objects.filter(engagement_id=victim.pk).update(clock_days=F("clock_days") + 1)
    assert repr(snapshot()) != repr(before)
    assert recompute() == (1, 1)
    assert repr(snapshot()) == repr(before)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=plans())
def test_events_recorded_one_at_a_time_leave_what_recompute_would_write(scoped, actor, plan):
    note(repr(plan))
    # Each example runs in a savepoint that is rolled back, so examples do not see each other's rows.
    with transaction.atomic():
        check_plan(scoped, actor, plan)
        transaction.set_rollback(True)


def test_recompute_recreates_missing_and_deletes_stray_milestone_reaches(scoped, actor):
    now = timezone.now()
    offerings = {"young": {"due_days": (60, 90, 120), "requires_satisfaction": True, "threshold": 4}}
    (engagement,) = open_engagements(scoped, actor, offerings, ["young"], now)
    pos = engagement.pos_at
    # Out of order: the PoV milestone first, then an earlier milestone reported late, then the satisfaction.
    for type_, day, milestone, score in (
        ("milestone", 5, "m3", None),
        ("paused", 1, None, None),
        ("resumed", 3, None, None),
        ("milestone", 2, "m1", None),
        ("satisfaction", 6, None, 4),
    ):
        event_record(tenant=scoped, engagement=engagement, type=type_, occurred_at=pos + timedelta(days=day),
                     milestone=milestone, score=score, actor=actor, now=now)  # fmt: skip
    engagement.refresh_from_db()
    assert (engagement.status, engagement.pov_at) == ("reached", pos + timedelta(days=6))
    assert engagement.days_to_value == pytest.approx(4.0)
    reaches = {r.milestone.key: r.clock_days for r in MilestoneReach.objects.filter(engagement=engagement)}
    assert reaches == {"m1": pytest.approx(1.0), "m3": pytest.approx(3.0)}

    def reach_rows():
        return sorted(MilestoneReach.objects.values_list("milestone__key", "reached_at", "clock_days"))

    expected = reach_rows()
    m1 = MilestoneReach.objects.get(milestone__key="m1")
    m2 = engagement.offering.milestones.get(key="m2")
    # A stray row for a milestone that was never reached, and a missing one for m1.
    MilestoneReach.objects.create(tenant=scoped, engagement=engagement, milestone=m2, reached_at=pos, clock_days=0.0)
    m1.delete()
    assert reach_rows() != expected
    assert recompute() == (0, 0)  # the Engagement row itself was right
    assert reach_rows() == expected
    assert recompute() == (0, 0)
