"""Stored rollups: the stored rows answer like a live computation, one
snapshot per day, the debounce, the reconcile, and `recompute` equal to incremental work."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from engagement import outbox
from engagement.filters import EngagementFilter
from engagement.models import Engagement, EventType, Offering
from engagement.services import event_record, purchase_record
from metrics import queries, rollups
from metrics.alerts import stalled_scan
from metrics.models import Alert, MetricRollup, RollupState
from tenants.models import Tenant
from tenants.scoping import tenant_scope
from tests.factories import CustomerFactory, make_offering

CUSTOMERS = 150
NOON = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)  # midday in Berlin: minutes either side stay on one day


@pytest.fixture
def demo(db):
    call_command("seed_demo", "--i-know", "--customers", str(CUSTOMERS), stdout=StringIO(), stderr=StringIO())
    tenant = Tenant.objects.get(slug="demo")
    with tenant_scope(tenant):
        yield tenant


def _close(a, b, path="$"):
    """Equal, with floats to 1e-9; names the first difference."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-9), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_stored_rows_answer_every_single_filter_like_a_live_computation(demo):
    now = timezone.now()
    written = rollups.recompute_rollups(demo, now=now)
    assert written == MetricRollup.objects.count() > 10
    filters = [EngagementFilter()]
    filters += [EngagementFilter(offering=k) for k in Offering.objects.values_list("key", flat=True)]
    # Each owner once: without order_by(), the default ordering's columns would make every row distinct.
    owners = Engagement.objects.exclude(owner=None).order_by().values_list("owner__user__email", flat=True).distinct()
    filters += [EngagementFilter(owner=email.upper()) for email in owners]
    filters += [
        EngagementFilter(segment=s) for s in set(Engagement.objects.values_list("customer__segment", flat=True))
    ]
    for flt in filters:
        stored = queries.summary(flt, demo)
        assert stored["computed_at"] == now, flt  # read from the rollup, not computed again
        assert sum(b["count"] for b in stored["histogram"]) == stored["reached"]
        _close(stored, queries.summary(flt, demo, now=now))
        _close(queries.cohorts(flt, demo), queries.cohorts(flt, demo, now=now))
    for by in ("owner", "sales_rep"):
        _close(
            queries.scoreboard(EngagementFilter(), demo, by), queries.scoreboard(EngagementFilter(), demo, by, now=now)
        )
    for offering in Offering.objects.all():
        _close(
            queries.funnel(EngagementFilter(), demo, offering),
            queries.funnel(EngagementFilter(), demo, offering, now=now),
        )


def test_a_filter_the_rollups_do_not_hold_is_computed_live(demo):
    rollups.recompute_rollups(demo, now=timezone.now() - timedelta(minutes=5))
    offering = Offering.objects.first()
    flt = EngagementFilter(offering=offering.key, purchased_from=timezone.now().date() - timedelta(days=60))
    result = queries.summary(flt, demo)
    assert result["computed_at"] > timezone.now() - timedelta(seconds=5)  # not the stored row's time
    _close(result, queries.summary(flt, demo, now=result["computed_at"]))


def test_one_snapshot_per_day_and_a_recompute_replaces_its_day(demo):
    today = timezone.now()
    rollups.recompute_rollups(demo, now=today - timedelta(days=1))
    per_day = MetricRollup.objects.count()
    rollups.recompute_rollups(demo, now=today)
    rollups.recompute_rollups(demo, now=today + timedelta(seconds=1))
    assert MetricRollup.objects.count() == 2 * per_day
    days = [day for day, _ in rollups.trend()]
    assert days == [rollups.local_day(demo, today - timedelta(days=1)), rollups.local_day(demo, today)]
    assert rollups.current("all").computed_at == today + timedelta(seconds=1)


def test_a_group_that_emptied_is_not_read_from_an_older_day(demo):
    """A member who owned engagements yesterday and none today must not show yesterday's numbers."""
    owner = Engagement.objects.exclude(owner=None).values_list("owner__user__email", flat=True).first()
    rollups.recompute_rollups(demo, now=timezone.now() - timedelta(days=1))
    Engagement.objects.filter(owner__user__email=owner).update(owner=None)
    rollups.recompute_rollups(demo, now=timezone.now())
    assert rollups.current("owner", owner) is None
    assert queries.summary(EngagementFilter(owner=owner), demo)["purchases"] == 0


def test_requests_schedule_one_run_a_minute_after_the_last_start(tenant, scoped, django_capture_on_commit_callbacks):
    now = timezone.now()
    with django_capture_on_commit_callbacks() as callbacks:
        assert rollups.request_recompute(tenant, now=now) == now  # never computed: at once
        assert rollups.request_recompute(tenant, now=now + timedelta(seconds=5)) is None  # already scheduled
    assert len(callbacks) == 1
    assert rollups.run_recompute(tenant, now=now + timedelta(seconds=1)) is not None
    later = now + timedelta(seconds=10)
    assert rollups.request_recompute(tenant, now=later) == now + timedelta(seconds=61)  # debounced
    state = RollupState.objects.get()
    assert state.dirty_since == later and state.scheduled_for == now + timedelta(seconds=61)


def test_a_run_with_nothing_new_is_a_no_op(tenant, scoped):
    now = timezone.now()
    rollups.request_recompute(tenant, now=now)
    assert rollups.run_recompute(tenant, now=now) == 1  # the "all" group, empty
    first = list(MetricRollup.objects.values())
    assert rollups.run_recompute(tenant, now=now + timedelta(seconds=30)) is None
    assert list(MetricRollup.objects.values()) == first
    assert rollups.run_recompute(tenant, force=True, now=now + timedelta(seconds=30)) == 1


def _ids(tenants):
    return sorted((each.id for each in tenants), key=str)


def test_the_reconcile_finds_lost_schedules_and_days_without_a_snapshot(tenant, other_tenant):
    for each in (tenant, other_tenant):
        with tenant_scope(each):
            rollups.run_recompute(each, force=True, now=NOON)
    assert _ids(rollups.tenants_to_reconcile(now=NOON)) == []
    with tenant_scope(tenant):
        rollups.request_recompute(tenant, now=NOON)  # scheduled a minute after the last start
    assert _ids(rollups.tenants_to_reconcile(now=NOON + timedelta(seconds=90))) == []  # still on time
    assert _ids(rollups.tenants_to_reconcile(now=NOON + timedelta(minutes=3))) == [tenant.id]  # that run was lost
    next_day = _ids(rollups.tenants_to_reconcile(now=NOON + timedelta(days=1)))
    assert next_day == sorted([tenant.id, other_tenant.id], key=str)


def test_recompute_rebuilds_alerts_and_rollups_as_incremental_work_left_them(demo, actor):
    outbox.drain(demo)  # incremental: the handlers of every write so far
    stalled_scan(demo)
    outbox.drain(demo)
    rollups.run_recompute(demo, force=True)
    before_alerts = sorted(Alert.objects.values_list("engagement_id", "step", "state"))
    assert before_alerts  # the demo has stalled customers
    before = {(r.dimension, r.key): (r.summary, r.cohorts, r.funnel) for r in MetricRollup.objects.all()}
    call_command("recompute", "--tenant", "demo", stdout=StringIO(), stderr=StringIO())
    assert sorted(Alert.objects.values_list("engagement_id", "step", "state")) == before_alerts
    after = {(r.dimension, r.key): (r.summary, r.cohorts, r.funnel) for r in MetricRollup.objects.all()}
    _close(after, before)


def test_an_event_marks_the_rollups_stale_through_the_outbox(demo, actor):
    rollups.run_recompute(demo, force=True)
    engagement = Engagement.objects.filter(status="on_track").first()
    event_record(tenant=demo, engagement=engagement, type=EventType.PAUSED, occurred_at=timezone.now(), actor=actor)
    assert RollupState.objects.get().dirty_since is None
    outbox.drain(demo)
    assert RollupState.objects.get().dirty_since is not None


def test_a_new_company_s_first_purchases_are_counted_before_the_next_recompute(tenant, scoped, actor):
    """Its rollups were first computed with no purchases (the day's snapshot); the first purchases then
    must not read "no purchases yet" for the minute until the next recompute, nor make a digest empty."""
    now = timezone.now()
    rollups.request_recompute(tenant, now=now)
    rollups.run_recompute(tenant, now=now)
    assert queries.summary(EngagementFilter(), tenant)["purchases"] == 0
    offering = make_offering(tenant)
    for ref in ("p-1", "p-2"):
        purchase_record(
            tenant=tenant, external_id=ref, customer=CustomerFactory(tenant=tenant), offering=offering,
            purchased_at=now - timedelta(days=2), actor=actor,
        )  # fmt: skip
    outbox.drain(tenant)  # the writes mark the rollups stale; the recompute waits for its minute
    assert RollupState.objects.get().dirty_since is not None
    assert queries.summary(EngagementFilter(), tenant)["purchases"] == 2
    assert queries.summary(EngagementFilter(offering=offering.key), tenant)["purchases"] == 2
    assert sum(row["purchases"] for row in queries.scoreboard(EngagementFilter(), tenant, "owner")["results"]) == 2
    rollups.run_recompute(tenant, now=now + timedelta(minutes=2))
    stored = queries.summary(EngagementFilter(), tenant)
    assert stored["purchases"] == 2 and stored["computed_at"] == now + timedelta(minutes=2), "read from the rollup"


def test_stale_rollups_of_a_company_with_purchases_are_still_read(demo, actor):
    """Only the first minute reads live: later writes wait for the debounced recompute, as documented."""
    computed = timezone.now()
    rollups.run_recompute(demo, force=True, now=computed)
    engagement = Engagement.objects.filter(status="on_track").first()
    event_record(tenant=demo, engagement=engagement, type=EventType.PAUSED, occurred_at=timezone.now(), actor=actor)
    outbox.drain(demo)
    assert queries.summary(EngagementFilter(), demo)["computed_at"] == computed
