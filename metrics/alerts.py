"""The stalled scan and the alert lifecycle: open → acknowledged → resolved (docs/metrics.md, "Alerts").

Two kinds of change move alerts:
- The clock: `stalled_scan` has engagement.projections mark what passed due + grace as stalled, opens
  their alerts and escalates the alerts open longer than the tenant's escalation days.
- Writes (a milestone, a pause, a loss, a journey edit): each publishes CHANGED, whose outbox handler
  runs `sync_alerts`: every stalled engagement has a live alert for its step, alerts resolve when the
  engagement moved past the step or ended, and follow a due date that moved. The scan syncs too while a
  CHANGED is unhandled, so alerts never wait for the drain; `recompute` forces it.
Each step is one statement over the tenant's rows, found through indexes, so a scan costs the day's
work, not the tenant's size.
"""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from engagement import cleaners, outbox, projections
from engagement.errors import Invalid
from engagement.models import Engagement, OutboxMessage, Status
from engagement.sql import table
from metrics.models import Alert, AlertState, Resolution
from tenants.actors import Actor, audit
from tenants.models import Member, Tenant

ALERT_OPENED = "alert.opened"
ALERT_RESOLVED = "alert.resolved"
ALERT_ASSIGNED = "alert.assigned"
LIVE = (AlertState.OPEN, AlertState.ACKNOWLEDGED)


def stalled_scan(tenant: Tenant, now: datetime | None = None, *, reconcile: bool | None = None) -> dict:
    """Mark engagements past due + grace as stalled and open their alerts, escalate old alerts, and
    sync alerts with the projections while a write is not synced yet (always with reconcile=True)."""
    now = now or timezone.now()
    with transaction.atomic():
        _one_at_a_time(tenant)
        reconcile = _changes_not_synced() if reconcile is None else reconcile
        stalled = projections.mark_stalled(tenant, now)
        opened = _open_alerts(tenant, now, only=None if reconcile else stalled)
        resolved = _resolve_and_follow(tenant, now) if reconcile else []
        escalated = _escalate(tenant, now)
        _publish(tenant, opened, resolved)
    return {"stalled": len(stalled), "opened": len(opened), "resolved": len(resolved), "escalated": escalated}


def sync_alerts(tenant: Tenant, now: datetime | None = None) -> dict:
    """Alerts follow the projections (the CHANGED outbox handler): opened for stalled engagements,
    resolved when the step is done or the engagement ended, due dates moved with the projection."""
    now = now or timezone.now()
    with transaction.atomic():
        _one_at_a_time(tenant)
        opened, resolved = _open_alerts(tenant, now), _resolve_and_follow(tenant, now)
        _publish(tenant, opened, resolved)
    return {"opened": len(opened), "resolved": len(resolved)}


def _one_at_a_time(tenant: Tenant) -> None:
    """Two scans of one tenant (beat and an outbox sync, or two workers) run one after the other, so the
    second sees the first's alerts and publishes nothing twice. NO KEY UPDATE: it does not block the
    foreign-key checks (FOR KEY SHARE) that every tenant-owned write takes on the tenant row."""
    list(Tenant.objects.select_for_update(no_key=True).filter(pk=tenant.pk).values_list("pk", flat=True))


def _changes_not_synced() -> bool:
    """Whether a CHANGED is unhandled: a write whose alerts `sync_alerts` has not caught up with yet.
    Read through the outbox's pending index, which holds only unhandled rows."""
    return OutboxMessage.objects.filter(kind=outbox.CHANGED, handled_at__isnull=True).exists()


def _publish(tenant: Tenant, opened: list[UUID], resolved: list[UUID]) -> None:
    outbox.publish(tenant, [*outbox.listed(ALERT_OPENED, "alert", opened),
                            *outbox.listed(ALERT_RESOLVED, "alert", resolved)])  # fmt: skip


# An alert per stalled engagement (of `only`, or all) and step that has none that counts (a live one, or
# one a person resolved); a resolved one for the same step opens again.
OPEN_ALERTS = """
INSERT INTO {alerts} AS a (id, tenant_id, engagement_id, step, due_at, state, opened_at, acknowledged_by,
                           resolution, resolved_by)
SELECT gen_random_uuid(), %(tenant)s, s.id, s.next_step, s.next_due_at, 'open', %(now)s, '', '', ''
FROM {engagements} s
WHERE s.tenant_id = %(tenant)s AND s.status = 'stalled' AND s.next_step <> '' {only}
  AND NOT EXISTS (
    SELECT 1 FROM {alerts} x
    WHERE x.tenant_id = %(tenant)s AND x.engagement_id = s.id AND x.step = s.next_step
      AND (x.state IN ('open', 'acknowledged') OR x.resolution = 'manual'))
ON CONFLICT (engagement_id, step, tenant_id) DO UPDATE
    SET state = 'open', opened_at = excluded.opened_at, due_at = excluded.due_at, resolved_at = NULL,
        resolution = '', resolved_by = '', escalated_at = NULL
    WHERE a.state = 'resolved' AND a.resolution <> 'manual'
RETURNING a.id
"""

# Live alerts whose engagement ended (resolved: ended) or moved past the step (resolved: reached), or
# whose due date moved with a pause or a journey edit (the alert follows it).
RESOLVE_AND_FOLLOW = """
WITH verdicts AS (
    SELECT a.id, e.next_due_at,
           CASE WHEN e.status IN ('reached', 'lost') THEN 'ended' WHEN e.next_step <> a.step THEN 'reached' END
           AS resolution
    FROM {alerts} a JOIN {engagements} e ON e.id = a.engagement_id AND e.tenant_id = %(tenant)s
    WHERE a.tenant_id = %(tenant)s AND a.state IN ('open', 'acknowledged')
      AND (e.status IN ('reached', 'lost') OR e.next_step <> a.step OR e.next_due_at <> a.due_at)
)
UPDATE {alerts} AS a
SET state = CASE WHEN v.resolution IS NULL THEN a.state ELSE 'resolved' END,
    resolution = coalesce(v.resolution, a.resolution),
    resolved_at = CASE WHEN v.resolution IS NULL THEN a.resolved_at ELSE %(now)s END,
    resolved_by = CASE WHEN v.resolution IS NULL THEN a.resolved_by ELSE 'system' END,
    due_at = CASE WHEN v.resolution IS NULL THEN v.next_due_at ELSE a.due_at END
FROM verdicts v WHERE a.tenant_id = %(tenant)s AND a.id = v.id
RETURNING a.id, v.resolution
"""


def _run(sql: str, tenant: Tenant, now: datetime, **params: Any) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql.format(alerts=table(Alert), engagements=table(Engagement), **params.pop("parts", {})),
                       {"tenant": tenant.pk, "now": now, **params})  # fmt: skip
        return cursor.fetchall()


def _open_alerts(tenant: Tenant, now: datetime, only: list[UUID] | None = None) -> list[UUID]:
    if only is not None and not only:
        return []
    parts = {"only": "AND s.id = ANY(%(only)s)" if only is not None else ""}
    return [row[0] for row in _run(OPEN_ALERTS, tenant, now, only=only, parts=parts)]


def _resolve_and_follow(tenant: Tenant, now: datetime) -> list[UUID]:
    return [alert_id for alert_id, resolution in _run(RESOLVE_AND_FOLLOW, tenant, now) if resolution]


def _escalate(tenant: Tenant, now: datetime) -> int:
    """Alerts open past the tenant's escalation days; not while the engagement's clock is paused."""
    cutoff = now - timedelta(days=tenant.escalation_days)
    due = Alert.objects.filter(state__in=LIVE, escalated_at__isnull=True, opened_at__lt=cutoff)
    return due.exclude(engagement__status=Status.PAUSED).update(escalated_at=now)


# Acting on alerts ------------------------------------------------------------------------------


def alert_acknowledge(*, tenant: Tenant, alert: Alert, actor: Actor, assignee: Member | None = None) -> Alert:
    cleaners.responsible(assignee, "assignee")
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        if locked.state == AlertState.RESOLVED:
            raise Invalid({"state": ["This alert is already resolved."]})
        locked.state = AlertState.ACKNOWLEDGED
        locked.acknowledged_at = locked.acknowledged_at or timezone.now()
        locked.acknowledged_by = actor.label
        newly_assigned = assignee is not None and assignee.pk != locked.assignee_id
        if assignee is not None:
            locked.assignee = assignee
        locked.save()
        audit(tenant=tenant, actor=actor, action="alert.acknowledged", target=locked)
        if newly_assigned:
            outbox.publish(tenant, outbox.listed(ALERT_ASSIGNED, "alert", [locked.pk]))
    return locked


def alert_assign(*, tenant: Tenant, alert: Alert, actor: Actor, assignee: Member | None) -> Alert:
    cleaners.responsible(assignee, "assignee")
    with transaction.atomic():
        changed = Alert.objects.filter(pk=alert.pk).exclude(assignee=assignee).update(assignee=assignee)
        audit(tenant=tenant, actor=actor, action="alert.assigned", target=alert,
              assignee=assignee.user.email if assignee else None)  # fmt: skip
        if changed and assignee is not None:  # someone now has it: chat and webhooks may say so
            outbox.publish(tenant, outbox.listed(ALERT_ASSIGNED, "alert", [alert.pk]))
    alert.refresh_from_db()
    return alert


def alert_resolve(*, tenant: Tenant, alert: Alert, actor: Actor) -> Alert:
    with transaction.atomic():
        updated = Alert.objects.filter(pk=alert.pk, state__in=LIVE).update(
            state=AlertState.RESOLVED, resolved_at=timezone.now(), resolution=Resolution.MANUAL, resolved_by=actor.label
        )
        if updated:
            audit(tenant=tenant, actor=actor, action="alert.resolved", target=alert)
            _publish(tenant, [], [alert.pk])
    alert.refresh_from_db()
    return alert
