"""Stored metric rollups: computed by Celery, read by the dashboards and the API in O(1).

- `recompute_rollups` computes every group of the tenant (metrics.compute) and replaces the rows
  of the tenant-local day; earlier days stay as daily snapshots for trends.
- `request_recompute` (after writes, via the outbox) marks the rollups stale and schedules one
  recompute no sooner than DEBOUNCE after the previous one started: at most one a minute per
  tenant, and within a minute of a write while a worker runs.
- `run_recompute` is what the task runs: it claims the stale mark, then computes. Running it
  again with nothing new is a no-op, so a task delivered twice changes nothing more.
- `tenants_to_reconcile` finds what a lost task or a stopped worker left stale, and tenants
  without today's snapshot (the nightly run).
"""

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Subquery
from django.utils import timezone

from engagement.models import Engagement
from metrics.compute import DIMENSIONS, compute
from metrics.forecast import store_forecasts
from metrics.models import MetricRollup, RollupState
from tenants.models import Tenant
from tenants.scoping import tenant_scope


def debounce() -> timedelta:
    return timedelta(seconds=settings.METRICS_DEBOUNCE_SECONDS)


def local_day(tenant: Tenant, now: datetime) -> date:
    return now.astimezone(tenant.tzinfo).date()


def recompute_rollups(tenant: Tenant, now: datetime | None = None) -> int:
    """Compute and store every group's metrics for the tenant's current day. Returns rows written."""
    now = now or timezone.now()
    computed = compute(
        Engagement.objects.all(), tenant, now, dimensions=DIMENSIONS, cohorts=True, funnel=True,
        after_curves=lambda cursor: store_forecasts(cursor, tenant, now),
    )  # fmt: skip
    day = local_day(tenant, now)
    rows = [
        MetricRollup(
            tenant=tenant,
            day=day,
            dimension=dimension,
            key=key,
            summary=group["summary"],
            cohorts=group["cohorts"],
            funnel=computed.funnels.get(key) if dimension == "offering" else None,
            computed_at=now,
        )
        for (dimension, key), group in computed.groups.items()
    ]
    with transaction.atomic():
        MetricRollup.objects.filter(day=day).delete()
        MetricRollup.objects.bulk_create(rows, batch_size=500)
        _state(tenant)
        RollupState.objects.filter(tenant=tenant).update(computed_at=now, day=day)
        # Fresh, unless a write asked for another run meanwhile (then it scheduled one: scheduled_for is set).
        RollupState.objects.filter(tenant=tenant, scheduled_for__isnull=True).update(dirty_since=None)
    return len(rows)


def _state(tenant: Tenant) -> RollupState:
    state, _ = RollupState.objects.get_or_create(tenant=tenant)
    return state


def request_recompute(tenant: Tenant, now: datetime | None = None) -> datetime | None:
    """Mark the rollups stale and, unless a recompute is already scheduled, schedule one.

    Returns the time it is scheduled for, or None when one already was. The conditional UPDATE
    makes concurrent requests schedule exactly one task.
    """
    from metrics.tasks import recompute_metrics
    from pov.enqueue import enqueue_on_commit

    now = now or timezone.now()
    state = _state(tenant)
    RollupState.objects.filter(pk=state.pk, dirty_since__isnull=True).update(dirty_since=now)
    eta = max(now, state.started_at + debounce()) if state.started_at else now
    # A schedule whose time passed long ago was lost (broker down, worker killed): take it over.
    open_slot = Q(scheduled_for__isnull=True) | Q(scheduled_for__lt=now - 2 * debounce())
    if not RollupState.objects.filter(open_slot, pk=state.pk).update(scheduled_for=eta):
        return None
    enqueue_on_commit(recompute_metrics, tenant_id=str(tenant.pk), countdown=(eta - now).total_seconds())
    return eta


def run_recompute(tenant: Tenant, *, force: bool = False, now: datetime | None = None) -> int | None:
    """Recompute when stale (or when `force`, or when today has no snapshot). Returns rows written, or
    None when there was nothing to do."""
    now = now or timezone.now()
    with transaction.atomic():
        state = RollupState.objects.select_for_update().filter(tenant=tenant).first() or _state(tenant)
        fresh = state.dirty_since is None and state.day == local_day(tenant, now)
        if fresh and not force:
            return None
        # The stale mark stays until the new rows are stored (recompute_rollups clears it), so a run that
        # dies mid-way leaves it for the redelivered task or the reconcile. The schedule is taken: a write
        # that lands meanwhile schedules the next run.
        RollupState.objects.filter(pk=state.pk).update(scheduled_for=None, started_at=now)
    return recompute_rollups(tenant, now=now)


def tenants_to_reconcile(now: datetime | None = None) -> list[Tenant]:
    """Tenants whose rollups are stale with no live schedule, or that lack today's snapshot.

    Asks each tenant in its own scope: row-level security shows a query one tenant's rows only."""
    now = now or timezone.now()
    due = []
    for tenant in Tenant.objects.only("id", "slug", "time_zone").order_by("slug"):
        with tenant_scope(tenant):
            state = RollupState.objects.values("dirty_since", "scheduled_for", "day").first()
        if _needs_reconcile(state, tenant, now):
            due.append(tenant)
    return due


def _needs_reconcile(state: Mapping[str, Any] | None, tenant: Tenant, now: datetime) -> bool:
    if state is None or state["day"] != local_day(tenant, now):
        return True
    lost_schedule = state["scheduled_for"] is None or state["scheduled_for"] < now - debounce()
    return state["dirty_since"] is not None and lost_schedule


# Reading ------------------------------------------------------------------------------------------


def current(dimension: str, key: str = "") -> MetricRollup | None:
    """The newest stored row of one group, or None: never computed, no engagements in it then, or a
    count of none that a write has made stale since (a new company's first minute, when its rows still
    say "no purchases yet": readers compute live then, over few engagements by nature)."""
    state = RollupState.objects.all()[:1]
    row = (
        MetricRollup.objects.filter(day=Subquery(state.values("day")), dimension=dimension, key=key)
        .annotate(stale=Subquery(state.values("dirty_since")))
        .first()
    )
    if row is None or (row.stale is not None and row.summary.get("purchases") == 0):
        return None
    return row


def current_rows(dimension: str) -> list[MetricRollup] | None:
    """The newest stored rows of every group of one dimension, or None when there are none to trust
    (never computed, or none yet while the company's first purchases wait for their recompute)."""
    day, stale = RollupState.objects.values_list("day", "dirty_since").first() or (None, None)
    if day is None:
        return None
    rows = list(MetricRollup.objects.filter(day=day, dimension=dimension))
    return None if not rows and stale is not None and current("all") is None else rows


def trend(dimension: str = "all", key: str = "", days: int = 90, fields: tuple | None = None) -> list[tuple]:
    """The daily snapshots of one group, oldest first: [(day, summary)]. With `fields`, only those
    keys of each summary are read (the database extracts them; the rest of the JSON stays there)."""
    rows = MetricRollup.objects.filter(dimension=dimension, key=key).order_by("-day")
    if fields is None:
        return [(row.day, row.summary) for row in reversed(rows[:days])]
    values = rows.values_list("day", *(f"summary__{name}" for name in fields))[:days]
    return [(day, dict(zip(fields, numbers, strict=True))) for day, *numbers in reversed(values)]


def computed_at() -> datetime | None:
    """When the stored rollups were last computed (None: never)."""
    return RollupState.objects.values_list("computed_at", flat=True).first()
