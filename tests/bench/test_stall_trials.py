"""The stalled-scan scenario's trials: undoing a scan (or the reference UPDATE) puts back every row it
changed, so each run meets the state the first one did, and each starts after the same idle."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bench import references, scenarios
from bench.scenarios import ScanUndo
from engagement import outbox
from engagement.models import Engagement, OutboxMessage, Status
from engagement.services import purchase_record
from metrics.alerts import stalled_scan
from metrics.models import Alert
from tests.factories import CustomerFactory, make_offering

DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


def _state():
    return (
        sorted(Engagement.objects.values_list("id", "status", "updated_at")),
        sorted(Alert.objects.values_list("id", "engagement_id", "step", "state", "opened_at", "escalated_at")),
        sorted(OutboxMessage.objects.values_list("id", "kind")),
    )


@pytest.fixture
def overdue_and_escalating(scoped, actor):
    """A scan time at which one engagement is newly overdue and another's alert is due to escalate."""
    offering = make_offering(scoped, due_days=(2, 7, 14))  # the first milestone is due on day 2
    now = timezone.now()
    for ref, bought in (("old", now - DAY), ("new", now)):
        purchase_record(
            tenant=scoped, external_id=ref, customer=CustomerFactory(tenant=scoped), offering=offering,
            purchased_at=bought, actor=actor,
        )  # fmt: skip
    first = now + DAY + timedelta(days=scoped.grace_days) + MINUTE
    stalled_scan(scoped, now=first)  # "old" stalls, with an alert
    return first + timedelta(days=scoped.escalation_days) + MINUTE


def test_undoing_a_scan_puts_back_every_row_it_changed(scoped, overdue_and_escalating):
    now = overdue_and_escalating
    before = _state()
    undo = ScanUndo(scoped, now)

    result = stalled_scan(scoped, now=now)
    assert (result["stalled"], result["opened"], result["escalated"]) == (1, 1, 1)
    assert _state() != before

    undo()
    assert _state() == before
    assert stalled_scan(scoped, now=now) == result  # the same work again


def test_undoing_the_reference_lets_the_scan_meet_the_same_rows(scoped, overdue_and_escalating):
    now = overdue_and_escalating
    before = _state()
    undo = ScanUndo(scoped, now)

    seconds, rows = references.stalled_update(scoped, now)
    assert rows == 1 and seconds > 0
    assert Engagement.objects.filter(status=Status.STALLED).count() == 2  # committed, not rolled back

    undo()
    assert _state() == before
    assert stalled_scan(scoped, now=now)["stalled"] == rows


def test_each_timed_run_starts_a_drain_window_after_the_last():
    clock, slept = [100.0], []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    idle = scenarios.Idle(clock=lambda: clock[0], sleep=sleep)  # at set-up
    for run_seconds in (0.25, 0.5):
        with idle:
            clock[0] += run_seconds
    assert slept == [outbox.DRAIN_WINDOW, outbox.DRAIN_WINDOW]

    clock[0] += outbox.DRAIN_WINDOW  # a pause long enough already
    with idle:
        pass
    assert slept[-1] == 0
