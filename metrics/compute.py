"""Computing the metrics of docs/metrics.md for groups of one tenant's engagements, in set-based SQL.

`compute` takes a queryset of one tenant's engagements (already filtered) and returns, for each group
(dimension, key) — `("all", "")`, `("offering", key)`, `("segment", segment)`, `("owner", email)`,
`("sales_rep", email)`, "" meaning none — its summary and, when asked, its monthly cohorts; and the
milestone funnel per offering.

The selected engagements are copied once into a temporary table with what every metric needs (group
keys, outcome and clock day, purchase month in the company's time zone). Each statement then reads it for
all groups at once: the group rows are that table repeated per dimension (UNION ALL), with a period ''
for the whole group or 'YYYY-MM' for its monthly cohort.

The curves are the Aalen–Johansen cumulative incidence of PoV and of loss, competing outcomes, with
lifelines' 95% interval (Greenwood-type variance, log(−log) transformation), computed with window
functions over each group's distinct days: the at-risk count as a running sum from the end, the overall
survival as exp(running sum of ln(1 − d/n)) as lifelines computes it, the variance from running sums of
its expanded terms (lifelines' own accumulators). Only names are interpolated into the SQL.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Count, QuerySet

from engagement.models import Customer, Engagement, Milestone, MilestoneReach, Offering, Purchase
from engagement.sql import table
from metrics.models import Forecast
from tenants.models import Member, Tenant, User

DIMENSIONS = ("all", "offering", "segment", "owner", "sales_rep")
KEY_COLUMN = {"all": "''", "offering": "offering", "segment": "segment", "owner": "owner", "sales_rep": "sales_rep"}
STATUS_COUNTS = ("reached", "lost", "stalled", "on_track", "paused")
CURVE_POINTS = 500
HISTOGRAM_WEEKS = 26  # the last bin holds everything from week 25 on
QUANTILES = {"days_to_value_p50": 0.5, "days_to_value_p75": 0.75, "days_to_value_p90": 0.9}
BACKLOG_AGES = ((0, "0-30"), (31, "31-60"), (61, "61-90"), (91, "over 90"))


@dataclass
class Computed:
    groups: dict  # (dimension, key) -> {"summary": {...}, "cohorts": [...]}
    funnels: dict  # offering key -> {"offering", "purchases", "milestones": [...]}

    def summary(self, dimension: str = "all", key: str = "") -> dict:
        return self.groups[(dimension, key)]["summary"]


def compute(
    engagements: QuerySet[Engagement], tenant: Tenant, now: datetime, *, dimensions: tuple = ("all",),
    cohorts: bool = False, funnel: bool | str = False, after_curves: Callable[[CursorWrapper], Any] | None = None,
) -> Computed:  # fmt: skip
    """`funnel`: True for every offering among the engagements, or one offering's key. `after_curves(cursor)`
    runs once the curves are in metric_curve, before anything is counted (the forecasts)."""
    unknown = set(dimensions) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown dimensions: {sorted(unknown)}")
    rows = grouped(dimensions, cohorts)
    with transaction.atomic(), connection.cursor() as cursor:
        fill_base(cursor, engagements, tenant, now)
        _curves(cursor, rows)
        if after_curves:
            after_curves(cursor)
        groups = _groups(cursor, dimensions, rows)
        reaches = _reaches(cursor) if funnel else {}
    if "all" in dimensions and ("all", "") not in groups:
        groups[("all", "")] = {"summary": empty_summary(), "cohorts": []}
    funnels = _funnels(engagements, groups, reaches, also=[funnel] if isinstance(funnel, str) else []) if funnel else {}
    return Computed(groups=groups, funnels=funnels)


# The base table -----------------------------------------------------------------------------------

BASE_COLUMNS = """
    id uuid, offering_id uuid, status text, offering text, target_days integer, segment text, owner text,
    sales_rep text, unowned boolean, month text, days_to_value float8, outcome smallint, t float8,
    age_days float8, amount numeric, currency text, at_risk boolean, furthest integer
"""
CURVE_COLUMNS = """
    dim text, key text, period text, t float8, pov float8, pov_low float8, pov_high float8,
    lost float8, lost_low float8, lost_high float8
"""


# outcome: 1 PoV at days_to_value, 2 lost at days_to_loss, 0 open (censored at its clock day now).
# Parameters by position, as the selected engagements' subquery comes: the time zone, now three times,
# the tenant twice, then the subquery's own.
FILL_BASE = """
INSERT INTO metric_base
SELECT e.id, e.offering_id, e.status, o.key, o.target_days, coalesce(c.segment, ''), coalesce(ou.email, ''),
       coalesce(su.email, ''), e.owner_id IS NULL, to_char(e.pos_at AT TIME ZONE %s, 'YYYY-MM'),
       e.days_to_value,
       CASE e.status WHEN 'reached' THEN 1 WHEN 'lost' THEN 2 ELSE 0 END,
       CASE e.status WHEN 'reached' THEN e.days_to_value WHEN 'lost' THEN e.days_to_loss
            ELSE {days_since_pos} - e.paused_days - coalesce({days_since_pause}, 0.0) END,
       {days_since_pos}, p.amount, p.currency, coalesce(f.at_risk, false),
       coalesce((SELECT max(m."order") FROM {reaches} r JOIN {milestones} m ON m.id = r.milestone_id
                 WHERE r.tenant_id = %s AND r.engagement_id = e.id), -1)
FROM {engagements} e
JOIN {offerings} o ON o.id = e.offering_id
JOIN {customers} c ON c.id = e.customer_id
JOIN {purchases} p ON p.id = e.purchase_id
LEFT JOIN {members} om ON om.id = e.owner_id LEFT JOIN {users} ou ON ou.id = om.user_id
LEFT JOIN {members} sm ON sm.id = e.sales_rep_id LEFT JOIN {users} su ON su.id = sm.user_id
LEFT JOIN {forecasts} f ON f.engagement_id = e.id
WHERE e.tenant_id = %s AND e.id IN ({selected})
"""


def create_work_tables(cursor: CursorWrapper) -> None:
    """The session's work tables, created once and emptied per run (dropping them on every run held locks
    until the transaction ended)."""
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS metric_base ({BASE_COLUMNS}) ON COMMIT DELETE ROWS")
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS metric_curve ({CURVE_COLUMNS}) ON COMMIT DELETE ROWS")
    cursor.execute("CREATE INDEX IF NOT EXISTS metric_curve_day ON metric_curve (dim, key, period, t)")
    # For the forecasts' expected day (metrics.forecast): whole groups' PoV curves by share.
    cursor.execute("CREATE INDEX IF NOT EXISTS metric_curve_share ON metric_curve (dim, key, pov, t) WHERE period = ''")
    cursor.execute("TRUNCATE metric_base, metric_curve")


def fill_base(cursor: CursorWrapper, engagements: QuerySet[Engagement], tenant: Tenant, now: datetime) -> None:
    """metric_base: the selected engagements as they stand at `now`."""
    create_work_tables(cursor)
    selected, selected_params = engagements.values("id").order_by().query.sql_with_params()
    days_since = "extract(epoch FROM %s::timestamptz - {})::float8 / 86400.0"
    sql = FILL_BASE.format(
        days_since_pos=days_since.format("e.pos_at"), days_since_pause=days_since.format("e.paused_since"),
        selected=selected,
        engagements=table(Engagement), offerings=table(Offering), customers=table(Customer),
        purchases=table(Purchase), members=table(Member), users=table(User), forecasts=table(Forecast),
        reaches=table(MilestoneReach), milestones=table(Milestone),
    )  # fmt: skip
    cursor.execute(sql, [tenant.time_zone, now, now, now, tenant.pk, tenant.pk, *selected_params])


def grouped(dimensions: tuple, cohorts: bool) -> str:
    """The group rows: the base once per dimension (and once more per dimension by month)."""
    periods = ["''", "month"] if cohorts else ["''"]
    # Dimensions are checked against KEY_COLUMN by compute(); no value reaches this text.
    select = "SELECT '{dim}'::text AS dim, {key}::text AS key, {period}::text AS period, b.* FROM metric_base b"
    return " UNION ALL ".join(
        select.format(dim=dimension, key=KEY_COLUMN[dimension], period=period)
        for dimension in dimensions
        for period in periods
    )


# Aalen–Johansen -----------------------------------------------------------------------------------


def _bounds(f: str, v: str, name: str) -> str:
    """The 95% interval of incidence `f` with variance `v` on the log(−log) scale; null where lifelines
    gives none (no variance, or an incidence of exactly 0 or 1). Exponents are clamped to keep
    PostgreSQL from overflowing where the result is 0 or 1 anyway."""
    spread = f"1.959963984540054 * sqrt(greatest({v}, 0.0)) / ({f} * abs(ln({f})))"
    edge = f"{v} IS NOT NULL AND {f} > 0 AND {f} < 1"
    at = "exp(-exp(least(greatest(ln(-ln({f})) {sign} {spread}, -700.0), 700.0)))"
    low, high = at.format(f=f, sign="+", spread=spread), at.format(f=f, sign="-", spread=spread)
    return f"CASE WHEN {edge} THEN {low} END AS {name}_low, CASE WHEN {edge} THEN {high} END AS {name}_high"


# `days` holds, per group (dim, key, period) and clock day t, d1 PoV, d2 losses and `leaving`: everyone
# whose day it is (censored ones included). One output row per group and day with a PoV or a loss. n
# counts who is still waiting at the day, d the day's outcomes of either kind; s_prev is the overall
# survival just before the day.
DAYS = """
g AS ({rows}),
days AS (
    SELECT dim, key, period, {clock} AS t, count(*) FILTER (WHERE outcome = 1) AS d1,
           count(*) FILTER (WHERE outcome = 2) AS d2, count(*) AS leaving
    FROM g GROUP BY dim, key, period, {clock}
)"""
ESTIMATE = """
risk AS (
    SELECT dim, key, period, t, d1::float8 AS d1, d2::float8 AS d2, (d1 + d2)::float8 AS d,
           sum(leaving) OVER (PARTITION BY dim, key, period ORDER BY t DESC)::float8 AS n
    FROM days
),
survival AS (
    SELECT *, CASE WHEN bool_or(d = n) OVER w THEN 0.0
                   ELSE exp(sum(ln(1.0 - d / n)) FILTER (WHERE d < n) OVER w) END AS s,
           bool_or(d = n) OVER w AS unbounded
    FROM risk WHERE d > 0
    WINDOW w AS (PARTITION BY dim, key, period ORDER BY t)
),
incidence AS (
    SELECT *, sum(s_prev * d1 / n) OVER w AS f1, sum(s_prev * d2 / n) OVER w AS f2,
           CASE WHEN d < n THEN d / (n * (n - d)) END AS a
    FROM (SELECT *, coalesce(lag(s) OVER (PARTITION BY dim, key, period ORDER BY t), 1.0) AS s_prev
          FROM survival) lagged
    WINDOW w AS (PARTITION BY dim, key, period ORDER BY t)
),
terms AS (
    SELECT dim, key, period, t, f1, f2, unbounded, sum(a) OVER w AS sa,
           sum(a * f1) OVER w AS sa1, sum(a * f1 * f1) OVER w AS saa1,
           sum(a * f2) OVER w AS sa2, sum(a * f2 * f2) OVER w AS saa2,
           sum(s_prev * s_prev * d1 * (n - d1) / (n * n * n)) OVER w AS q1,
           sum(s_prev * s_prev * d2 * (n - d2) / (n * n * n)) OVER w AS q2,
           sum(s_prev * d1 / (n * n)) OVER w AS g1, sum(s_prev * d1 * f1 / (n * n)) OVER w AS h1,
           sum(s_prev * d2 / (n * n)) OVER w AS g2, sum(s_prev * d2 * f2 / (n * n)) OVER w AS h2
    FROM incidence
    WINDOW w AS (PARTITION BY dim, key, period ORDER BY t)
),
variance AS (
    SELECT dim, key, period, t, f1, f2,
           CASE WHEN NOT unbounded THEN f1 * f1 * sa - 2 * f1 * sa1 + saa1 + q1 - 2 * (f1 * g1 - h1) END AS v1,
           CASE WHEN NOT unbounded THEN f2 * f2 * sa - 2 * f2 * sa2 + saa2 + q2 - 2 * (f2 * g2 - h2) END AS v2
    FROM terms
)
SELECT dim, key, period, t, f1 AS pov, {bounds1}, f2 AS lost, {bounds2} FROM variance
"""


def aalen_johansen(rows: str, clock: str) -> str:
    """The statement giving (dim, key, period, day, pov, low, high, lost, low, high) for `rows`: each row one
    engagement with dim, key, period, outcome and the column `clock`."""
    return aalen_johansen_of_days(DAYS.format(rows=rows, clock=clock))


def aalen_johansen_of_days(days: str) -> str:
    """The same from common table expressions that end with `days` (see DAYS)."""
    return f"WITH {days}, {ESTIMATE.format(bounds1=_bounds('f1', 'v1', 'pov'), bounds2=_bounds('f2', 'v2', 'lost'))}"


def _curves(cursor: CursorWrapper, rows: str) -> None:
    """metric_curve: both curves of every group, on the value clock."""
    cursor.execute(f"INSERT INTO metric_curve {aalen_johansen(rows, 't')}")


def _by_target(cursor: CursorWrapper, rows: str) -> dict:
    """{(dim, key, period): {share, low, high}}: the PoV incidence at each engagement's own target day,
    on the clock counted from it (t − target days), so groups of several offerings answer too."""
    cursor.execute(
        f"""
        SELECT DISTINCT ON (dim, key, period) dim, key, period, pov, pov_low, pov_high
        FROM ({aalen_johansen(rows, "t - target_days")}) aj WHERE t <= 0
        ORDER BY dim, key, period, t DESC
        """  # noqa: S608 - names only
    )
    return {row[:3]: {"share": row[3], "low": row[4], "high": row[5]} for row in cursor.fetchall()}


def _quantiles(cursor: CursorWrapper) -> dict:
    """{(dim, key, period): {name: first day the PoV incidence reaches the share}}."""
    firsts = ", ".join(f"min(t) FILTER (WHERE pov >= {share} - 1e-12)" for share in QUANTILES.values())
    cursor.execute(f"SELECT dim, key, period, {firsts} FROM metric_curve GROUP BY dim, key, period")  # noqa: S608
    return {row[:3]: dict(zip(QUANTILES, row[3:], strict=True)) for row in cursor.fetchall()}


def _thinned_curves(cursor: CursorWrapper) -> dict:
    """{(dim, key): (reached curve, lost curve)} of whole groups: every day while there are at most
    CURVE_POINTS, else the first day in each 1/CURVE_POINTS band of the share, and the last day."""
    curves: dict = {}
    for name, columns in (("reached", "pov, pov_low, pov_high"), ("lost", "lost, lost_low, lost_high")):
        share = columns.split(",")[0]
        cursor.execute(
            f"""
            SELECT dim, key, t, {columns} FROM (
                SELECT *, count(*) OVER (PARTITION BY dim, key) AS days,
                       row_number() OVER (PARTITION BY dim, key, floor({share} * %(points)s) ORDER BY t) AS first,
                       row_number() OVER (PARTITION BY dim, key ORDER BY t DESC) AS from_end
                FROM metric_curve WHERE period = ''
            ) c WHERE days <= %(points)s OR first = 1 OR from_end = 1
            ORDER BY dim, key, t
            """,  # noqa: S608 - names only
            {"points": CURVE_POINTS},
        )
        for dim, key, day, value, low, high in cursor.fetchall():
            pair = curves.setdefault((dim, key), ([], []))
            pair[0 if name == "reached" else 1].append({"day": day, "share": value, "low": low, "high": high})
    return curves


# Counts, backlog, histograms ------------------------------------------------------------------------

COUNTS = """
WITH g AS ({rows})
SELECT dim, key, period, count(*), {statuses}, count(*) FILTER (WHERE unowned),
       count(*) FILTER (WHERE at_risk AND outcome = 0),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY days_to_value) FILTER (WHERE outcome = 1),
       CASE WHEN min(target_days) = max(target_days) THEN min(target_days) END,
       min(age_days - target_days) >= 0
FROM g GROUP BY dim, key, period
"""


def _counts(cursor: CursorWrapper, rows: str) -> list[tuple]:
    statuses = ", ".join(f"count(*) FILTER (WHERE status = '{status}')" for status in STATUS_COUNTS)
    cursor.execute(COUNTS.format(rows=rows, statuses=statuses))
    return cursor.fetchall()


def _backlog(cursor: CursorWrapper, rows: str) -> dict:
    """{(dim, key): [{currency, ages: [{age, amount, stalled, at_risk}]}]} of open engagements with an amount."""
    bucket = " ".join(f"WHEN t >= {start} THEN '{name}'" for start, name in reversed(BACKLOG_AGES))
    cursor.execute(
        f"""
        WITH g AS ({rows})
        SELECT dim, key, currency, CASE {bucket} ELSE '0-30' END AS age, sum(amount),
               coalesce(sum(amount) FILTER (WHERE status = 'stalled'), 0),
               coalesce(sum(amount) FILTER (WHERE at_risk), 0)
        FROM g WHERE outcome = 0 AND amount IS NOT NULL GROUP BY dim, key, currency, age
        """  # noqa: S608 - names only
    )
    found: dict = {}
    for dim, key, currency, age, amount, stalled, at_risk in cursor.fetchall():
        found.setdefault((dim, key), {}).setdefault(currency, {})[age] = (amount, stalled, at_risk)
    return {
        group: [
            {"currency": currency, "ages": [_backlog_age(name, ages.get(name)) for _, name in BACKLOG_AGES]}
            for currency, ages in sorted(currencies.items())
        ]
        for group, currencies in found.items()
    }


def _backlog_age(name: str, values: tuple | None) -> dict:
    amount, stalled, at_risk = values or (0, 0, 0)
    return {"age": name, "amount": str(amount), "stalled": str(stalled), "at_risk": str(at_risk)}


def _histograms(cursor: CursorWrapper, rows: str) -> dict:
    """{(dim, key): {week: count}} of days to value of the reached engagements."""
    cursor.execute(
        f"""
        WITH g AS ({rows})
        SELECT dim, key, least(floor(days_to_value / 7.0)::int, %s) AS week, count(*)
        FROM g WHERE outcome = 1 GROUP BY dim, key, week
        """,  # noqa: S608 - names only
        [HISTOGRAM_WEEKS - 1],
    )
    counts: dict = {}
    for dim, key, week, count in cursor.fetchall():
        counts.setdefault((dim, key), {})[week] = count
    return counts


def dense_histogram(counts: dict) -> list[dict]:
    """[{week, count, open}] from {week: count}, every week from 0 to the last one with a count."""
    if not counts:
        return []
    return [
        {"week": week, "count": counts.get(week, 0), "open": week == HISTOGRAM_WEEKS - 1}
        for week in range(max(counts) + 1)
    ]


# Putting a group together ------------------------------------------------------------------------------


def empty_summary() -> dict:
    return {
        "purchases": 0, **dict.fromkeys(STATUS_COUNTS, 0), "unowned": 0, "at_risk": 0, "pov_rate": None,
        **dict.fromkeys(QUANTILES), "target_days": None, "reached_by_target": None,
        "median_days_among_reached": None, "reached_curve": [], "lost_curve": [], "value_backlog": [],
        "histogram": [],
    }  # fmt: skip


def _groups(cursor: CursorWrapper, dimensions: tuple, rows: str) -> dict:
    whole = grouped(dimensions, cohorts=False)
    counts = _counts(cursor, rows)
    quantiles, curves = _quantiles(cursor), _thinned_curves(cursor)
    by_target = _by_target(cursor, rows)
    backlog, histograms = _backlog(cursor, whole), _histograms(cursor, whole)
    groups: dict = {}
    for row in sorted(counts, key=lambda r: (r[0], r[1], r[2])):
        dim, key, period = row[:3]
        purchases, *statuses = row[3:9]
        unowned, at_risk, median_among_reached, target, mature = row[9:14]
        summary = {
            "purchases": purchases, **dict(zip(STATUS_COUNTS, statuses, strict=True)), "unowned": unowned,
            "at_risk": at_risk, "pov_rate": statuses[0] / purchases if purchases else None,
            **quantiles.get((dim, key, period), dict.fromkeys(QUANTILES)), "target_days": target,
            "reached_by_target": by_target.get((dim, key, period), {"share": 0.0, "low": None, "high": None}),
            "median_days_among_reached": median_among_reached,
        }  # fmt: skip
        if period:
            groups[(dim, key)]["cohorts"].append(
                {"month": period, **{k: summary[k] for k in COHORT_FIELDS}, "mature": bool(mature)}
            )
            continue
        reached_curve, lost_curve = curves.get((dim, key), ([], []))
        summary |= {
            "reached_curve": reached_curve, "lost_curve": lost_curve, "value_backlog": backlog.get((dim, key), []),
            "histogram": dense_histogram(histograms.get((dim, key), {})),
        }  # fmt: skip
        groups[(dim, key)] = {"summary": summary, "cohorts": []}
    return groups


COHORT_FIELDS = ("purchases", "reached", "pov_rate", "reached_by_target")


# Funnel ----------------------------------------------------------------------------------------------


def _reaches(cursor: CursorWrapper) -> dict:
    """{(offering key, milestone id): (reached, median clock days, dropped)}: dropped are those past the
    milestone's due day (on the value clock) without it."""
    cursor.execute(
        f"""
        SELECT b.offering, m.id, count(r.milestone_id), percentile_cont(0.5) WITHIN GROUP (ORDER BY r.clock_days),
               count(*) FILTER (WHERE r.milestone_id IS NULL AND b.t > m.due_day)
        FROM metric_base b JOIN {table(Milestone)} m ON m.offering_id = b.offering_id
        LEFT JOIN {table(MilestoneReach)} r ON r.engagement_id = b.id AND r.milestone_id = m.id
        GROUP BY b.offering, m.id
        """  # noqa: S608 - names only
    )
    return {(offering, milestone): tuple(rest) for offering, milestone, *rest in cursor.fetchall()}


def _funnels(engagements: QuerySet[Engagement], groups: dict, reaches: dict, also: list) -> dict:
    """Per offering among the selected engagements (and the offerings in `also`, even with none of them):
    each milestone's reached count, rate, median clock days and dropped count."""
    purchases = dict.fromkeys(also, 0) | _purchases_per_offering(engagements, groups)
    milestones = Milestone.objects.filter(offering__key__in=purchases.keys()).select_related("offering")
    funnels = {key: {"offering": key, "purchases": count, "milestones": []} for key, count in purchases.items()}
    for milestone in milestones.order_by("offering__key", "order"):
        offering_key = milestone.offering.key
        reached, median, dropped = reaches.get((offering_key, milestone.id), (0, None, 0))
        count = purchases[offering_key]
        funnels[offering_key]["milestones"].append(
            {
                "milestone": milestone.key, "name": milestone.name, "due_day": milestone.due_day,
                "is_pov": milestone.is_pov, "reached": reached, "rate": reached / count if count else None,
                "median_clock_days": median, "dropped": dropped,
            }
        )  # fmt: skip
    return funnels


def _purchases_per_offering(engagements: QuerySet[Engagement], groups: dict) -> dict:
    offering_groups = {key: g["summary"]["purchases"] for (dim, key), g in groups.items() if dim == "offering"}
    if offering_groups:
        return offering_groups
    return dict(engagements.order_by().values_list("offering__key").annotate(n=Count("id")))
