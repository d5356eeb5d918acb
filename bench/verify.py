"""Checks that each reference did the same work as the application: the same numbers, the same rows.

A reference that computes something else would make its ratio meaningless, so a mismatch fails the
scenario (and `make bench`).
"""

from django.db import connection

from engagement.models import Engagement, Event, MilestoneReach
from metrics.models import MetricRollup

TOLERANCE = 1e-9
STATUSES = ("reached", "lost", "stalled", "on_track", "paused")


class Mismatch(AssertionError):
    pass


def _close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))


def _check(problems, what, ours, theirs):
    if ours is None or (isinstance(ours, (int, float)) and not isinstance(ours, bool)):
        same = _close(ours, theirs)
    else:
        same = ours == theirs
    if not same:
        problems.append(f"{what}: application {ours!r} != reference {theirs!r}")


def metrics_equal(day, results):
    """The stored rollups of `day` against metrics_sql's results; raises Mismatch naming the first differences."""
    rollups = {(r.dimension, r.key): r for r in MetricRollup.objects.filter(day=day)}
    estimates = {(d, k, p): (median, s_target, target) for d, k, p, median, s_target, target in results["estimates"]}
    curves = {}
    for dim, key, t, s in results["curves"]:
        curves.setdefault((dim, key), []).append((t, 1.0 - s))
    reference_groups, cohorts = set(), {}
    problems = []
    for row in results["aggregates"]:
        dim, key, period = row[:3]
        if period:
            cohorts.setdefault((dim, key), {})[period] = row
            continue
        reference_groups.add((dim, key))
        rollup = rollups.get((dim, key))
        if rollup is None:
            problems.append(f"{dim}={key!r}: no stored rollup")
            continue
        _summary_equal(problems, f"{dim}={key!r}", rollup.summary, row, estimates.get((dim, key, "")))
        curve = [(p["day"], p["reached_share"]) for p in rollup.summary["km_curve"]]
        theirs = curves.get((dim, key), [])
        _check(problems, f"{dim}={key!r} curve points", len(curve), len(theirs))
        for (ours_t, ours_share), (t, share) in zip(curve, theirs, strict=False):
            _check(problems, f"{dim}={key!r} curve day", ours_t, t)
            _check(problems, f"{dim}={key!r} curve share", ours_share, share)
    _check(problems, "groups", sorted(rollups), sorted(reference_groups))
    for (dim, key), months in cohorts.items():
        stored = {c["month"]: c for c in rollups[(dim, key)].cohorts} if (dim, key) in rollups else {}
        _check(problems, f"{dim}={key!r} cohort months", sorted(stored), sorted(months))
        for month, row in months.items():
            if month in stored:
                _check(problems, f"{dim}={key!r} {month} purchases", stored[month]["purchases"], row[3])
                _check(problems, f"{dim}={key!r} {month} reached", stored[month]["reached"], row[4])
                _check(problems, f"{dim}={key!r} {month} median", stored[month]["median_days_to_value"], row[10])
    _histograms_equal(problems, rollups, results["histogram"])
    _funnels_equal(problems, rollups, results["funnel"])
    if problems:
        raise Mismatch(f"{len(problems)} differences, e.g. " + "; ".join(problems[:5]))
    return len(reference_groups)


def _summary_equal(problems, name, summary, row, estimate):
    purchases, *statuses = row[3:9]
    unowned, median, p75, p90, on_time, target = row[9:15]
    reached = statuses[0]
    km_median, s_target, _ = estimate or (None, None, None)
    expected = {
        "purchases": purchases,
        **dict(zip(STATUSES, statuses, strict=True)),
        "unowned": unowned,
        "median_days_to_value": median,
        "p75_days_to_value": p75,
        "p90_days_to_value": p90,
        "on_time_rate": on_time / reached if reached else None,
        "target_days": target,
        "km_median_days": km_median,
        "km_reached_by_target": None if target is None else 1.0 - (1.0 if s_target is None else s_target),
    }
    for field, value in expected.items():
        _check(problems, f"{name} {field}", summary.get(field), value)


def _histograms_equal(problems, rollups, rows):
    totals = {}
    for dim, key, period, week, count in rows:
        if not period:
            totals.setdefault((dim, key), {})[week] = count
    for group, rollup in rollups.items():
        stored = {b["week"]: b["count"] for b in rollup.summary.get("histogram", []) if b["count"]}
        _check(problems, f"{group} histogram", stored, totals.get(group, {}))


def _funnels_equal(problems, rollups, rows):
    reference = {(offering, milestone): (count, median) for offering, milestone, count, median in rows}
    for (dim, key), rollup in rollups.items():
        if dim != "offering" or not rollup.funnel:
            continue
        for step in rollup.funnel["milestones"]:
            count, median = reference.get((key, step["milestone"]), (0, None))
            _check(problems, f"funnel {key}/{step['milestone']} reached", step["reached"], count)
            _check(problems, f"funnel {key}/{step['milestone']} median", step["median_clock_days"], median)


# Projections ------------------------------------------------------------------------------------

SNAPSHOT = "bench_ref_projection"
COMPARED = ("status", "next_step", "next_due_at", "pov_at", "lost_at", "churned_at", "last_event_at")
FLOATS = ("days_to_value", "calendar_days_to_value", "days_to_loss")


def _table(model):
    return connection.ops.quote_name(model._meta.db_table)


def snapshot_projection(tenant):
    """Keep what the reference derived (a session temp table) and how many reach rows it wrote."""
    columns = ", ".join(("id", *COMPARED, *FLOATS))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {SNAPSHOT}")
        cursor.execute(
            f"CREATE TEMP TABLE {SNAPSHOT} AS SELECT {columns} FROM {_table(Engagement)} WHERE tenant_id = %s",  # noqa: S608
            [tenant.pk],
        )
        cursor.execute(f"SELECT count(*) FROM {_table(MilestoneReach)} WHERE tenant_id = %s", [tenant.pk])  # noqa: S608
        return cursor.fetchone()[0]


def projection_equal(tenant, reference_reaches):
    """Compare the rebuilt projection with the snapshot on engagements that never paused; returns how
    many were compared. Raises Mismatch."""
    differs = " OR ".join(
        [f"e.{c} IS DISTINCT FROM r.{c}" for c in COMPARED]
        + [f"(e.{c} IS NULL) <> (r.{c} IS NULL) OR abs(e.{c} - r.{c}) > {TOLERANCE}" for c in FLOATS]
    )
    events = _table(Event)
    never_paused = (
        f"NOT EXISTS (SELECT 1 FROM {events} ev WHERE ev.engagement_id = e.id AND ev.type IN ('paused', 'resumed'))"  # noqa: S608
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT count(*), count(*) FILTER (WHERE {differs}),
                       (array_agg(e.id) FILTER (WHERE {differs}))[1]
                FROM {_table(Engagement)} e JOIN {SNAPSHOT} r ON r.id = e.id
                WHERE e.tenant_id = %s AND {never_paused}""",  # noqa: S608
            [tenant.pk],
        )
        compared, different, example = cursor.fetchone()
        cursor.execute(f"SELECT count(*) FROM {_table(MilestoneReach)} WHERE tenant_id = %s", [tenant.pk])  # noqa: S608
        reaches = cursor.fetchone()[0]
        cursor.execute(f"DROP TABLE IF EXISTS {SNAPSHOT}")
    if different:
        raise Mismatch(f"{different} of {compared} projections differ from the SQL reference (e.g. {example})")
    if reaches != reference_reaches:
        raise Mismatch(f"rebuild wrote {reaches} milestone reaches, the SQL reference {reference_reaches}")
    return compared
