"""Storing engagement projections: the one place that writes an engagement's derived columns and its
milestone reaches.

Whatever changes what an engagement's events mean goes through `refresh`: a single event, a batch, a
journey edit, a change of grace days and `recompute`; a new engagement, which has no events yet, is
derived by `derive_opened` before it is inserted. It re-derives each projection with
`projection.derive` from the stored events, so every path agrees with a rebuild by construction, writes
the rows whose values changed with one statement and makes the stored reaches equal the derived ones
with another, then publishes the status changes others react to. The clock's own transition (on track
to stalled once due + grace has passed) is `mark_stalled`, one UPDATE by the same rule.

Statements are set-based: rows travel as one array parameter per column (`unnest`), whatever their
number, and filter by tenant_id as row-level security expects.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import attrgetter
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from engagement import outbox
from engagement.models import Engagement, Event, Milestone, MilestoneReach, Offering, Status
from engagement.projection import Fact, Journey, Projection, derive, stalled_before
from engagement.sql import array, columns, fast_timestamps, table, unnest
from tenants.models import Tenant

PROJECTION_COLUMNS = (*Projection.FIELDS, "updated_at")
ROW_COLUMNS = ("id", "offering_id", "pos_at", *PROJECTION_COLUMNS)
FACT_COLUMNS = ("engagement_id", "type", "occurred_at", "milestone_id", "score", "created_at", "id")
REACH_COLUMNS = ("engagement_id", "milestone_id", "reached_at", "clock_days")
TRANSITION_KINDS = {Status.REACHED: outbox.REACHED_POV, Status.LOST: outbox.LOST, Status.STALLED: outbox.STALLED}


# Apps that derive rows from the projections (metrics: alerts and rollups) add `rebuild(tenant,
# progress_file)` here in AppConfig.ready(), so `recompute` rebuilds them too without this app importing them.
derived_rebuilders: list[Callable] = []


class Row:
    """An engagement as the projection sees it: what `derive` needs and the stored values to compare
    with. Engagement instances have the same attributes, so `refresh` takes either."""

    __slots__ = ROW_COLUMNS
    id: UUID
    offering_id: UUID
    pos_at: datetime
    status: str

    def __init__(self, values: Sequence[Any]):
        for name, value in zip(ROW_COLUMNS, values, strict=True):
            setattr(self, name, value)


@dataclass
class Refreshed:
    changed: int = 0  # rows whose derived values changed
    transitions: list = field(default_factory=list)  # (engagement id, old status, new status)

    def __iadd__(self, other: "Refreshed") -> "Refreshed":
        self.changed += other.changed
        self.transitions += other.transitions
        return self


# Reading what derive needs -------------------------------------------------------------------------


def load_journeys(offering_ids: Iterable[UUID]) -> dict[UUID, Journey]:
    """{offering id: Journey} from one query; a journey's milestones are the Milestone rows, in order."""
    rows = Milestone.objects.filter(offering_id__in=set(offering_ids)).select_related("offering")
    journeys = {}
    for offering_id, group in groupby(rows.order_by("offering_id", "order"), key=attrgetter("offering_id")):
        milestones = tuple(group)
        offering = milestones[0].offering
        journeys[offering_id] = Journey(milestones, offering.requires_satisfaction, offering.satisfaction_threshold)
    return journeys


# Journeys per process, with the updated_at of the offering they were read with. offering_save, the one
# writer of milestones, saves the offering with every journey edit, so another updated_at means another
# journey. Saves a query per single event: 0.9 of 8.4 ms in process (11%).
_journeys: dict[UUID, tuple[datetime, Journey]] = {}
JOURNEYS_KEPT = 1000


def journey_of(offering: Offering) -> Journey | None:
    """The journey of `offering` (a row read in this transaction), from the process's cache when current."""
    cached = _journeys.get(offering.pk)
    if cached is not None and cached[0] == offering.updated_at:
        return cached[1]
    journey = load_journeys([offering.pk]).get(offering.pk)
    if journey is not None:
        if len(_journeys) >= JOURNEYS_KEPT:
            _journeys.clear()
        _journeys[offering.pk] = (offering.updated_at, journey)
    return journey


def load_facts(tenant: Tenant, engagement_ids: Iterable[UUID]) -> dict[UUID, list[Fact]]:
    """{engagement id: [Fact]} of every stored event of these engagements, from one query."""
    facts = defaultdict(list)
    sql = (
        f"SELECT {', '.join(FACT_COLUMNS)} FROM {table(Event)} "  # noqa: S608
        f"WHERE tenant_id = %(tenant)s AND engagement_id = ANY({array('ids')}::uuid[])"
    )
    with fast_timestamps() as cursor:
        cursor.execute(sql, {"tenant": tenant.pk, "ids": list(engagement_ids)})
        rows = cursor.fetchall()
    for engagement_id, type_, at, milestone_id, score, created_at, event_id in rows:
        facts[engagement_id].append(Fact(type_, at, milestone_id, score, (created_at, event_id)))
    return facts


# Writing ------------------------------------------------------------------------------------------


def refresh(
    tenant: Tenant, rows: Sequence[Any], *, now: datetime | None = None, journeys: dict | None = None,
    added_since: dict[UUID, datetime] | None = None, announce: bool = True,
) -> Refreshed:  # fmt: skip
    """Re-derive `rows` (Row or Engagement, of `tenant`, locked or new in the caller's transaction), store
    what changed and publish the status changes (`announce=False`: only that metrics changed, for history
    such as the demo's, which should not set off reactions meant for live events).

    `added_since` is {engagement id: the earliest time of the events the caller just added} when it only
    added events. A reach at time t depends only on the events up to t, and an added event never removes
    one, so only the reaches at or after that time are written: for a batch of events on engagements
    that had theirs, that cut a third of the call (about 30 of 90 ms of statements for 1,000 events).
    Without it (a rebuild, a journey edit) the stored reaches are made equal to the derived ones."""
    now = now or timezone.now()
    journeys = journeys if journeys is not None else load_journeys({row.offering_id for row in rows})
    facts = load_facts(tenant, [row.id for row in rows])
    result, changed, reaches = Refreshed(), [], []
    for row in rows:
        journey = journeys.get(row.offering_id)
        if journey is None:
            continue
        old_status = row.status
        projection = derive(journey, row.pos_at, facts.get(row.id, ()), now=now, grace_days=tenant.grace_days)
        if _apply(row, projection):
            row.updated_at = now
            changed.append(row)
        if row.status != old_status:
            result.transitions.append((row.id, old_status, row.status))
        since = (added_since or {}).get(row.id)
        reaches += [
            (row.id, mid, at, days) for mid, (at, days) in projection.reaches.items() if not since or at >= since
        ]
    result.changed = len(changed)
    _save(tenant, changed)
    _sync_reaches(tenant, [row.id for row in rows], reaches, complete=added_since is None)
    publish_transitions(tenant, result, announce=announce)
    return result


def derive_opened(tenant: Tenant, rows: Sequence[Any], *, now: datetime, journeys: dict | None = None) -> Refreshed:
    """Derive the projection of engagements that purchases open onto `rows` before they are inserted (an
    engagement has no events yet when it opens), so each is written once. Publish the result with
    `publish_transitions` once they are stored."""
    journeys = journeys if journeys is not None else load_journeys({row.offering_id for row in rows})
    result = Refreshed()
    for row in rows:
        journey = journeys.get(row.offering_id)
        if journey is None:
            continue
        old_status = row.status
        _apply(row, derive(journey, row.pos_at, (), now=now, grace_days=tenant.grace_days))
        row.updated_at = now
        result.changed += 1
        if row.status != old_status:
            result.transitions.append((row.id, old_status, row.status))
    return result


def _apply(row: Any, projection: Projection) -> bool:
    """Copy the derived values onto the row; True when any changed."""
    changed = False
    for name in Projection.FIELDS:
        value = getattr(projection, name)
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _save(tenant: Tenant, rows: Sequence[Any]) -> None:
    """The projection columns of `rows`, with one UPDATE."""
    if not rows:
        return
    names = ("id", *PROJECTION_COLUMNS)
    values = [tuple(getattr(row, name) for name in names) for row in rows]
    assignments = ", ".join(f'"{name}" = v."{name}"' for name in PROJECTION_COLUMNS)
    sql = (
        f"UPDATE {table(Engagement)} e SET {assignments} FROM {unnest(Engagement, names)} "  # noqa: S608
        "WHERE e.id = v.id AND e.tenant_id = %(tenant)s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {**columns(Engagement, names, values), "tenant": tenant.pk})


# Writes only what differs. Then either nothing more, or (complete) deletes the reaches of these
# engagements that `wanted` does not hold, in the same statement.
SYNC_REACHES = """
WITH wanted AS (SELECT * FROM {unnest}),
upserted AS (
    INSERT INTO {reaches} AS r (tenant_id, engagement_id, milestone_id, reached_at, clock_days)
    SELECT %(tenant)s, w.* FROM wanted w
    ON CONFLICT (tenant_id, engagement_id, milestone_id) DO UPDATE
        SET reached_at = excluded.reached_at, clock_days = excluded.clock_days
        WHERE (r.reached_at, r.clock_days) IS DISTINCT FROM (excluded.reached_at, excluded.clock_days)
    RETURNING 1
)
{then}
"""
UPSERTED = "SELECT count(*) FROM upserted"
DELETE_THE_OTHERS = """
DELETE FROM {reaches} r
WHERE r.tenant_id = %(tenant)s AND r.engagement_id = ANY({engagements}::uuid[])
  AND NOT EXISTS (SELECT 1 FROM wanted w WHERE w.engagement_id = r.engagement_id AND w.milestone_id = r.milestone_id)
"""


def _sync_reaches(tenant: Tenant, engagement_ids: list[UUID], reaches: list[tuple], *, complete: bool) -> None:
    """Store `reaches` [(engagement, milestone, at, clock days)]; with `complete`, the stored reaches of
    these engagements become exactly these."""
    if not reaches and not complete:
        return
    reaches_table = table(MilestoneReach)
    then = (DELETE_THE_OTHERS if complete else UPSERTED).format(reaches=reaches_table, engagements=array("engagements"))
    sql = SYNC_REACHES.format(unnest=unnest(MilestoneReach, REACH_COLUMNS, params="reaches"), reaches=reaches_table,
                              then=then)  # fmt: skip
    params = {"tenant": tenant.pk, "engagements": engagement_ids, **columns(MilestoneReach, REACH_COLUMNS, reaches,
                                                                                  params="reaches")}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def publish_transitions(tenant: Tenant, refreshed: Refreshed, *, announce: bool = True) -> None:
    """Outbox messages for the status changes others react to, plus one CHANGED for metrics."""
    moved = defaultdict(list)  # (kind, from, to): engagement ids
    for engagement_id, old, new in refreshed.transitions if announce else ():
        if old == Status.LOST:
            moved[(outbox.REOPENED, old, new)].append(engagement_id)
        if new in TRANSITION_KINDS:
            moved[(TRANSITION_KINDS[new], old, new)].append(engagement_id)
    messages = [
        message
        for (kind, old, new), ids in moved.items()
        for message in outbox.listed(kind, "engagement", ids, {"from": old, "to": new})
    ]
    if refreshed.changed:
        messages.append((outbox.CHANGED, {"count": refreshed.changed}))
    outbox.publish(tenant, messages)


def rebuild_all(
    tenant: Tenant, engagements: QuerySet, *, now: datetime | None = None, chunk_size: int = 2000,
    progress: Callable[[int], Any] | None = None, announce: bool = True,
) -> Refreshed:  # fmt: skip
    """Refresh every engagement of the queryset, in chunks by primary key; `progress(n)` after each."""
    now = now or timezone.now()
    result, last_pk = Refreshed(), None
    journeys = load_journeys(engagements.order_by().values_list("offering_id", flat=True).distinct())
    ordered = engagements.order_by("pk")
    while rows := list((ordered.filter(pk__gt=last_pk) if last_pk else ordered)[:chunk_size]):
        result += refresh(tenant, rows, now=now, journeys=journeys, announce=announce)
        last_pk = rows[-1].pk
        if progress:
            progress(len(rows))
    return result


# The clock ----------------------------------------------------------------------------------------

MARK_STALLED = """
UPDATE {engagements} SET status = 'stalled', updated_at = %(now)s
WHERE tenant_id = %(tenant)s AND status = 'on_track' AND next_due_at < %(cutoff)s
RETURNING id
"""


def mark_stalled(tenant: Tenant, now: datetime) -> list[UUID]:
    """Engagements on track whose next step is overdue past the grace days become stalled (the stalled
    rule of `derive`, applied as time passes). Publishes the transitions; returns their ids."""
    sql = MARK_STALLED.format(engagements=table(Engagement))
    with connection.cursor() as cursor:
        cursor.execute(sql, {"now": now, "tenant": tenant.pk, "cutoff": stalled_before(now, tenant.grace_days)})
        ids = [row[0] for row in cursor.fetchall()]
    publish_transitions(tenant, Refreshed(len(ids), [(i, Status.ON_TRACK, Status.STALLED) for i in ids]))
    return ids
