"""The scenarios. Each measures the application and, where there is one, its reference in the same run,
after a warm-up, and returns the benchmark's record.

Run order (each leaves the state the next expects): the stalled scan (it finds the day's newly
overdue engagements), the projection rebuild, the metric rollups (the pages read them), the pages,
then the two ingest scenarios (they add events) and the import (it adds purchases).
"""

import math
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from bench import references, verify
from engagement import outbox
from engagement.models import OPEN_STATUSES, Engagement, Event, MilestoneReach, Offering, OutboxMessage, Status
from engagement.projection import Projection
from engagement.projections import rebuild_all, refresh
from metrics.alerts import LIVE, stalled_scan
from metrics.compute import DIMENSIONS, compute
from metrics.models import Alert
from metrics.rollups import local_day, recompute_rollups

RECORD_KEYS = ("scenario", "n", "seconds", "rate", "reference", "reference_rate", "ratio", "p50_ms", "p95_ms",
               "queries")  # fmt: skip
EXTRA_KEYS = ("reference_seconds", "note")


def percentile_ms(latencies, q):
    """Nearest-rank percentile of seconds, in milliseconds."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index] * 1000.0


def record(scenario, n, seconds, *, reference=None, reference_seconds=None, latencies=None, queries=None, note=""):
    """The benchmark record. ratio = our time / the reference's time for the same n (= reference_rate / rate)."""
    has_reference = reference is not None and reference_seconds
    return {
        "scenario": scenario,
        "n": n,
        "seconds": seconds,
        "rate": n / seconds if seconds else None,
        "reference": reference,
        "reference_rate": n / reference_seconds if has_reference else None,
        "ratio": seconds / reference_seconds if has_reference else None,
        "p50_ms": percentile_ms(latencies, 0.50) if latencies else None,
        "p95_ms": percentile_ms(latencies, 0.95) if latencies else None,
        "queries": queries,
        "reference_seconds": reference_seconds if has_reference else None,
        "note": note,
    }


@dataclass
class Context:
    """What every scenario gets: the scratch tenant and its data, the server, progress bars."""

    scratch: object
    scale: int
    requests: int
    bar: object  # bar(total, desc) -> a tqdm
    server: object = None
    session_cookie: str = ""

    @property
    def tenant(self):
        return self.scratch.tenant


@contextmanager
def counting_queries():
    """Counts the SQL statements run through Django on this connection (cheaply: no SQL is kept)."""
    counter = {"n": 0}

    def count(execute, sql, params, many, context):
        counter["n"] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        yield counter


def _table(model):
    return connection.ops.quote_name(model._meta.db_table)


def vacuum(*models):
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(_table(m) for m in models)}")


# 4. stall_scan -------------------------------------------------------------------------------------

# A scan takes milliseconds, so one sample is mostly noise: each trial measures the reference and the
# scan from the same state, and the report takes the medians. The first trials after the data load
# meet one-off costs (index pages splitting, the broker connection opening), paid by whichever run
# comes first: they are run in full but not counted, so the medians are of the steady state.
STALL_WARM_UP_TRIALS = 3
STALL_TRIALS = 7


def stall_scan(ctx):
    """metrics.alerts.stalled_scan over the tenant (mark stalled, open/resolve/escalate alerts, commit)
    against one committed UPDATE marking the same engagements stalled. Each trial times the reference,
    undoes it, times the scan and (but the last) undoes that too, untimed."""
    tenant, now = ctx.tenant, timezone.now()
    active = Engagement.objects.filter(status__in=OPEN_STATUSES).count()
    idle = Idle()
    runs = STALL_WARM_UP_TRIALS + STALL_TRIALS
    trials = [_stall_trial(tenant, now, idle, last=n == runs) for n in range(1, runs + 1)][STALL_WARM_UP_TRIALS:]
    seconds, reference_seconds = (statistics.median(t[key] for t in trials) for key in ("seconds", "reference"))
    last = trials[-1]
    ratios = sorted(t["seconds"] / t["reference"] for t in trials)
    note = (
        f"{last['stalled']} newly stalled, {last['opened']} alerts opened, {last['escalated']} escalated; "
        f"medians of {STALL_TRIALS} trials after {STALL_WARM_UP_TRIALS} warm-ups "
        f"(ratios {ratios[0]:.2f}–{ratios[-1]:.2f})"
    )
    return record("stall_scan", active, seconds, reference="sql", reference_seconds=reference_seconds,
                  queries=last["queries"], note=note)  # fmt: skip


class Idle:
    """Waits so that each timed run starts a drain window after the previous one (or the set-up)
    ended. The scan then sends its own drain request, as a scheduled scan does, and the reference and
    the scan both start from the same idle (the first statement after a pause costs more, whichever
    it is)."""

    def __init__(self, clock=time.monotonic, sleep=time.sleep):
        self.clock, self.sleep = clock, sleep
        self.last = clock()

    def __enter__(self):
        self.sleep(max(0.0, self.last + outbox.DRAIN_WINDOW - self.clock()))

    def __exit__(self, *exc):
        self.last = self.clock()


def _stall_trial(tenant, now, idle, *, last):
    undo = ScanUndo(tenant, now)
    with idle:
        reference_seconds, reference_rows = references.stalled_update(tenant, now)
    _undo(undo)
    with idle, counting_queries() as queries:
        start = time.perf_counter()
        result = stalled_scan(tenant, now)
        seconds = time.perf_counter() - start
    if not last:
        _undo(undo)
    if result["stalled"] != reference_rows:
        raise verify.Mismatch(f"the scan marked {result['stalled']} stalled, the UPDATE {reference_rows}")
    return result | {"seconds": seconds, "reference": reference_seconds, "queries": queries["n"]}


def _undo(undo):
    undo()
    vacuum(Engagement, Alert, OutboxMessage)


class ScanUndo:
    """What a stalled scan at `now` changes (the reference UPDATE changes a part of it), saved before
    it runs; calling the instance puts it back: the overdue engagements' status, their alerts and the
    alerts due to escalate, and the outbox."""

    def __init__(self, tenant, now):
        cutoff = now - timedelta(days=tenant.grace_days)
        overdue = Engagement.objects.filter(status=Status.ON_TRACK, next_due_at__lt=cutoff)
        self.engagements = list(overdue.only("id", "status", "updated_at"))
        self.opened = Q(engagement__in=[e.pk for e in self.engagements])  # the alerts the scan opens
        escalating = Q(state__in=LIVE, escalated_at__isnull=True)
        escalating &= Q(opened_at__lt=now - timedelta(days=tenant.escalation_days))
        self.alerts = list(Alert.objects.filter(self.opened | escalating))
        self.last_message = OutboxMessage.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def __call__(self):
        with transaction.atomic():
            Engagement.objects.bulk_update(self.engagements, ["status", "updated_at"])
            Alert.objects.filter(self.opened | Q(pk__in=[a.pk for a in self.alerts])).delete()
            Alert.objects.bulk_create(self.alerts)
            OutboxMessage.objects.filter(id__gt=self.last_message).delete()


# 6. recompute_projection -----------------------------------------------------------------------------

RESET = {"status": "on_track", "next_step": "", "paused_days": 0.0}


def reset_projections(tenant):
    """Every derived field back to its initial value and no MilestoneReach rows: what a rebuild from
    the events must then write in full (untimed; vacuumed so both runs meet the same table)."""
    fields = list(Projection.FIELDS)
    assignments = ", ".join(f"{connection.ops.quote_name(f)} = %s" for f in fields)
    values = [RESET.get(f) for f in fields]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {_table(Engagement)} SET {assignments} WHERE tenant_id = %s", [*values, tenant.pk])  # noqa: S608
        cursor.execute(f"DELETE FROM {_table(MilestoneReach)} WHERE tenant_id = %s", [tenant.pk])  # noqa: S608
    vacuum(Engagement, MilestoneReach)


def recompute_projection(ctx):
    """engagement.projections.rebuild_all over every engagement (as `recompute` runs it) against the SQL
    derivation, both from reset projections; the results are compared on engagements that never paused."""
    tenant, now = ctx.tenant, timezone.now()
    total = Engagement.objects.count()
    with connection.cursor() as cursor:  # warm-up: the events in cache for both
        cursor.execute(f"SELECT count(*), max(occurred_at) FROM {_table(Event)} WHERE tenant_id = %s", [tenant.pk])  # noqa: S608
    refresh(tenant, list(Engagement.objects.order_by("pk")[:2000]), now=now)
    reset_projections(tenant)
    reference_seconds = references.projection_sql(tenant, now)
    reference_reaches = verify.snapshot_projection(tenant)
    reset_projections(tenant)
    with ctx.bar(total, "  rebuild_all") as bar, counting_queries() as queries:
        start = time.perf_counter()
        rebuild_all(tenant, Engagement.objects.all(), now=now, progress=bar.update)
        seconds = time.perf_counter() - start
    compared = verify.projection_equal(tenant, reference_reaches)
    vacuum(Engagement, MilestoneReach)
    note = f"same fields as the SQL on {compared} engagements without pauses"
    return record("recompute_projection", total, seconds, reference="sql", reference_seconds=reference_seconds,
                  queries=queries["n"], note=note)  # fmt: skip


# 3. recompute_metrics --------------------------------------------------------------------------------


def recompute_metrics(ctx):
    """metrics.rollups.recompute_rollups (every group, cohorts, funnels, stored) against the hand-written
    aggregate SQL for the same groups; the numbers are compared."""
    tenant, now = ctx.tenant, timezone.now()
    total = Engagement.objects.count()
    first = Offering.objects.order_by("key").first()
    compute(Engagement.objects.filter(offering=first), tenant, now, dimensions=DIMENSIONS, cohorts=True, funnel=True)
    references.metrics_sql(tenant, now)  # warm-up
    with counting_queries() as queries:
        start = time.perf_counter()
        rows = recompute_rollups(tenant, now=now)
        seconds = time.perf_counter() - start
    reference_seconds, results = references.metrics_sql(tenant, now)
    groups = verify.metrics_equal(local_day(tenant, now), results)
    note = f"{groups} groups ({rows} rollup rows) with cohorts and funnels; same numbers as the SQL"
    return record("recompute_metrics", total, seconds, reference="sql", reference_seconds=reference_seconds,
                  queries=queries["n"], note=note)  # fmt: skip
