"""Computing the metrics of docs/metrics.md for groups of one tenant's engagements, in set-based SQL.

`compute` takes a queryset of one tenant's engagements (already filtered) and returns, for each
group (dimension, key) — `("all", "")`, `("offering", key)`, `("segment", segment)`,
`("owner", email)`, `("sales_rep", email)`, "" meaning none — its summary (counts, percentiles and
Kaplan–Meier) and, when asked, its monthly cohorts; and the milestone funnel per offering.

The selected engagements are copied once into a temporary table with the columns every metric
needs (group keys, purchase month in the tenant's time zone, Kaplan–Meier time). Each statement
then reads it for all groups at once: the group rows are that table repeated per dimension
(UNION ALL), a period column '' for the whole group or 'YYYY-MM' for its monthly cohort.

- counts and percentiles: aggregates with FILTER and percentile_cont (linear interpolation);
- Kaplan–Meier: distinct times per group, the at-risk count as a reverse running sum, S(t) as
  exp(running sum of ln(1 - d/n)) (lifelines' own formulation), 0 once a step takes every subject;
- the curve: the first step in each 1/CURVE_POINTS band of reached share, plus the last.
Only table and column names are interpolated into the SQL; every value is a parameter.
"""

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Count

from engagement.models import Customer, Engagement, Milestone, MilestoneReach, Offering
from tenants.models import Member, User

DIMENSIONS = ("all", "offering", "segment", "owner", "sales_rep")
CURVE_POINTS = 500
HISTOGRAM_WEEKS = 26  # the last bin holds everything from week 25 on


@dataclass
class Computed:
    groups: dict  # (dimension, key) -> {"summary": {...}, "cohorts": [...]}
    funnels: dict  # offering key -> {"offering", "purchases", "milestones": [...]}

    def summary(self, dimension="all", key=""):
        return self.groups[(dimension, key)]["summary"]


def compute(engagements, tenant, now, *, dimensions=("all",), cohorts=False, funnel=False):
    """`funnel`: True for every offering among the engagements, or one offering's key."""
    unknown = set(dimensions) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown dimensions: {sorted(unknown)}")
    with transaction.atomic():
        groups, reaches = _groups_and_reaches(
            engagements, tenant, now, dimensions=dimensions, cohorts=cohorts, funnel=funnel
        )
    if "all" in dimensions and ("all", "") not in groups:
        groups[("all", "")] = {"summary": dict(EMPTY_SUMMARY), "cohorts": []}
    funnels = _funnels(engagements, groups, reaches, also=[funnel] if isinstance(funnel, str) else []) if funnel else {}
    return Computed(groups=groups, funnels=funnels)


KEY_COLUMN = {"all": "''", "offering": "offering", "segment": "segment", "owner": "owner", "sales_rep": "sales_rep"}
STATUS_COUNTS = ("reached", "lost", "stalled", "on_track", "paused")


def _table(model):
    return connection.ops.quote_name(model._meta.db_table)


BASE_COLUMNS = (
    "id uuid, status text, offering text, target_days integer, segment text, owner text, sales_rep text,"
    " unowned boolean, month text, days_to_value float8, km_t float8"
)
KM_COLUMNS = "dim text, key text, period text, t float8, s float8, steps bigint, target integer"


def _empty_work_tables(cursor):
    """The session's two work tables, created once and emptied per run. Creating and dropping them on
    every run left each run's locks on the dropped tables held until the caller's transaction ended
    (~17 per run), so a transaction with a few hundred computations exhausted the shared lock table."""
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS metric_base ({BASE_COLUMNS}) ON COMMIT DELETE ROWS")
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS metric_km ({KM_COLUMNS}) ON COMMIT DELETE ROWS")
    cursor.execute("TRUNCATE metric_base, metric_km")


def _create_base(cursor, engagements, tenant, now):
    ids_sql, ids_params = engagements.values("id").order_by().query.sql_with_params()
    days_since = "extract(epoch FROM %s::timestamptz - {col})::float8 / 86400.0"
    cursor.execute(
        f"""
        INSERT INTO metric_base
        SELECT e.id, e.status, o.key AS offering, o.target_days, coalesce(c.segment, '') AS segment,
               coalesce(ou.email, '') AS owner, coalesce(su.email, '') AS sales_rep,
               e.owner_id IS NULL AS unowned,
               to_char(e.pos_at AT TIME ZONE %s, 'YYYY-MM') AS month,
               e.days_to_value,
               CASE e.status WHEN 'reached' THEN e.days_to_value WHEN 'lost' THEN e.days_to_loss
                    ELSE {days_since.format(col="e.pos_at")}
                         - (e.paused_days + coalesce({days_since.format(col="e.paused_since")}, 0.0))
               END AS km_t
        FROM {_table(Engagement)} e
        JOIN {_table(Offering)} o ON o.id = e.offering_id
        JOIN {_table(Customer)} c ON c.id = e.customer_id
        LEFT JOIN {_table(Member)} om ON om.id = e.owner_id
        LEFT JOIN {_table(User)} ou ON ou.id = om.user_id
        LEFT JOIN {_table(Member)} sm ON sm.id = e.sales_rep_id
        LEFT JOIN {_table(User)} su ON su.id = sm.user_id
        WHERE e.tenant_id = %s AND e.id IN ({ids_sql})
        """,  # noqa: S608 - names only; values are parameters
        [tenant.time_zone, now, now, tenant.pk, *ids_params],
    )


def _grouped(dimensions, cohorts):
    """The group rows: the base once per dimension (and once more per dimension by month)."""
    periods = ["''", "month"] if cohorts else ["''"]
    # Dimensions are checked against KEY_COLUMN by compute(); no value reaches this text.
    select = "SELECT '{dim}'::text AS dim, {key}::text AS key, {period}::text AS period, b.* FROM metric_base b"
    return " UNION ALL ".join(
        select.format(dim=dimension, key=KEY_COLUMN[dimension], period=period)
        for dimension in dimensions
        for period in periods
    )


def _aggregates(cursor, grouped):
    counts = ", ".join(f"count(*) FILTER (WHERE status = '{s}')" for s in STATUS_COUNTS)
    quantiles = ", ".join(
        f"percentile_cont({q}) WITHIN GROUP (ORDER BY days_to_value) FILTER (WHERE status = 'reached')"
        for q in (0.5, 0.75, 0.9)
    )
    cursor.execute(
        f"""
        WITH g AS ({grouped})
        SELECT dim, key, period, count(*), {counts}, count(*) FILTER (WHERE unowned), {quantiles},
               count(*) FILTER (WHERE status = 'reached' AND days_to_value <= target_days),
               CASE WHEN min(target_days) = max(target_days) THEN min(target_days) END
        FROM g GROUP BY dim, key, period
        """  # noqa: S608
    )
    return cursor.fetchall()


def _kaplan_meier(cursor, grouped):
    """metric_km: one row per group and distinct event time, with S(t) and the group's single target."""
    cursor.execute(
        f"""
        INSERT INTO metric_km
        WITH g AS ({grouped}),
        times AS (
            SELECT dim, key, period, km_t AS t, count(*) FILTER (WHERE status = 'reached') AS d, count(*) AS c,
                   min(target_days) AS lowest_target, max(target_days) AS highest_target
            FROM g WHERE km_t IS NOT NULL GROUP BY dim, key, period, km_t
        ),
        risk AS (
            SELECT dim, key, period, t, d,
                   sum(c) OVER (PARTITION BY dim, key, period ORDER BY t DESC) AS n,
                   min(lowest_target) OVER (PARTITION BY dim, key, period) AS lowest_target,
                   max(highest_target) OVER (PARTITION BY dim, key, period) AS highest_target
            FROM times
        )
        SELECT dim, key, period, t,
               CASE WHEN bool_or(d = n) OVER w THEN 0.0
                    ELSE exp(coalesce(sum(ln(1.0 - d::float8 / n::float8)) FILTER (WHERE d < n) OVER w, 0.0))
               END AS s,
               count(*) OVER (PARTITION BY dim, key, period) AS steps,
               CASE WHEN lowest_target = highest_target THEN lowest_target END AS target
        FROM risk WHERE d > 0
        WINDOW w AS (PARTITION BY dim, key, period ORDER BY t)
        """  # noqa: S608
    )
    cursor.execute(
        """
        SELECT dim, key, period,
               min(t) FILTER (WHERE 1.0 - s >= 0.5 - 1e-12),
               (array_agg(s ORDER BY t DESC) FILTER (WHERE t <= target))[1]
        FROM metric_km GROUP BY dim, key, period
        """
    )
    estimates = {(dim, key, period): (median, s_target) for dim, key, period, median, s_target in cursor.fetchall()}
    cursor.execute(
        """
        SELECT dim, key, t, s FROM (
            SELECT dim, key, t, s, steps,
                   row_number() OVER (PARTITION BY dim, key, floor((1.0 - s) * %s) ORDER BY t) AS first_in_band,
                   row_number() OVER (PARTITION BY dim, key ORDER BY t DESC) AS from_end
            FROM metric_km WHERE period = ''
        ) steps WHERE steps <= %s OR first_in_band = 1 OR from_end = 1
        ORDER BY dim, key, t
        """,
        [CURVE_POINTS, CURVE_POINTS],
    )
    curves = {}
    for dim, key, t, s in cursor.fetchall():
        curves.setdefault((dim, key), []).append({"day": t, "reached_share": 1.0 - s})
    return estimates, curves


def _histograms(cursor, grouped):
    """{(dim, key): {week: count}} of days to value of the reached engagements."""
    cursor.execute(
        f"""
        WITH g AS ({grouped})
        SELECT dim, key, least(floor(days_to_value / 7.0)::int, %s) AS week, count(*)
        FROM g WHERE status = 'reached' GROUP BY dim, key, week
        """,  # noqa: S608
        [HISTOGRAM_WEEKS - 1],
    )
    counts = {}
    for dim, key, week, count in cursor.fetchall():
        counts.setdefault((dim, key), {})[week] = count
    return counts


def _reaches(cursor):
    cursor.execute(
        f"""
        SELECT b.offering, r.milestone_id, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY r.clock_days)
        FROM metric_base b JOIN {_table(MilestoneReach)} r ON r.engagement_id = b.id
        GROUP BY b.offering, r.milestone_id
        """  # noqa: S608
    )
    return {(offering, milestone_id): (count, median) for offering, milestone_id, count, median in cursor.fetchall()}


def _summary(row, estimate, curve):
    purchases, *statuses = row[3:9]
    unowned, median, p75, p90, on_time, target = row[9:15]
    reached = statuses[0]
    km_median, s_target = estimate
    return {
        "purchases": purchases,
        **dict(zip(STATUS_COUNTS, statuses, strict=True)),
        "unowned": unowned,
        "pov_rate": reached / purchases if purchases else None,
        "median_days_to_value": median,
        "p75_days_to_value": p75,
        "p90_days_to_value": p90,
        "on_time_rate": on_time / reached if reached else None,
        "km_curve": curve,
        "km_median_days": km_median,
        "target_days": target,
        "km_reached_by_target": 1.0 - (s_target if s_target is not None else 1.0) if target is not None else None,
    }


def _cohort(row, summary):
    return {"month": row[2], **{k: summary[k] for k in COHORT_FIELDS}}


COHORT_FIELDS = ("purchases", "reached", "pov_rate", "median_days_to_value", "km_reached_by_target")


def _groups_and_reaches(engagements, tenant, now, *, dimensions, cohorts, funnel):
    """({(dimension, key): {"summary", "cohorts"}}, {(offering key, milestone id): (reached, median days)})."""
    grouped = _grouped(dimensions, cohorts)
    with connection.cursor() as cursor:
        _empty_work_tables(cursor)
        _create_base(cursor, engagements, tenant, now)
        rows = _aggregates(cursor, grouped)
        estimates, curves = _kaplan_meier(cursor, grouped)
        histograms = _histograms(cursor, _grouped(dimensions, cohorts=False))
        reaches = _reaches(cursor) if funnel else {}
    groups = {}
    for row in sorted(rows, key=lambda r: (r[0], r[1], r[2])):
        dim, key, period = row[:3]
        summary = _summary(row, estimates.get((dim, key, period), (None, None)), curves.get((dim, key), []))
        if period:
            groups[(dim, key)]["cohorts"].append(_cohort(row, summary))
        else:
            summary["histogram"] = dense_histogram(histograms.get((dim, key), {}))
            groups[(dim, key)] = {"summary": summary, "cohorts": []}
    return groups, reaches


EMPTY_SUMMARY = {
    "purchases": 0, **dict.fromkeys(STATUS_COUNTS, 0), "unowned": 0, "pov_rate": None,
    "median_days_to_value": None, "p75_days_to_value": None, "p90_days_to_value": None, "on_time_rate": None,
    "km_curve": [], "km_median_days": None, "target_days": None, "km_reached_by_target": None, "histogram": [],
}  # fmt: skip


def dense_histogram(counts):
    """[{week, count, open}] from {week: count}, every week from 0 to the last one with a count."""
    if not counts:
        return []
    last = max(counts)
    return [
        {"week": week, "count": counts.get(week, 0), "open": week == HISTOGRAM_WEEKS - 1} for week in range(last + 1)
    ]


def _funnels(engagements, groups, reaches, also):
    """Per offering among the selected engagements (and the offerings in `also`, even with none of them):
    each milestone's reached count, rate and median clock days."""
    purchases = dict.fromkeys(also, 0) | _purchases_per_offering(engagements, groups)
    milestones = Milestone.objects.filter(offering__key__in=purchases.keys()).select_related("offering")
    funnels = {key: {"offering": key, "purchases": count, "milestones": []} for key, count in purchases.items()}
    for milestone in milestones.order_by("offering__key", "order"):
        offering_key = milestone.offering.key
        reached, median = reaches.get((offering_key, milestone.id), (0, None))
        count = purchases[offering_key]
        funnels[offering_key]["milestones"].append(
            {
                "milestone": milestone.key,
                "name": milestone.name,
                "due_day": milestone.due_day,
                "is_pov": milestone.is_pov,
                "reached": reached,
                "rate": reached / count if count else None,
                "median_clock_days": median,
            }
        )
    return funnels


def _purchases_per_offering(engagements, groups):
    offering_groups = {key: g["summary"]["purchases"] for (dim, key), g in groups.items() if dim == "offering"}
    if offering_groups:
        return offering_groups
    counts = engagements.order_by().values_list("offering__key").annotate(n=Count("id"))
    return dict(counts)
