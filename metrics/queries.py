"""Metrics of CONTRACT §5 over the engagements a filter selects, computed from the projection rows.

Reads run inside a tenant scope. Every result carries `computed_at`.
"""

from collections import defaultdict
from datetime import timedelta

from django.utils import timezone

from engagement.errors import Invalid, Missing
from engagement.filters import filtered_engagements
from engagement.models import MilestoneReach, Offering, Status
from metrics.stats import first_time_reaching, kaplan_meier, percentile, survival_at, thin_curve
from tenants.models import Member

ROW_FIELDS = (
    "id", "status", "owner_id", "sales_rep_id", "offering_id", "offering__target_days", "pos_at",
    "days_to_value", "days_to_loss", "paused_days", "paused_since",
)  # fmt: skip
STATUSES = tuple(Status.values)


def _rows(queryset):
    return [dict(zip(ROW_FIELDS, r, strict=True)) for r in queryset.values_list(*ROW_FIELDS).order_by()]


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


def summary(flt, tenant, now=None):
    now = now or timezone.now()
    rows = _rows(filtered_engagements(flt, tenant))
    return {**base_metrics(rows), **km_metrics(rows, now), "computed_at": now}


def cohorts(flt, tenant, now=None):
    """Per purchase month in the tenant's time zone, oldest first."""
    now = now or timezone.now()
    by_month = defaultdict(list)
    for row in _rows(filtered_engagements(flt, tenant)):
        by_month[row["pos_at"].astimezone(tenant.tzinfo).strftime("%Y-%m")].append(row)
    results = []
    for month in sorted(by_month):
        rows = by_month[month]
        base = base_metrics(rows)
        km = km_metrics(rows, now)
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
    return {"results": results, "computed_at": now}


def funnel(flt, tenant, offering, now=None):
    """Per milestone of `offering`: engagements that reached it, the rate, median clock days."""
    now = now or timezone.now()
    engagements = filtered_engagements(flt, tenant).filter(offering=offering)
    purchases = engagements.count()
    clock_days = defaultdict(list)
    reaches = MilestoneReach.objects.filter(engagement__in=engagements.values("id")).values_list(
        "milestone_id", "clock_days"
    )
    for milestone_id, days in reaches:
        clock_days[milestone_id].append(days)
    steps = []
    for milestone in offering.milestones.all():
        days = sorted(clock_days.get(milestone.id, ()))
        steps.append(
            {
                "milestone": milestone.key,
                "name": milestone.name,
                "due_day": milestone.due_day,
                "is_pov": milestone.is_pov,
                "reached": len(days),
                "rate": len(days) / purchases if purchases else None,
                "median_clock_days": percentile(days, 0.5),
            }
        )
    return {"offering": offering.key, "purchases": purchases, "milestones": steps, "computed_at": now}


def scoreboard(flt, tenant, by, now=None):
    """Base metrics grouped by `owner` or `sales_rep` (members with none of these engagements are omitted)."""
    now = now or timezone.now()
    groups = defaultdict(list)
    for row in _rows(filtered_engagements(flt, tenant)):
        groups[row[f"{by}_id"]].append(row)
    emails = dict(Member.objects.filter(id__in=[k for k in groups if k]).values_list("id", "user__email"))
    results = [{by: emails.get(member_id), **base_metrics(rows)} for member_id, rows in groups.items()]
    results.sort(key=lambda r: (r[by] is None, -(r["pov_rate"] or 0), r[by] or ""))
    return {"results": results, "computed_at": now}


def offering_for_funnel(key):
    if not key:
        raise Invalid({"offering": ["The funnel is per offering: give ?offering=<key>."]})
    offering = Offering.objects.prefetch_related("milestones").filter(key=key).first()
    if offering is None:
        raise Missing("offering", f"No offering {key!r}.")
    return offering
