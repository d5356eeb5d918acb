"""The references: what PostgreSQL itself needs for the same work, hand-written, measured in the same run.

- `copy_rows`: psycopg COPY of the same rows (same columns) into plain scratch tables made `LIKE` the
  application's (the events for a batch; the customers, purchases and engagements for an import) with all
  their indexes and checks (foreign keys are not copied by LIKE).
- `metrics_sql`: the numbers of `recompute_rollups` for the same groups (overall, per offering, segment,
  owner and sales rep, each also per purchase month): counts, the Aalen–Johansen curves with their
  intervals (thinned), quantiles and the share by the target, the value backlog, the weekly histogram
  and the funnel. One scan of the engagements into a temporary table, then GROUPING SETS.
- `stalled_update`: one UPDATE of the on-track engagements past due + grace, committed (the caller undoes it).
- `projection_sql`: a set-based derivation of the projection from the events, for the common case
  (see its docstring for what it covers), and the MilestoneReach rows.
Only table and column names are interpolated into SQL; values are parameters.
"""

import time

from django.db import connection, transaction

from engagement.models import Customer, Engagement, Event, Milestone, MilestoneReach, Offering, Purchase
from metrics.compute import CURVE_POINTS, HISTOGRAM_WEEKS, aalen_johansen_of_days
from metrics.models import Forecast
from tenants.models import Member, User
from tenants.rls import as_owner


def _t(model):
    return connection.ops.quote_name(model._meta.db_table)


# Ingest ------------------------------------------------------------------------------------------


def copy_rows(tables):
    """Seconds to COPY each (model, columns, rows) of `tables` into a fresh table like the model's (all its
    indexes and checks; foreign keys are not copied by LIKE), in one transaction. The tables are created
    and dropped untimed, as the table owner: the application's role may not create tables."""
    with as_owner():
        return _copy_rows(tables)


def _copy_table(model):
    return connection.ops.quote_name(f"bench_copy_{model._meta.model_name}")


def _copy_rows(tables):
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model, _, _ in tables:
            cursor.execute(f"DROP TABLE IF EXISTS {_copy_table(model)}")
            cursor.execute(f"CREATE TABLE {_copy_table(model)} (LIKE {_t(model)} INCLUDING ALL)")
    try:
        start = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            for model, columns, rows in tables:
                names = ", ".join(quote(c) for c in columns)
                with cursor.copy(f"COPY {_copy_table(model)} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        return time.perf_counter() - start
    finally:
        with connection.cursor() as cursor:
            for model, _, _ in tables:
                cursor.execute(f"DROP TABLE IF EXISTS {_copy_table(model)}")


# The stalled scan -------------------------------------------------------------------------------


def stalled_update(tenant, now):
    """(seconds, rows) of the one UPDATE that marks overdue engagements stalled, in its own transaction
    and committed, as the scan is: the caller puts the rows back before the scan runs."""
    with connection.cursor() as cursor:
        start = time.perf_counter()
        with transaction.atomic():
            cursor.execute(
                f"""UPDATE {_t(Engagement)} SET status = 'stalled', updated_at = %s
                    WHERE tenant_id = %s AND status = 'on_track' AND next_due_at < %s::timestamptz - make_interval(days => %s)""",  # noqa: E501, S608
                [now, tenant.pk, now, tenant.grace_days],
            )
        return time.perf_counter() - start, cursor.rowcount


# Metrics ----------------------------------------------------------------------------------------

DIMENSIONS = ("offering", "segment", "owner", "sales_rep")
WHOLE_LABELS = (
    "CASE " + " ".join(f"WHEN GROUPING({d}) = 0 THEN '{d}'" for d in DIMENSIONS) + " ELSE 'all' END AS dim, "
    "CASE " + " ".join(f"WHEN GROUPING({d}) = 0 THEN {d}" for d in DIMENSIONS) + " ELSE '' END AS key"
)
LABELS = WHOLE_LABELS + ", CASE WHEN GROUPING(month) = 0 THEN month ELSE '' END AS period"
DAYS_SINCE = "extract(epoch FROM %(now)s::timestamptz - {})::float8 / 86400.0"

BASE = f"""
CREATE TEMP TABLE bench_ref_base ON COMMIT DROP AS
SELECT e.id, e.offering_id, e.status, o.key AS offering, o.target_days, coalesce(c.segment, '') AS segment,
       coalesce(ou.email, '') AS owner, coalesce(su.email, '') AS sales_rep, e.owner_id IS NULL AS unowned,
       to_char(e.pos_at AT TIME ZONE %(tz)s, 'YYYY-MM') AS month, e.days_to_value,
       CASE e.status WHEN 'reached' THEN 1 WHEN 'lost' THEN 2 ELSE 0 END AS outcome,
       CASE e.status WHEN 'reached' THEN e.days_to_value WHEN 'lost' THEN e.days_to_loss
            ELSE {DAYS_SINCE.format("e.pos_at")} - e.paused_days - coalesce({DAYS_SINCE.format("e.paused_since")}, 0.0)
       END AS t,
       {DAYS_SINCE.format("e.pos_at")} AS age_days, p.amount, p.currency, coalesce(f.at_risk, false) AS at_risk
FROM {_t(Engagement)} e
JOIN {_t(Offering)} o ON o.id = e.offering_id
JOIN {_t(Customer)} c ON c.id = e.customer_id
JOIN {_t(Purchase)} p ON p.id = e.purchase_id
LEFT JOIN {_t(Member)} om ON om.id = e.owner_id LEFT JOIN {_t(User)} ou ON ou.id = om.user_id
LEFT JOIN {_t(Member)} sm ON sm.id = e.sales_rep_id LEFT JOIN {_t(User)} su ON su.id = sm.user_id
LEFT JOIN {_t(Forecast)} f ON f.engagement_id = e.id
WHERE e.tenant_id = %(tenant)s
"""  # noqa: S608

AGGREGATES = f"""
SELECT {LABELS}, count(*),
       {", ".join(f"count(*) FILTER (WHERE status = '{s}')" for s in ("reached", "lost", "stalled", "on_track", "paused"))},
       count(*) FILTER (WHERE unowned), count(*) FILTER (WHERE at_risk AND outcome = 0),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY days_to_value) FILTER (WHERE status = 'reached'),
       CASE WHEN min(target_days) = max(target_days) THEN min(target_days) END,
       min(age_days - target_days) >= 0
FROM bench_ref_base GROUP BY GROUPING SETS ({{sets}})
"""  # noqa: E501, S608

# The outcomes per group and day, for the estimator of metrics.compute (its window arithmetic is shared;
# tests hold it to lifelines): the groups come from GROUPING SETS here, not from repeated rows.
AJ_DAYS = """
days AS (
    SELECT {labels}, clock AS t, count(*) FILTER (WHERE outcome = 1) AS d1,
           count(*) FILTER (WHERE outcome = 2) AS d2, count(*) AS leaving
    FROM (SELECT *, {clock} AS clock FROM bench_ref_base) b GROUP BY GROUPING SETS ({sets})
)"""

CURVES = """
SELECT dim, key, t, pov, pov_low, pov_high, lost, lost_low, lost_high,
       count(*) OVER (PARTITION BY dim, key) AS days,
       row_number() OVER (PARTITION BY dim, key, floor(pov * %(points)s) ORDER BY t) AS first_pov,
       row_number() OVER (PARTITION BY dim, key, floor(lost * %(points)s) ORDER BY t) AS first_lost,
       row_number() OVER (PARTITION BY dim, key ORDER BY t DESC) AS from_end
FROM bench_ref_aj WHERE period = '' ORDER BY dim, key, t
"""

QUANTILES = """
SELECT dim, key, min(t) FILTER (WHERE pov >= 0.5 - 1e-12), min(t) FILTER (WHERE pov >= 0.75 - 1e-12),
       min(t) FILTER (WHERE pov >= 0.9 - 1e-12)
FROM bench_ref_aj WHERE period = '' GROUP BY dim, key
"""

BY_TARGET = """
SELECT dim, key, period, (array_agg(pov ORDER BY t DESC))[1], (array_agg(pov_low ORDER BY t DESC))[1],
       (array_agg(pov_high ORDER BY t DESC))[1]
FROM ({aj}) aj WHERE t <= 0 GROUP BY dim, key, period
"""

BACKLOG = f"""
SELECT {WHOLE_LABELS}, currency, age, sum(amount), coalesce(sum(amount) FILTER (WHERE status = 'stalled'), 0),
       coalesce(sum(amount) FILTER (WHERE at_risk), 0)
FROM (SELECT *, CASE WHEN t >= 91 THEN 'over 90' WHEN t >= 61 THEN '61-90' WHEN t >= 31 THEN '31-60' ELSE '0-30' END
      AS age FROM bench_ref_base WHERE outcome = 0 AND amount IS NOT NULL) b
GROUP BY GROUPING SETS ({{sets}})
"""  # noqa: S608

HISTOGRAM = f"""
SELECT {LABELS}, week, count(*) FROM (
    SELECT *, least(floor(days_to_value / 7.0)::int, %(last_week)s) AS week FROM bench_ref_base WHERE status = 'reached'
) b GROUP BY GROUPING SETS ({{sets}})
"""  # noqa: S608

FUNNEL = f"""
SELECT b.offering, m.key, count(r.milestone_id), percentile_cont(0.5) WITHIN GROUP (ORDER BY r.clock_days),
       count(*) FILTER (WHERE r.milestone_id IS NULL AND b.t > m.due_day)
FROM bench_ref_base b JOIN {_t(Milestone)} m ON m.offering_id = b.offering_id
LEFT JOIN {_t(MilestoneReach)} r ON r.engagement_id = b.id AND r.milestone_id = m.id
GROUP BY b.offering, m.key
"""  # noqa: S608


def _plain_sets(extra, *, months=True):
    """GROUPING SETS of overall/dimension x whole/month, each with `extra` columns appended."""
    tail = f", {extra}" if extra else ""
    sets = [f"({extra})" if extra else "()"] + [f"({d}{tail})" for d in DIMENSIONS]
    if months:
        sets += [f"(month{tail})"] + [f"({d}, month{tail})" for d in DIMENSIONS]
    return ", ".join(sets)


def _aj(clock, months):
    labels = LABELS if months else f"{WHOLE_LABELS}, ''::text AS period"
    return aalen_johansen_of_days(AJ_DAYS.format(labels=labels, clock=clock, sets=_plain_sets("clock", months=months)))


def metrics_sql(tenant, now):
    """(seconds, results): every number recompute_rollups stores, from hand-written SQL. The forecasts it
    stores alongside are not recomputed here (the reference reads their at-risk flags), so the ratio
    counts the forecasting against the application."""
    params = {"tz": tenant.time_zone, "now": now, "tenant": tenant.pk}
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(BASE, params)
        cursor.execute(AGGREGATES.format(sets=_plain_sets("")))
        aggregates = cursor.fetchall()
        cursor.execute(f"CREATE TEMP TABLE bench_ref_aj ON COMMIT DROP AS {_aj('t', months=False)}")
        cursor.execute(CURVES, {"points": CURVE_POINTS})
        curves = cursor.fetchall()
        cursor.execute(QUANTILES)
        quantiles = cursor.fetchall()
        cursor.execute(BY_TARGET.format(aj=_aj("t - target_days", months=True)))
        by_target = cursor.fetchall()
        cursor.execute(BACKLOG.format(sets=_plain_sets("currency, age", months=False)))
        backlog = cursor.fetchall()
        cursor.execute(HISTOGRAM.format(sets=_plain_sets("week")), {"last_week": HISTOGRAM_WEEKS - 1})
        histogram = cursor.fetchall()
        cursor.execute(FUNNEL)
        funnel = cursor.fetchall()
    seconds = time.perf_counter() - start
    return seconds, {
        "aggregates": aggregates, "curves": curves, "quantiles": quantiles, "by_target": by_target,
        "backlog": backlog, "histogram": histogram, "funnel": funnel,
    }  # fmt: skip


# Projections ------------------------------------------------------------------------------------

PROJECTION = f"""
WITH facts AS (
    SELECT g.id, g.pos_at, o.requires_satisfaction,
           min(ev.occurred_at) FILTER (WHERE m.is_pov) AS pov_milestone_at,
           min(ev.occurred_at) FILTER (WHERE ev.type = 'satisfaction' AND ev.score >= o.satisfaction_threshold) AS satisfied_at,
           min(ev.occurred_at) FILTER (WHERE ev.type = 'lost') AS lost_at,
           max(ev.occurred_at) AS last_event_at,
           max(m."order") AS furthest,
           max(ev.occurred_at) FILTER (WHERE ev.type = 'paused') AS last_paused,
           max(ev.occurred_at) FILTER (WHERE ev.type = 'resumed') AS last_resumed
    FROM {_t(Engagement)} g
    JOIN {_t(Offering)} o ON o.id = g.offering_id
    LEFT JOIN {_t(Event)} ev ON ev.engagement_id = g.id AND ev.tenant_id = g.tenant_id
    LEFT JOIN {_t(Milestone)} m ON m.id = ev.milestone_id
    WHERE g.tenant_id = %(tenant)s
    GROUP BY g.id, o.id
), pov AS (
    SELECT f.*,
           CASE WHEN f.pov_milestone_at IS NULL THEN NULL
                WHEN NOT f.requires_satisfaction THEN f.pov_milestone_at
                WHEN f.satisfied_at IS NULL THEN NULL
                ELSE greatest(f.pov_milestone_at, f.satisfied_at) END AS pov_at,
           f.last_paused IS NOT NULL AND (f.last_resumed IS NULL OR f.last_resumed < f.last_paused) AS pause_open
    FROM facts f
), next AS (
    SELECT p.*, coalesce(nm.key, CASE WHEN p.furthest IS NOT NULL THEN 'satisfaction' END) AS step,
           coalesce(nm.due_day, pm.due_day) AS due_day,
           CASE WHEN p.lost_at IS NOT NULL AND (p.pov_at IS NULL OR p.lost_at < p.pov_at) THEN 'lost'
                WHEN p.pov_at IS NOT NULL THEN 'reached'
                WHEN p.pause_open THEN 'paused' END AS settled
    FROM pov p
    JOIN {_t(Engagement)} g ON g.id = p.id
    LEFT JOIN {_t(Milestone)} nm ON nm.offering_id = g.offering_id AND nm."order" = coalesce(p.furthest, -1) + 1
    LEFT JOIN {_t(Milestone)} pm ON pm.offering_id = g.offering_id AND pm.is_pov
)
UPDATE {_t(Engagement)} e SET
    status = coalesce(n.settled, CASE WHEN %(now)s::timestamptz > n.pos_at + make_interval(days => n.due_day + %(grace)s)
                                      THEN 'stalled' ELSE 'on_track' END),
    next_step = CASE WHEN n.settled IN ('lost', 'reached') THEN '' ELSE n.step END,
    next_due_at = CASE WHEN n.settled IS NULL THEN n.pos_at + make_interval(days => n.due_day) END,
    pov_at = CASE WHEN n.settled = 'reached' THEN n.pov_at END,
    days_to_value = CASE WHEN n.settled = 'reached' THEN extract(epoch FROM n.pov_at - n.pos_at)::float8 / 86400.0 END,
    calendar_days_to_value = CASE WHEN n.settled = 'reached' THEN extract(epoch FROM n.pov_at - n.pos_at)::float8 / 86400.0 END,
    lost_at = CASE WHEN n.settled = 'lost' THEN n.lost_at END,
    days_to_loss = CASE WHEN n.settled = 'lost' THEN extract(epoch FROM n.lost_at - n.pos_at)::float8 / 86400.0 END,
    churned_at = CASE WHEN n.settled = 'reached' THEN n.lost_at END,
    paused_days = 0.0,
    paused_since = CASE WHEN n.pause_open THEN n.last_paused END,
    last_event_at = n.last_event_at,
    updated_at = %(now)s
FROM next n WHERE e.id = n.id
"""  # noqa: E501, S608

REACHES = f"""
INSERT INTO {_t(MilestoneReach)} (tenant_id, engagement_id, milestone_id, reached_at, clock_days)
SELECT %(tenant)s, ev.engagement_id, ev.milestone_id, min(ev.occurred_at),
       extract(epoch FROM min(ev.occurred_at) - g.pos_at)::float8 / 86400.0
FROM {_t(Event)} ev JOIN {_t(Engagement)} g ON g.id = ev.engagement_id
WHERE ev.tenant_id = %(tenant)s AND ev.type = 'milestone'
GROUP BY ev.engagement_id, ev.milestone_id, g.pos_at
"""  # noqa: S608


def projection_sql(tenant, now):
    """Seconds to derive every engagement's projection from its events in two statements.

    Covers: status (reached / lost / paused for an open pause / stalled / on track), next step and due
    date, pov_at (the PoV milestone, and the satisfaction when the offering requires it),
    days_to_value, calendar days, lost_at, days_to_loss, churned_at, last_event_at, and the
    MilestoneReach rows. Not covered: paused time (every clock runs as if never paused) and ties
    between events at the same instant. It assumes milestone orders 0..n-1 (as offering_save
    writes them). Exact for engagements that never paused, which the scenario checks.
    """
    params = {"tenant": tenant.pk, "now": now, "grace": tenant.grace_days}
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(PROJECTION, params)
        cursor.execute(REACHES, params)
    return time.perf_counter() - start
