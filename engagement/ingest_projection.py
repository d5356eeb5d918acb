"""Refreshing the projections of the engagements an ingestion call touched (a single event or a batch).

Each projection is `derive` over the engagement's stored events, the function `recompute` uses too, so
both agree by construction; the rows whose values changed and their milestone reaches are then saved
with one statement each (engagement.ingest_sql), instead of a statement per row.
"""

from collections import defaultdict

from engagement.ingest_sql import load_facts, save_projections, upsert_reaches
from engagement.models import Milestone
from engagement.projection import Journey, MilestoneSpec, derive
from engagement.rebuild import Rebuilt, apply_projection


def journeys_for(offering_ids):
    """{offering id: Journey} from one query over the offerings' milestones (in journey order)."""
    rows = (
        Milestone.objects.filter(offering_id__in=set(offering_ids))
        .order_by("offering_id", "order")
        .values_list("offering_id", "id", "key", "order", "due_day", "offering__requires_satisfaction",
                     "offering__satisfaction_threshold")
    )  # fmt: skip
    specs, settings = defaultdict(list), {}
    for offering_id, milestone_id, key, order, due_day, requires, threshold in rows:
        specs[offering_id].append(MilestoneSpec(id=milestone_id, key=key, order=order, due_day=due_day))
        settings[offering_id] = (requires, threshold)
    return {
        oid: Journey(milestones=tuple(milestones), requires_satisfaction=settings[oid][0],
                     satisfaction_threshold=settings[oid][1])
        for oid, milestones in specs.items()
    }  # fmt: skip


def refresh(tenant, rows, journeys, *, now, added_since=None):
    """Re-derive `rows` (Tracked or Engagement, locked by the caller) and save what changed.

    `added_since` is {engagement id: the earliest time of the events this call added to that stored
    engagement}. A reach at time t depends only on the events up to t, so one before that time is as
    stored, and only the reaches at or after it are written.

    Returns a Rebuilt (changed count and status transitions) for `publish_transitions`.
    """
    added_since = added_since or {}
    facts = load_facts(tenant, [row.id for row in rows])
    changed, transitions, reaches = [], [], []
    for row in rows:
        journey = journeys.get(row.offering_id)
        if journey is None:
            continue
        old_status = row.status
        projection = derive(journey, row.pos_at, facts.get(row.id, ()), now=now, grace_days=tenant.grace_days)
        if apply_projection(row, projection):
            row.updated_at = now
            changed.append(row)
        if row.status != old_status:
            transitions.append((row, old_status))
        since = added_since.get(row.id)
        reaches.extend(
            (row.id, mid, at, days) for mid, (at, days) in projection.reaches.items() if since is None or at >= since
        )
    save_projections(tenant, changed)
    upsert_reaches(tenant, reaches)
    return Rebuilt(changed=len(changed), transitions=transitions)
