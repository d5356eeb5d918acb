"""Persisting projections: derive for many engagements with a fixed number of queries.

Used by every event write (one engagement), the batch API (hundreds), journey edits and
`recompute` (all). Only rows whose derived values changed are written.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection
from django.utils import timezone

from engagement.models import Engagement, Event, Milestone, MilestoneReach, Offering
from engagement.projection import Fact, Journey, MilestoneSpec, Projection, derive

# Apps that derive rows from the projection (metrics, alerts) add `rebuild(tenant, progress_file)` here
# in AppConfig.ready(), so `recompute` rebuilds them too without this app importing them.
derived_rebuilders = []


@dataclass
class Rebuilt:
    changed: int = 0  # rows whose derived values changed
    transitions: list = field(default_factory=list)  # (engagement, old_status) where the status changed

    def __iadd__(self, other):
        self.changed += other.changed
        self.transitions += other.transitions
        return self


def journeys_for(offering_ids):
    """Journey per offering id, from one query over their milestones."""
    offerings = {o.id: o for o in Offering.objects.filter(id__in=set(offering_ids))}
    specs = defaultdict(list)
    for m in Milestone.objects.filter(offering_id__in=offerings.keys()).order_by("offering_id", "order"):
        specs[m.offering_id].append(MilestoneSpec(id=m.id, key=m.key, order=m.order, due_day=m.due_day))
    return {
        oid: Journey(
            milestones=tuple(specs[oid]),
            requires_satisfaction=o.requires_satisfaction,
            satisfaction_threshold=o.satisfaction_threshold,
        )
        for oid, o in offerings.items()
        if specs[oid]
    }


def facts_for(engagement_ids):
    """Events per engagement id, as Facts, from one query."""
    facts = defaultdict(list)
    rows = Event.objects.filter(engagement_id__in=engagement_ids).values_list(
        "engagement_id", "type", "occurred_at", "milestone_id", "score", "created_at", "id"
    )
    for engagement_id, type_, occurred_at, milestone_id, score, created_at, event_id in rows.iterator(chunk_size=5000):
        facts[engagement_id].append(
            Fact(
                type=type_, occurred_at=occurred_at, milestone_id=milestone_id, score=score, seq=(created_at, event_id)
            )
        )
    return facts


def apply_projection(engagement, projection):
    """Copy derived values onto the row; True when any changed."""
    changed = False
    for name in Projection.FIELDS:
        value = getattr(projection, name)
        if getattr(engagement, name) != value:
            setattr(engagement, name, value)
            changed = True
    return changed


def rebuild(engagements, *, now=None, grace_days):
    """Re-derive and save the projections of `engagements` (rows of one tenant).

    Returns what changed, with the status transitions callers publish.
    """
    now = now or timezone.now()
    engagements = list(engagements)
    if not engagements:
        return Rebuilt()
    journeys = journeys_for(e.offering_id for e in engagements)
    facts = facts_for([e.id for e in engagements])
    changed_rows, transitions, projections = [], [], {}
    for engagement in engagements:
        journey = journeys.get(engagement.offering_id)
        if journey is None:
            continue
        old_status = engagement.status
        projection = derive(journey, engagement.pos_at, facts.get(engagement.id, ()), now=now, grace_days=grace_days)
        projections[engagement.id] = projection
        if apply_projection(engagement, projection):
            engagement.updated_at = now
            changed_rows.append(engagement)
        if engagement.status != old_status:
            transitions.append((engagement, old_status))
    if changed_rows:
        _save_projections(changed_rows)
    _sync_reaches(engagements[0].tenant_id, projections)
    return Rebuilt(changed=len(changed_rows), transitions=transitions)


def _save_projections(rows):
    """One parameterised UPDATE per row, sent with executemany (pipelined by psycopg): far cheaper than
    bulk_update's CASE expressions, which cost milliseconds of Python per row."""
    fields = [Engagement._meta.get_field(name) for name in (*Projection.FIELDS, "updated_at")]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    # Only quoted column names are interpolated; every value is a parameter.
    where = f"{quote('id')} = %s AND {quote('tenant_id')} = %s"
    sql = f"UPDATE {quote(Engagement._meta.db_table)} SET {assignments} WHERE {where}"  # noqa: S608
    pk, tenant_fk = Engagement._meta.pk, Engagement._meta.get_field("tenant")
    params = [
        [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
        + [pk.get_db_prep_value(row.pk, connection), tenant_fk.get_db_prep_save(row.tenant_id, connection)]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _sync_reaches(tenant_id, projections):
    """Make MilestoneReach rows equal the projections' reaches, writing only the differences."""
    existing = defaultdict(dict)
    for row in MilestoneReach.objects.filter(engagement_id__in=projections.keys()):
        existing[row.engagement_id][row.milestone_id] = row
    to_create, to_update, to_delete = [], [], []
    for engagement_id, projection in projections.items():
        have = existing.get(engagement_id, {})
        for milestone_id, (reached_at, clock_days) in projection.reaches.items():
            row = have.get(milestone_id)
            if row is None:
                to_create.append(
                    MilestoneReach(
                        tenant_id=tenant_id,
                        engagement_id=engagement_id,
                        milestone_id=milestone_id,
                        reached_at=reached_at,
                        clock_days=clock_days,
                    )
                )
            elif (row.reached_at, row.clock_days) != (reached_at, clock_days):
                row.reached_at, row.clock_days = reached_at, clock_days
                to_update.append(row)
        to_delete.extend(row.pk for mid, row in have.items() if mid not in projection.reaches)
    if to_create:
        MilestoneReach.objects.bulk_create(to_create, batch_size=1000)
    if to_update:
        MilestoneReach.objects.bulk_update(to_update, ["reached_at", "clock_days"], batch_size=1000)
    if to_delete:
        MilestoneReach.objects.filter(pk__in=to_delete).delete()


def rebuild_all(queryset, *, grace_days, now=None, chunk_size=2000, progress=None):
    """Rebuild every engagement of `queryset` in chunks (by primary key).

    `progress(n)` is called after each chunk with the number of rows done in it.
    """
    now = now or timezone.now()
    result, last_pk = Rebuilt(), None
    base = queryset.order_by("pk")
    while True:
        chunk = base.filter(pk__gt=last_pk) if last_pk else base
        rows = list(chunk[:chunk_size])
        if not rows:
            return result
        result += rebuild(rows, now=now, grace_days=grace_days)
        last_pk = rows[-1].pk
        if progress:
            progress(len(rows))
