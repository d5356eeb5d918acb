"""The stalled scan and the alert lifecycle (docs/metrics.md, Alerts).

Time is frozen by passing `now` to the scan. Purchases are a day old by the real clock, so nothing is
due when they are recorded and every stall comes from a scan at a chosen instant; events lie in the
real past so event validation accepts them.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from engagement import outbox
from engagement.models import Engagement, OutboxMessage
from engagement.outbox import STALLED
from engagement.services import event_record, offering_save, purchase_record
from metrics.alerts import ALERT_OPENED, ALERT_RESOLVED, alert_resolve, stalled_scan, sync_alerts
from metrics.models import Alert
from tenants.scoping import tenant_scope
from tests.conftest import run_concurrently
from tests.factories import CustomerFactory, make_offering

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NOTHING = {"stalled": 0, "opened": 0, "resolved": 0, "escalated": 0}


@pytest.fixture
def pos():
    """The purchase time: one day ago, so the first milestone (day 2) is due tomorrow."""
    return timezone.now() - DAY


@pytest.fixture
def offering(scoped):
    return make_offering(scoped, due_days=(2, 7, 14))  # m1 on day 2, m2 on day 7, m3 (PoV) on day 14


@pytest.fixture
def engagement(scoped, offering, actor, pos):
    return _engagement(scoped, offering, actor, pos)


@pytest.fixture
def stalled(scoped, engagement):
    """The engagement stalled before m1 by a scan a minute past grace; returns (alert, scan time)."""
    now = engagement.next_due_at + _grace(scoped) + MINUTE
    stalled_scan(scoped, now=now)
    return Alert.objects.get(), now


def _engagement(tenant, offering, actor, purchased_at, external_id="p-1"):
    purchase, _ = purchase_record(
        tenant=tenant, external_id=external_id, customer=CustomerFactory(tenant=tenant), offering=offering,
        purchased_at=purchased_at, actor=actor,
    )  # fmt: skip
    return purchase.engagement


def _event(tenant, engagement, type_, occurred_at, actor, **extra):
    event_record(tenant=tenant, engagement=engagement, type=type_, occurred_at=occurred_at, actor=actor, **extra)


def _grace(tenant):
    return timedelta(days=tenant.grace_days)


def _status(engagement):
    return Engagement.objects.get(pk=engagement.pk).status


def test_due_milestone_stalls_only_after_grace_with_one_open_alert(scoped, engagement):
    due = engagement.next_due_at
    assert (engagement.status, engagement.next_step, due) == ("on_track", "m1", engagement.pos_at + 2 * DAY)

    assert stalled_scan(scoped, now=due + _grace(scoped) - MINUTE) == NOTHING
    assert _status(engagement) == "on_track"
    assert not Alert.objects.exists()

    now = due + _grace(scoped) + MINUTE
    assert stalled_scan(scoped, now=now) == {"stalled": 1, "opened": 1, "resolved": 0, "escalated": 0}
    assert _status(engagement) == "stalled"
    alert = Alert.objects.get()
    assert (alert.engagement_id, alert.step, alert.state, alert.due_at, alert.opened_at) == (
        engagement.pk, "m1", "open", due, now,
    )  # fmt: skip
    # Others learn of it through the outbox: a message listing the stalls, one listing the alerts.
    published = OutboxMessage.objects.filter(kind__in=("engagement.stalled", "alert.opened"))
    assert sorted((m.kind, m.payload) for m in published) == [
        ("alert.opened", {"alerts": [str(alert.pk)]}),
        ("engagement.stalled", {"engagements": [str(engagement.pk)], "from": "on_track", "to": "stalled"}),
    ]


def test_changing_grace_days_moves_the_threshold(scoped, engagement):
    now = engagement.next_due_at + 2 * DAY  # inside the factory's 3 days of grace
    stalled_scan(scoped, now=now)
    assert _status(engagement) == "on_track"

    scoped.grace_days = 1
    scoped.save(update_fields=["grace_days"])
    stalled_scan(scoped, now=now)
    assert _status(engagement) == "stalled"
    assert Alert.objects.get().step == "m1"


def test_paused_engagement_is_never_stalled(scoped, engagement, actor):
    _event(scoped, engagement, "paused", engagement.pos_at + 6 * HOUR, actor)
    # A year later the clock is still stopped: nothing is due, so nothing is overdue.
    result = stalled_scan(scoped, now=engagement.pos_at + 365 * DAY)
    paused = Engagement.objects.get(pk=engagement.pk)
    assert (paused.status, paused.next_due_at) == ("paused", None)
    assert result["stalled"] == 0
    assert not Alert.objects.exists()


def test_resumed_engagement_is_due_later_by_the_paused_time(scoped, engagement, actor):
    _event(scoped, engagement, "paused", engagement.pos_at + 6 * HOUR, actor)
    _event(scoped, engagement, "resumed", engagement.pos_at + 18 * HOUR, actor)
    shifted = engagement.pos_at + 2 * DAY + 12 * HOUR
    assert Engagement.objects.get(pk=engagement.pk).next_due_at == shifted

    # An hour past the unshifted due + grace: stalled without the pause, not with it.
    stalled_scan(scoped, now=shifted - 12 * HOUR + _grace(scoped) + HOUR)
    assert _status(engagement) == "on_track"
    stalled_scan(scoped, now=shifted + _grace(scoped) + MINUTE)
    assert _status(engagement) == "stalled"
    assert Alert.objects.get().due_at == shifted


def test_a_later_milestone_reached_first_makes_the_one_after_it_next(scoped, engagement, actor):
    _event(scoped, engagement, "milestone", engagement.pos_at + 6 * HOUR, actor, milestone="m2")
    moved = Engagement.objects.get(pk=engagement.pk)
    assert (moved.next_step, moved.next_due_at) == ("m3", engagement.pos_at + 14 * DAY)

    # m1 (day 2) was skipped: long past its due + grace the engagement is not stuck before it.
    stalled_scan(scoped, now=engagement.pos_at + 2 * DAY + _grace(scoped) + DAY)
    assert _status(engagement) == "on_track"
    stalled_scan(scoped, now=moved.next_due_at + _grace(scoped) + MINUTE)
    assert _status(engagement) == "stalled"
    assert Alert.objects.get().step == "m3"


@pytest.mark.parametrize("run", [stalled_scan, sync_alerts], ids=["stalled_scan", "sync_alerts"])
def test_reaching_the_step_resolves_its_alert_as_reached(scoped, engagement, stalled, actor, run):
    alert, now = stalled
    _event(scoped, engagement, "milestone", engagement.pos_at + 12 * HOUR, actor, milestone="m1")
    assert run(scoped, now=now)["resolved"] == 1
    alert.refresh_from_db()
    assert (alert.state, alert.resolution, alert.resolved_at) == ("resolved", "reached", now)
    assert Alert.objects.count() == 1  # m2 is not due yet: no new alert


@pytest.mark.parametrize(
    ("type_", "extra"), [("lost", {"reason": "Cancelled"}), ("milestone", {"milestone": "m3"})], ids=["lost", "pov"]
)
def test_an_ended_engagement_resolves_its_alert_as_ended(scoped, engagement, stalled, actor, type_, extra):
    alert, now = stalled
    _event(scoped, engagement, type_, engagement.pos_at + 12 * HOUR, actor, **extra)
    assert stalled_scan(scoped, now=now)["resolved"] == 1
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", "ended")


def test_an_alert_escalates_only_once_open_longer_than_escalation_days(scoped, stalled):
    alert, opened_at = stalled
    limit = timedelta(days=scoped.escalation_days)
    assert stalled_scan(scoped, now=opened_at + limit - MINUTE)["escalated"] == 0
    alert.refresh_from_db()
    assert alert.escalated_at is None

    later = opened_at + limit + MINUTE
    assert stalled_scan(scoped, now=later)["escalated"] == 1
    alert.refresh_from_db()
    assert (alert.state, alert.escalated_at) == ("open", later)


def test_an_alert_resolved_by_the_scans_reconcile_is_not_escalated_first(scoped, engagement, stalled, actor):
    alert, opened_at = stalled
    _event(scoped, engagement, "lost", engagement.pos_at + 12 * HOUR, actor, reason="Cancelled")  # CHANGED pending
    later = opened_at + timedelta(days=scoped.escalation_days) + MINUTE
    assert stalled_scan(scoped, now=later) == {"stalled": 0, "opened": 0, "resolved": 1, "escalated": 0}
    alert.refresh_from_db()
    assert (alert.state, alert.resolution, alert.escalated_at) == ("resolved", "ended", None)


def test_a_second_scan_at_the_same_instant_changes_nothing(scoped, offering, actor, pos):
    waits, moves = (_engagement(scoped, offering, actor, pos, f"p-{i}") for i in (1, 2))
    newer = _engagement(scoped, offering, actor, pos + DAY, "p-3")
    first = pos + 2 * DAY + _grace(scoped) + MINUTE
    stalled_scan(scoped, now=first)  # waits and moves stall before m1; newer is a day younger
    _event(scoped, moves, "milestone", pos + 12 * HOUR, actor, milestone="m1")

    # One scan that does every kind of work, so the repeat has something to repeat.
    now = first + timedelta(days=scoped.escalation_days) + DAY
    result = stalled_scan(scoped, now=now)
    # moves and newer stall; newer and moves (before m2) open; moves' m1 resolves; waits escalates.
    assert result == {"stalled": 2, "opened": 2, "resolved": 1, "escalated": 1}
    assert _status(newer) == "stalled"
    assert Alert.objects.get(engagement=waits).escalated_at == now
    alerts = list(Alert.objects.order_by("id").values())
    messages = OutboxMessage.objects.count()

    assert stalled_scan(scoped, now=now) == NOTHING
    assert list(Alert.objects.order_by("id").values()) == alerts
    assert OutboxMessage.objects.count() == messages


def _listed(kind):
    """The lists of ids of `kind`'s messages, in publishing order."""
    key = "engagements" if kind == STALLED else "alerts"
    return [m.payload[key] for m in OutboxMessage.objects.filter(kind=kind).order_by("id")]


def test_a_scan_lists_its_stalls_and_alerts_list_size_to_a_message(scoped, offering, actor, pos, monkeypatch):
    monkeypatch.setattr(outbox, "LIST_SIZE", 2)
    engagements = [_engagement(scoped, offering, actor, pos, f"p-{i}") for i in range(5)]
    changed = OutboxMessage.objects.filter(kind=outbox.CHANGED)
    before = changed.count()  # the purchases'
    stalled_scan(scoped, now=pos + 30 * DAY)

    stalled = _listed(STALLED)
    assert [len(ids) for ids in stalled] == [2, 2, 1]
    assert sorted(i for ids in stalled for i in ids) == sorted(str(e.pk) for e in engagements)
    opened = _listed(ALERT_OPENED)
    assert [len(ids) for ids in opened] == [2, 2, 1]
    alerts = Alert.objects.values_list("id", flat=True)
    assert sorted(i for ids in opened for i in ids) == sorted(str(a) for a in alerts)
    assert changed.count() == before + 1, "one CHANGED however many stall"

    for engagement in engagements[:3]:
        _event(scoped, engagement, "lost", timezone.now(), actor, reason="Budget")
    sync_alerts(scoped, now=pos + 30 * DAY)
    resolved = _listed(ALERT_RESOLVED)
    assert [len(ids) for ids in resolved] == [2, 1]
    ended = Alert.objects.filter(engagement__in=engagements[:3]).values_list("id", flat=True)
    assert sorted(i for ids in resolved for i in ids) == sorted(str(a) for a in ended)


def test_two_concurrent_scans_open_and_publish_each_alert_once(transactional_db, tenant, actor):
    pos = timezone.now() - DAY
    with tenant_scope(tenant):
        offering = make_offering(tenant)
        engagements = [_engagement(tenant, offering, actor, pos, f"p-{i}") for i in range(20)]
    now = pos + 30 * DAY

    def scan():
        with tenant_scope(tenant):
            return stalled_scan(tenant, now=now)

    results = run_concurrently(scan)
    assert sum(r["stalled"] for r in results) == 20
    assert sum(r["opened"] for r in results) == 20

    with tenant_scope(tenant):
        alerts = list(Alert.objects.values_list("id", "engagement_id"))
        stalled = [s["engagement"] for m in OutboxMessage.objects.filter(kind=STALLED) for s in outbox.subjects(m)]
        opened = [s["alert"] for m in OutboxMessage.objects.filter(kind=ALERT_OPENED) for s in outbox.subjects(m)]
    assert sorted(e for _, e in alerts) == sorted(e.pk for e in engagements)
    assert sorted(stalled) == sorted(str(e.pk) for e in engagements)
    assert sorted(opened) == sorted(str(a) for a, _ in alerts)


def test_a_scan_never_touches_another_tenants_engagements_or_alerts(tenant, other_tenant, actor, pos):
    with tenant_scope(other_tenant):
        theirs = make_offering(other_tenant)
        stuck = _engagement(other_tenant, theirs, actor, pos, "c-1")
        waiting = _engagement(other_tenant, theirs, actor, pos + DAY, "c-2")  # due a day after stuck
        first = stuck.next_due_at + _grace(other_tenant) + MINUTE
        stalled_scan(other_tenant, now=first)  # charlie's own scan: stuck gets an alert before m1
        _event(other_tenant, stuck, "lost", pos + 12 * HOUR, actor)  # charlie's alert waits for its resolution
        their_messages = OutboxMessage.objects.count()

    with tenant_scope(tenant):
        mine = _engagement(tenant, make_offering(tenant), actor, pos, "p-1")
        # Late enough that every charlie row would stall, resolve or escalate if it were in reach.
        result = stalled_scan(tenant, now=first + timedelta(days=other_tenant.escalation_days) + DAY)
        assert result == {"stalled": 1, "opened": 1, "resolved": 0, "escalated": 0}
        assert Alert.objects.get().engagement_id == mine.pk

    with tenant_scope(other_tenant):
        assert _status(waiting) == "on_track"
        alert = Alert.objects.get()
        assert (alert.engagement_id, alert.state, alert.escalated_at) == (stuck.pk, "open", None)
        assert OutboxMessage.objects.count() == their_messages


def test_a_resolution_by_hand_stands_while_the_engagement_stays_stalled(scoped, stalled, actor):
    alert, now = stalled
    alert_resolve(tenant=scoped, alert=alert, actor=actor)
    assert stalled_scan(scoped, now=now + HOUR)["opened"] == 0
    assert Alert.objects.get().state == "resolved"


def test_an_alert_does_not_escalate_while_the_clock_is_paused(scoped, engagement, stalled, actor):
    _, now = stalled
    _event(scoped, engagement, "paused", timezone.now(), actor)
    stalled_scan(scoped, now=now + timedelta(days=scoped.escalation_days) + MINUTE)
    assert Alert.objects.get().escalated_at is None


@pytest.mark.parametrize("run", [stalled_scan, sync_alerts], ids=["stalled_scan", "sync_alerts"])
def test_a_live_alert_follows_its_engagements_due_date_after_a_pause(scoped, engagement, stalled, actor, run):
    alert, now = stalled
    real_now = timezone.now()
    _event(scoped, engagement, "paused", real_now - 2 * HOUR, actor)
    _event(scoped, engagement, "resumed", real_now - HOUR, actor)
    moved = Engagement.objects.get(pk=engagement.pk).next_due_at
    assert moved == alert.due_at + HOUR
    run(scoped, now=now + HOUR)
    assert Alert.objects.get().due_at == moved


def _edit_journey(tenant, offering, actor, due_days):
    """Replace the journey with milestones m<i> due on `due_days` (a dict key -> due day, in order)."""
    milestones = [{"key": key, "name": key.upper(), "due_day": day} for key, day in due_days.items()]
    offering_save(tenant=tenant, key=offering.key, name=offering.name, milestones=milestones, actor=actor)


def _alerts_by_step():
    return {a.step: a for a in Alert.objects.all()}


@pytest.mark.parametrize("run", [stalled_scan, sync_alerts], ids=["stalled_scan", "sync_alerts"])
def test_a_step_that_becomes_current_again_reopens_its_alert(scoped, offering, actor, run):
    # Bought 20 days ago: every write finds the engagement already overdue, so it is stalled by the write
    # itself (not by a scan) and gets its alert from the next reconcile.
    engagement = _engagement(scoped, offering, actor, timezone.now() - 20 * DAY)
    assert _status(engagement) == "stalled"
    first = timezone.now()
    assert run(scoped, now=first)["opened"] == 1
    assert _alerts_by_step()["m1"].state == "open"

    _edit_journey(scoped, offering, actor, {"m2": 7, "m3": 14})  # m1 leaves the journey: m2 is next
    result = run(scoped, now=first + HOUR)
    assert (result["opened"], result["resolved"]) == (1, 1)
    alerts = _alerts_by_step()
    assert (alerts["m1"].state, alerts["m1"].resolution, alerts["m2"].state) == ("resolved", "reached", "open")

    _edit_journey(scoped, offering, actor, {"m1": 2, "m2": 7, "m3": 14})  # m1 is back, and current again
    later = first + 2 * HOUR
    result = run(scoped, now=later)
    assert (result["opened"], result["resolved"]) == (1, 1)
    alerts = _alerts_by_step()
    reopened = alerts["m1"]
    assert (reopened.state, reopened.resolution, reopened.resolved_at, reopened.opened_at) == ("open", "", None, later)
    assert (alerts["m2"].state, alerts["m2"].resolution) == ("resolved", "reached")
    repeat = run(scoped, now=later)
    assert (repeat["opened"], repeat["resolved"]) == (0, 0)


def test_stalling_again_before_a_resolved_step_reopens_its_alert(scoped, offering, engagement, stalled, actor):
    alert, now = stalled  # open before m1
    _edit_journey(scoped, offering, actor, {"m2": 7, "m3": 14})
    assert stalled_scan(scoped, now=now)["resolved"] == 1  # m2 is next and not due yet: m1's alert resolves
    _edit_journey(scoped, offering, actor, {"m1": 2, "m2": 7, "m3": 14})
    assert _status(engagement) == "on_track"  # m1 is current again, not overdue by the real clock

    later = now + HOUR  # the scan finds it overdue: stalled again, before the step whose alert was resolved
    assert stalled_scan(scoped, now=later) == {"stalled": 1, "opened": 1, "resolved": 0, "escalated": 0}
    alert.refresh_from_db()
    assert (alert.state, alert.opened_at, alert.resolved_at, alert.resolution) == ("open", later, None, "")
    assert Alert.objects.count() == 1


def _drained(tenant):
    """What a drain leaves: every alert synced with the projections and every message handled."""
    sync_alerts(tenant)
    OutboxMessage.objects.update(handled_at=timezone.now())


def test_a_scan_after_the_drain_synced_stalls_opens_and_escalates(scoped, offering, actor, pos):
    waits = _engagement(scoped, offering, actor, pos, "p-1")
    first = waits.next_due_at + _grace(scoped) + MINUTE
    stalled_scan(scoped, now=first)
    newer = _engagement(scoped, offering, actor, pos + DAY, "p-2")
    _drained(scoped)

    now = first + timedelta(days=scoped.escalation_days) + DAY
    assert stalled_scan(scoped, now=now) == {"stalled": 1, "opened": 1, "resolved": 0, "escalated": 1}
    assert Alert.objects.get(engagement=newer).state == "open"
    assert Alert.objects.get(engagement=waits).escalated_at == now


def test_a_forced_reconcile_rebuilds_alerts_even_with_nothing_pending(scoped, engagement, stalled, actor):
    """`recompute` rebuilds every derived row: its scan reconciles whatever the outbox says."""
    _, now = stalled
    _drained(scoped)
    Alert.objects.all().delete()  # lost by some other hand
    assert stalled_scan(scoped, now=now, reconcile=True)["opened"] == 1
    assert Alert.objects.get().step == "m1"


def _scan_statements(tenant, offering, actor, pos, engagements):
    """The statements of one scan that stalls `engagements` new purchases, every earlier change synced."""
    for i in range(engagements):
        _engagement(tenant, offering, actor, pos, f"n-{engagements}-{i}")
    _drained(tenant)
    now = pos + 30 * DAY + engagements * HOUR
    with CaptureQueriesContext(connection) as queries:
        result = stalled_scan(tenant, now=now)
    assert result["stalled"] == result["opened"] == engagements
    return len([q for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))])


def test_a_scan_costs_the_same_statements_for_two_or_twelve_new_stalls(scoped, offering, actor, pos):
    # With every earlier change synced: the tenant lock; whether a change is unsynced; the engagements
    # marked stalled; their outbox rows; the alerts opened; the escalation; the alerts' outbox row.
    # Never a statement per engagement.
    assert _scan_statements(scoped, offering, actor, pos, 2) == _scan_statements(scoped, offering, actor, pos, 12) == 7
