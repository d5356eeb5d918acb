"""Checks that each reference did the same work as the application: the same numbers, the same rows.

A reference that computes something else would make its ratio meaningless, so a mismatch fails the
scenario (and `make bench`).
"""

from django.db import connection

from engagement.models import Engagement, Event, MilestoneReach
from metrics.compute import CURVE_POINTS
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
    by_target = {
        tuple(row[:3]): dict(zip(("share", "low", "high"), row[3:], strict=True)) for row in results["by_target"]
    }
    quantiles = {tuple(row[:2]): row[2:] for row in results["quantiles"]}
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
        name = f"{dim}={key!r}"
        _summary_equal(problems, name, rollup.summary, row, quantiles.get((dim, key), (None, None, None)))
        _check_by_target(problems, name, rollup.summary["reached_by_target"], by_target.get((dim, key, "")))
    _check(problems, "groups", sorted(rollups), sorted(reference_groups))
    _curves_equal(problems, rollups, results["curves"])
    for (dim, key), months in cohorts.items():
        stored = {c["month"]: c for c in rollups[(dim, key)].cohorts} if (dim, key) in rollups else {}
        _check(problems, f"{dim}={key!r} cohort months", sorted(stored), sorted(months))
        for month, row in months.items():
            if month in stored:
                name = f"{dim}={key!r} {month}"
                _check(problems, f"{name} purchases", stored[month]["purchases"], row[3])
                _check(problems, f"{name} reached", stored[month]["reached"], row[4])
                _check(problems, f"{name} mature", stored[month]["mature"], bool(row[13]))
                reference = by_target.get((dim, key, month))
                _check_by_target(problems, name, stored[month]["reached_by_target"], reference)
    _backlog_equal(problems, rollups, results["backlog"])
    _histograms_equal(problems, rollups, results["histogram"])
    _funnels_equal(problems, rollups, results["funnel"])
    if problems:
        raise Mismatch(f"{len(problems)} differences, e.g. " + "; ".join(problems[:5]))
    return len(reference_groups)


def _summary_equal(problems, name, summary, row, quantiles):
    purchases, *statuses = row[3:9]
    unowned, at_risk, median, target = row[9:13]
    expected = {
        "purchases": purchases,
        **dict(zip(STATUSES, statuses, strict=True)),
        "unowned": unowned,
        "at_risk": at_risk,
        "median_days_among_reached": median,
        "target_days": target,
        **dict(zip(("days_to_value_p50", "days_to_value_p75", "days_to_value_p90"), quantiles, strict=True)),
    }
    for field, value in expected.items():
        _check(problems, f"{name} {field}", summary.get(field), value)


def _check_by_target(problems, name, ours, reference):
    reference = reference or {"share": 0.0, "low": None, "high": None}  # no outcome by the target yet
    for part in ("share", "low", "high"):
        _check(problems, f"{name} reached_by_target {part}", ours[part], reference[part])


def _curves_equal(problems, rollups, rows):
    """The thinned curves: every day while a group has at most CURVE_POINTS, else the first day in each band
    of the curve's own share, and the last."""
    reference = {}
    for dim, key, t, *values, days, first_pov, first_lost, from_end in rows:
        pov, lost = reference.setdefault((dim, key), ([], []))
        if days <= CURVE_POINTS or first_pov == 1 or from_end == 1:
            pov.append((t, *values[:3]))
        if days <= CURVE_POINTS or first_lost == 1 or from_end == 1:
            lost.append((t, *values[3:]))
    for (dim, key), rollup in rollups.items():
        for index, name in enumerate(("reached_curve", "lost_curve")):
            ours = [(p["day"], p["share"], p["low"], p["high"]) for p in rollup.summary[name]]
            theirs = reference.get((dim, key), ([], []))[index]
            _check(problems, f"{dim}={key!r} {name} points", len(ours), len(theirs))
            for mine, other in zip(ours, theirs, strict=False):
                for part, a, b in zip(("day", "share", "low", "high"), mine, other, strict=True):
                    _check(problems, f"{dim}={key!r} {name} {part}", a, b)


def _backlog_equal(problems, rollups, rows):
    reference = {}
    for dim, key, currency, age, amount, stalled, at_risk in rows:
        reference.setdefault((dim, key), {})[(currency, age)] = (str(amount), str(stalled), str(at_risk))
    for group, rollup in rollups.items():
        stored = {
            (block["currency"], cell["age"]): (cell["amount"], cell["stalled"], cell["at_risk"])
            for block in rollup.summary["value_backlog"]
            for cell in block["ages"]
            if (block["currency"], cell["age"]) in reference.get(group, {}) or cell["amount"] != "0"
        }
        _check(problems, f"{group} value backlog", stored, reference.get(group, {}))


def _histograms_equal(problems, rollups, rows):
    totals = {}
    for dim, key, period, week, count in rows:
        if not period:
            totals.setdefault((dim, key), {})[week] = count
    for group, rollup in rollups.items():
        stored = {b["week"]: b["count"] for b in rollup.summary.get("histogram", []) if b["count"]}
        _check(problems, f"{group} histogram", stored, totals.get(group, {}))


def _funnels_equal(problems, rollups, rows):
    reference = {
        (offering, milestone): (count, median, dropped) for offering, milestone, count, median, dropped in rows
    }
    for (dim, key), rollup in rollups.items():
        if dim != "offering" or not rollup.funnel:
            continue
        for step in rollup.funnel["milestones"]:
            count, median, dropped = reference.get((key, step["milestone"]), (0, None, 0))
            _check(problems, f"funnel {key}/{step['milestone']} reached", step["reached"], count)
            _check(problems, f"funnel {key}/{step['milestone']} median", step["median_clock_days"], median)
            _check(problems, f"funnel {key}/{step['milestone']} dropped", step["dropped"], dropped)


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
