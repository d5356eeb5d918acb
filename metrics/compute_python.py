"""The portable path of metrics.compute: CONTRACT §5 in Python over the projection rows (SQLite).

PostgreSQL takes the set-based path in metrics.compute_sql; both give the same numbers (tests pin
each against a brute-force computation).
"""

import math
from collections import defaultdict
from datetime import timedelta

from engagement.models import MilestoneReach, Status
from metrics.stats import first_time_reaching, kaplan_meier, percentile, survival_at, thin_curve

ROW_FIELDS = (
    "id", "status", "offering__key", "offering__target_days", "customer__segment", "owner_id",
    "owner__user__email", "sales_rep__user__email", "pos_at", "days_to_value", "days_to_loss",
    "paused_days", "paused_since",
)  # fmt: skip
KEY_OF = {
    "all": lambda row: "",
    "offering": lambda row: row["offering__key"],
    "segment": lambda row: row["customer__segment"] or "",
    "owner": lambda row: row["owner__user__email"] or "",
    "sales_rep": lambda row: row["sales_rep__user__email"] or "",
}
STATUSES = tuple(Status.values)


def compute(engagements, tenant, now, *, dimensions, cohorts, funnel):
    """(groups, reaches): see metrics.compute.compute."""
    rows = [dict(zip(ROW_FIELDS, r, strict=True)) for r in engagements.values_list(*ROW_FIELDS).order_by()]
    members = defaultdict(list)
    for row in rows:
        for dimension in dimensions:
            members[(dimension, KEY_OF[dimension](row))].append(row)
    groups = {
        group: {"summary": summary_of(rows_, now), "cohorts": cohorts_of(rows_, tenant, now) if cohorts else []}
        for group, rows_ in members.items()
    }
    return groups, (_reaches(engagements) if funnel else {})


def _reaches(engagements):
    """{(offering key, milestone id): (reached, median clock days)} over the selected engagements."""
    days = defaultdict(list)
    rows = MilestoneReach.objects.filter(engagement__in=engagements.values("id")).values_list(
        "engagement__offering__key", "milestone_id", "clock_days"
    )
    for offering_key, milestone_id, clock_days in rows.order_by():
        days[(offering_key, milestone_id)].append(clock_days)
    return {group: (len(values), percentile(sorted(values), 0.5)) for group, values in days.items()}


def _clock_now(row, now):
    """Days on the value clock from pos_at to now (paused time excluded)."""
    paused = row["paused_days"] + ((now - row["paused_since"]) / timedelta(days=1) if row["paused_since"] else 0.0)
    return (now - row["pos_at"]) / timedelta(days=1) - paused


def km_inputs(rows, now):
    """(durations, observed): PoV at days_to_value; lost censored at loss; others censored now."""
    durations, observed = [], []
    for row in rows:
        if row["status"] == Status.REACHED:
            durations.append(row["days_to_value"])
            observed.append(True)
        elif row["status"] == Status.LOST:
            durations.append(row["days_to_loss"])
            observed.append(False)
        else:
            durations.append(_clock_now(row, now))
            observed.append(False)
    return durations, observed


def base_metrics(rows):
    counts = dict.fromkeys(STATUSES, 0)
    unowned = 0
    for row in rows:
        counts[row["status"]] += 1
        unowned += row["owner_id"] is None
    reached_rows = [r for r in rows if r["status"] == Status.REACHED]
    values = sorted(r["days_to_value"] for r in reached_rows)
    on_time = sum(1 for r in reached_rows if r["days_to_value"] <= r["offering__target_days"])
    purchases = len(rows)
    return {
        "purchases": purchases,
        **counts,
        "unowned": unowned,
        "pov_rate": counts[Status.REACHED] / purchases if purchases else None,
        "median_days_to_value": percentile(values, 0.5),
        "p75_days_to_value": percentile(values, 0.75),
        "p90_days_to_value": percentile(values, 0.9),
        "on_time_rate": on_time / len(reached_rows) if reached_rows else None,
    }


def _single_target(rows):
    targets = {r["offering__target_days"] for r in rows}
    return targets.pop() if len(targets) == 1 else None


def km_metrics(rows, now):
    steps = kaplan_meier(*km_inputs(rows, now)) if rows else []
    target = _single_target(rows)
    return {
        "km_curve": [{"day": day, "reached_share": 1.0 - s} for day, s in thin_curve(steps)],
        "km_median_days": first_time_reaching(steps, 0.5),
        "target_days": target,
        "km_reached_by_target": (1.0 - survival_at(steps, target)) if target is not None and rows else None,
    }


HISTOGRAM_WEEKS = 26  # the last bin holds everything from week 25 on


def dense_histogram(counts):
    """[{week, count, open}] from {week: count}, every week from 0 to the last one with a count."""
    if not counts:
        return []
    last = max(counts)
    return [
        {"week": week, "count": counts.get(week, 0), "open": week == HISTOGRAM_WEEKS - 1} for week in range(last + 1)
    ]


def histogram(rows):
    """Days to value of the reached engagements, in weeks."""
    counts = defaultdict(int)
    for row in rows:
        if row["status"] == Status.REACHED:
            counts[min(math.floor(row["days_to_value"] / 7.0), HISTOGRAM_WEEKS - 1)] += 1  # as SQL floor(x / 7.0)
    return dense_histogram(counts)


def summary_of(rows, now):
    return {**base_metrics(rows), **km_metrics(rows, now), "histogram": histogram(rows)}


def cohorts_of(rows, tenant, now):
    """Per purchase month in the tenant's time zone, oldest first."""
    by_month = defaultdict(list)
    for row in rows:
        by_month[row["pos_at"].astimezone(tenant.tzinfo).strftime("%Y-%m")].append(row)
    results = []
    for month in sorted(by_month):
        base = base_metrics(by_month[month])
        km = km_metrics(by_month[month], now)
        results.append(
            {
                "month": month,
                "purchases": base["purchases"],
                "reached": base["reached"],
                "pov_rate": base["pov_rate"],
                "median_days_to_value": base["median_days_to_value"],
                "km_reached_by_target": km["km_reached_by_target"],
            }
        )
    return results
