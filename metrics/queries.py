"""Reading the metrics of docs/metrics.md for a filter: from the stored rollups when they hold it, live otherwise.

The rollups hold every tenant's numbers overall and per offering, segment, owner and sales rep
(one filter at a time, no purchase period): those reads are one indexed query. Any other
combination is computed live by metrics.compute over the filtered engagements. An explicit `now`
asks for a live computation as of that instant (the clock matters: Kaplan–Meier censors open
engagements at now). Reads run inside a tenant scope; every result carries `computed_at`.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from engagement import queries as engagement_queries
from engagement.errors import Invalid, Missing
from engagement.filters import UNOWNED, EngagementFilter, filtered_engagements
from engagement.models import Engagement, Event, Offering
from metrics import rollups
from metrics.compute import Computed, compute, empty_summary
from metrics.models import Alert, MetricRollup
from pov.rows import table
from tenants.models import Member, Tenant

GROUP_FILTERS = ("offering", "segment", "owner", "sales_rep")
SCOREBOARD_FIELDS = ("purchases", "reached", "lost", "pov_rate", "reached_by_target", "days_to_value_p50")
# A scoreboard row is ranked only on enough engagements and a narrow enough interval: a rep with four
# customers must not top one with four hundred on noise.
RANKABLE_PURCHASES, RANKABLE_WIDTH = 20, 0.30


def stored_group(flt: EngagementFilter) -> tuple[str, str] | None:
    """The (dimension, key) of the rollup that answers `flt` exactly, or None."""
    if flt.status or flt.at_risk is not None or flt.purchased_from or flt.purchased_to:
        return None
    chosen = [(name, getattr(flt, name)) for name in GROUP_FILTERS if getattr(flt, name)]
    if not chosen:
        return ("all", "")
    if len(chosen) > 1:
        return None
    name, value = chosen[0]
    if name == "owner" and value.lower() == UNOWNED:
        return ("owner", "")  # the rollups' group of engagements without an owner
    # Member emails are stored lower-cased; the filter matches them case-insensitively.
    return (name, value.lower() if name in ("owner", "sales_rep") else value)


def _stored(flt: EngagementFilter, now: datetime | None) -> MetricRollup | None:
    group = stored_group(flt) if now is None else None
    return rollups.current(*group) if group else None


def _stored_summary(row: MetricRollup) -> dict:
    # Rows stored before a field existed answer with its empty value until the next recompute.
    return {**empty_summary(), **row.summary, "computed_at": row.computed_at}


def _live(flt: EngagementFilter, tenant: Tenant, now: datetime | None, **options: Any) -> tuple[Computed, datetime]:
    now = now or timezone.now()
    return compute(filtered_engagements(flt, tenant), tenant, now, **options), now


def summary(flt: EngagementFilter, tenant: Tenant, now: datetime | None = None) -> dict:
    if row := _stored(flt, now):
        return _stored_summary(row)
    computed, now = _live(flt, tenant, now)
    return {**computed.summary(), "computed_at": now}


def summary_and_cohorts(flt: EngagementFilter, tenant: Tenant, now: datetime | None = None) -> tuple[dict, dict]:
    """Both, from one stored row or one live computation (the overview shows both)."""
    if row := _stored(flt, now):
        return _stored_summary(row), {"results": row.cohorts, "computed_at": row.computed_at}
    computed, now = _live(flt, tenant, now, cohorts=True)
    group = computed.groups[("all", "")]
    return {**group["summary"], "computed_at": now}, {"results": group["cohorts"], "computed_at": now}


def cohorts(flt: EngagementFilter, tenant: Tenant, now: datetime | None = None) -> dict:
    """Per purchase month in the tenant's time zone, oldest first."""
    if row := _stored(flt, now):
        return {"results": row.cohorts, "computed_at": row.computed_at}
    computed, now = _live(flt, tenant, now, cohorts=True)
    return {"results": computed.groups[("all", "")]["cohorts"], "computed_at": now}


def funnel(flt: EngagementFilter, tenant: Tenant, offering: Offering, now: datetime | None = None) -> dict:
    """Per milestone of `offering`: engagements that reached it, the rate, median clock days."""
    narrowed = EngagementFilter(**{**flt.__dict__, "offering": offering.key})
    row = _stored(narrowed, now)
    if row and row.funnel:
        return {**row.funnel, "computed_at": row.computed_at}
    computed, now = _live(narrowed, tenant, now, funnel=offering.key)
    return {**computed.funnels[offering.key], "computed_at": now}


def scoreboard(flt: EngagementFilter, tenant: Tenant, by: str, now: datetime | None = None) -> dict:
    """Per `owner` or `sales_rep` (members with none of these engagements are left out): the ranked rows by
    their share reaching PoV by the target day, best first, then those too few or too uncertain to rank."""
    rows = rollups.current_rows(by) if now is None and flt.is_empty else None
    if rows is not None:
        groups = {row.key: row.summary for row in rows}
        computed_at = max(row.computed_at for row in rows) if rows else rollups.computed_at()
    else:
        computed, computed_at = _live(flt, tenant, now, dimensions=(by,))
        groups = {key: group["summary"] for (_, key), group in computed.groups.items()}
    results = [scoreboard_row(by, key, {**empty_summary(), **s}) for key, s in groups.items()]
    results.sort(key=rank)
    return {"results": results, "computed_at": computed_at}


def scoreboard_row(by: str, key: str, summary: dict) -> dict:
    by_target = summary["reached_by_target"] or {"share": None, "low": None, "high": None}
    # No interval: the share is exactly 0 or 1 (or nobody was left waiting); the count alone decides.
    # The tolerance keeps 0.7 − 0.4 (0.30000000000000004) at 30 points.
    narrow = by_target["low"] is None or by_target["high"] - by_target["low"] <= RANKABLE_WIDTH + 1e-9
    rankable = bool(key) and summary["purchases"] >= RANKABLE_PURCHASES and by_target["share"] is not None and narrow
    return {by: key or None, **{f: summary[f] for f in SCOREBOARD_FIELDS}, "rankable": rankable}


def rank(row: dict) -> tuple:
    """Rankable rows first, by share reaching PoV by the target day, then days to value; then the rest by name."""
    name = next(value for field, value in row.items() if field in ("owner", "sales_rep")) or "~"
    if not row["rankable"]:
        return (1, 0.0, 0.0, name)
    p50 = row["days_to_value_p50"]
    return (0, -row["reached_by_target"]["share"], p50 if p50 is not None else float("inf"), name)


# Each customer's latest answer about each success criterion (the criteria_met of satisfaction events; the
# same words in any letter case are one criterion), counted per offering: its CRITERIA_SHOWN most answered
# criteria, each shown as most recently written.
CRITERIA_MET = """
SELECT name, criterion, answered, met FROM (
    SELECT o.name, o.id AS offering_id, (array_agg(a.criterion ORDER BY a.occurred_at DESC))[1] AS criterion,
           count(*) AS answered, count(*) FILTER (WHERE a.met) AS met,
           row_number() OVER (PARTITION BY o.id ORDER BY count(*) DESC, lower(min(a.criterion))) AS place
    FROM (
        SELECT DISTINCT ON (ev.engagement_id, lower(answer.key))
               ev.engagement_id, answer.key AS criterion, answer.value = 'true'::jsonb AS met, ev.occurred_at
        FROM {events} ev CROSS JOIN LATERAL jsonb_each(ev.criteria_met) answer
        WHERE ev.tenant_id = %s AND ev.type = 'satisfaction' AND ev.criteria_met IS NOT NULL
          AND ev.engagement_id IN ({selected})
        ORDER BY ev.engagement_id, lower(answer.key), ev.occurred_at DESC, ev.created_at DESC, ev.id DESC
    ) a
    JOIN {engagements} e ON e.id = a.engagement_id AND e.tenant_id = %s
    JOIN {offerings} o ON o.id = e.offering_id AND o.tenant_id = %s
    GROUP BY o.id, o.name, lower(a.criterion)
) counted
WHERE place <= %s
ORDER BY name, offering_id, place
"""
CRITERIA_SHOWN = 5


def criteria_met(flt: EngagementFilter, tenant: Tenant) -> list[dict]:
    """How often each offering's most common success criteria were met, by the customers' latest answers:
    [{offering, criterion, answered, met, share}], for the engagements `flt` selects."""
    selected, params = filtered_engagements(flt, tenant).values("id").order_by().query.sql_with_params()
    sql = CRITERIA_MET.format(events=table(Event), engagements=table(Engagement), offerings=table(Offering),
                              selected=selected)  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant.pk, *params, tenant.pk, tenant.pk, CRITERIA_SHOWN])
        rows = cursor.fetchall()
    return [{"offering": offering, "criterion": criterion, "answered": answered, "met": met, "share": met / answered}
            for offering, criterion, answered, met in rows]  # fmt: skip


TREND_FIELDS = ("purchases", "reached", "stalled", "pov_rate", "days_to_value_p50", "reached_by_target")


def trend(flt: EngagementFilter, days: int) -> dict:
    """The daily snapshots of the group `flt` selects, oldest first (one per tenant-local day)."""
    group = stored_group(flt)
    if group is None:
        raise Invalid(
            {
                "filters": [
                    "Trends are kept overall and per offering, segment, owner or sales rep: "
                    "give at most one of these filters and no purchase period."
                ]
            }
        )
    points = [{"day": day, **s} for day, s in rollups.trend(*group, days=days, fields=TREND_FIELDS)]
    return {"results": points, "computed_at": rollups.computed_at()}


def alert_queue(states: Iterable[str], assignee: Member | None = None) -> QuerySet[Alert]:
    """Alerts in `states`, most overdue first (the earliest due date has waited longest)."""
    alerts = (
        Alert.objects.filter(state__in=states)
        .select_related("engagement__customer", "engagement__offering", "engagement__owner__user", "assignee__user")
        .annotate(step_name=engagement_queries.milestone_name("engagement__offering_id", "step"))
    )
    if assignee is not None:
        alerts = alerts.filter(assignee=assignee)
    return alerts.order_by("due_at", "id")


def offering_for_funnel(key: str) -> Offering:
    if not key:
        raise Invalid({"offering": ["The funnel is per offering: give ?offering=<key>."]})
    offering = Offering.objects.prefetch_related("milestones").filter(key=key).first()
    if offering is None:
        raise Missing("offering", f"No offering {key!r}.")
    return offering
