"""How well the forecasts come true (docs/metrics.md, "Backtest").

As of a past instant, each engagement purchased by then is seen as it stood then: reached PoV, lost, or
open on its value clock at that instant (pauses recorded by then taken off). The curves are fitted on
that view alone and every engagement open then is forecast exactly as the nightly forecasts are. Each
forecast is then scored against what happened since: it came true when the engagement reached PoV by its
target day; it failed when it was lost, reached PoV later, or is still open past the target; forecasts
of engagements still open and not yet past their target are left out, their outcome unknown.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from engagement.models import Engagement, Event, Milestone, MilestoneReach, Offering
from engagement.sql import table
from metrics.compute import aalen_johansen, create_work_tables, grouped
from metrics.forecast import forecasts, similar_curves
from metrics.models import BacktestRun
from tenants.models import Tenant

DECILES = 10

# Paused time before as_of comes from the paused and resumed events recorded by then: a pause runs to the
# event after it (its resume: an engagement is paused only while it is not), or to as_of.
AS_OF_BASE = """
WITH pauses AS (
    SELECT engagement_id, sum(extract(epoch FROM coalesce(next_at, %(as_of)s) - occurred_at)) / 86400.0 AS days
    FROM (SELECT engagement_id, type, occurred_at,
                 lead(occurred_at) OVER (PARTITION BY engagement_id ORDER BY occurred_at) AS next_at
          FROM {events} WHERE tenant_id = %(tenant)s AND type IN ('paused', 'resumed') AND occurred_at < %(as_of)s) ev
    WHERE type = 'paused' GROUP BY engagement_id
)
INSERT INTO metric_base (id, offering_id, status, offering, target_days, outcome, t, furthest, at_risk)
SELECT e.id, e.offering_id, '', o.key, o.target_days,
       CASE WHEN e.pov_at <= %(as_of)s THEN 1 WHEN e.lost_at <= %(as_of)s THEN 2 ELSE 0 END,
       CASE WHEN e.pov_at <= %(as_of)s THEN e.days_to_value WHEN e.lost_at <= %(as_of)s THEN e.days_to_loss
            ELSE extract(epoch FROM %(as_of)s - e.pos_at) / 86400.0 - coalesce(p.days, 0.0) END,
       coalesce((SELECT max(m."order") FROM {reaches} r JOIN {milestones} m ON m.id = r.milestone_id
                 WHERE r.tenant_id = %(tenant)s AND r.engagement_id = e.id AND r.reached_at <= %(as_of)s), -1),
       false
FROM {engagements} e JOIN {offerings} o ON o.id = e.offering_id LEFT JOIN pauses p ON p.engagement_id = e.id
WHERE e.tenant_id = %(tenant)s AND e.pos_at <= %(as_of)s
"""

# What happened to each forecast engagement: 1 reached PoV by the target day, 0 did not, null not known yet.
# The clock now is counted as metric_base counts it.
OUTCOMES = """
SELECT e.id, CASE WHEN e.status = 'reached' THEN (e.days_to_value <= o.target_days)::int
                  WHEN e.status = 'lost' THEN 0
                  WHEN extract(epoch FROM %(now)s - e.pos_at) / 86400.0 - e.paused_days
                       - coalesce(extract(epoch FROM %(now)s - e.paused_since) / 86400.0, 0.0) > o.target_days THEN 0
             END
FROM {engagements} e JOIN {offerings} o ON o.id = e.offering_id
WHERE e.tenant_id = %(tenant)s AND e.id = ANY(%(ids)s)
"""


@dataclass
class Backtest:
    as_of: date
    forecast: int  # engagements open on as_of
    scored: int  # of those, whose outcome is known now
    brier: float | None
    auc: float | None
    calibration: list[dict]  # per decile of the forecast: label, count, predicted, observed

    def as_json(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "forecast": self.forecast, "scored": self.scored,
                "brier": self.brier, "auc": self.auc, "calibration": self.calibration}  # fmt: skip


def end_of_day(tenant: Tenant, day: date) -> datetime:
    """The instant `day` ends in the company's time zone."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=ZoneInfo(tenant.time_zone))


def _names() -> dict:
    return {"events": table(Event), "reaches": table(MilestoneReach), "milestones": table(Milestone),
            "engagements": table(Engagement), "offerings": table(Offering)}  # fmt: skip


def _fill_as_of(cursor: CursorWrapper, tenant: Tenant, day: date) -> None:
    create_work_tables(cursor)
    cursor.execute(AS_OF_BASE.format(**_names()), {"as_of": end_of_day(tenant, day), "tenant": tenant.pk})


def clocks_on(tenant: Tenant, day: date) -> dict:
    """{engagement id: clock day} of the engagements open at the end of `day`, as the backtest sees them."""
    with transaction.atomic(), connection.cursor() as cursor:
        _fill_as_of(cursor, tenant, day)
        cursor.execute("SELECT id, t FROM metric_base WHERE outcome = 0")
        return dict(cursor.fetchall())


def run(tenant: Tenant, day: date, now: datetime) -> Backtest:
    """Forecast the engagements open at the end of `day` from what was known then, and score them as of
    `now`. Runs inside the tenant's scope."""
    with transaction.atomic(), connection.cursor() as cursor:
        _fill_as_of(cursor, tenant, day)
        cursor.execute(f"INSERT INTO metric_curve {aalen_johansen(grouped(('offering',), cohorts=False), 't')}")
        similar_curves(cursor)
        predicted = {row[0]: row[1] for row in forecasts(cursor) if row[1] is not None}
        cursor.execute(OUTCOMES.format(**_names()), {"now": now, "tenant": tenant.pk, "ids": list(predicted)})
        pairs = [(predicted[id_], happened) for id_, happened in cursor.fetchall() if happened is not None]
    return Backtest(day, len(predicted), len(pairs), brier(pairs), auc(pairs), calibration(pairs))


def brier(pairs: list[tuple[float, int]]) -> float | None:
    """Mean squared difference between the forecast chance and what happened (1 or 0); 0 is perfect."""
    return sum((p - y) ** 2 for p, y in pairs) / len(pairs) if pairs else None


def auc(pairs: list[tuple[float, int]]) -> float | None:
    """The chance that a customer who made it was forecast higher than one who did not (ties count half):
    the Mann–Whitney statistic over average ranks. None unless both outcomes occur."""
    positives = sum(y for _, y in pairs)
    negatives = len(pairs) - positives
    if not positives or not negatives:
        return None
    ordered = sorted(pairs)
    rank_sum, start = 0.0, 0
    while start < len(ordered):
        end = start
        while end < len(ordered) and ordered[end][0] == ordered[start][0]:
            end += 1
        average_rank = (start + 1 + end) / 2  # ranks start..end-1, counted from 1
        rank_sum += average_rank * sum(y for _, y in ordered[start:end])
        start = end
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def calibration(pairs: list[tuple[float, int]]) -> list[dict]:
    """Per decile of the forecast chance (0–10 %, …, 90–100 %): how many, their mean forecast, and the share
    of them that came true."""
    bins: list[list[tuple[float, int]]] = [[] for _ in range(DECILES)]
    for p, y in pairs:
        bins[min(int(p * DECILES), DECILES - 1)].append((p, y))
    return [
        {
            "label": f"{index * 10}–{index * 10 + 10} %",
            "count": len(members),
            "predicted": sum(p for p, _ in members) / len(members) if members else None,
            "observed": sum(y for _, y in members) / len(members) if members else None,
        }
        for index, members in enumerate(bins)
    ]


def save(tenant: Tenant, result: Backtest) -> BacktestRun:
    return BacktestRun.objects.create(
        tenant=tenant, as_of=result.as_of, scored=result.scored, brier=result.brier, auc=result.auc,
        calibration=result.calibration,
    )  # fmt: skip
