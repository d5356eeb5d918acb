"""The stalled scan and the alert lifecycle: open → acknowledged → resolved (CONTRACT §3, §4).

Set-based: each step is one statement over every engagement or alert of the tenant, so the scan
costs the same few queries at any size, and running it twice changes nothing more.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone

from engagement import outbox
from engagement.errors import Invalid
from engagement.models import Engagement, Status
from metrics.models import Alert, AlertState, Resolution
from tenants.actors import audit
from tenants.models import Tenant

ALERT_OPENED = "alert.opened"
ALERT_RESOLVED = "alert.resolved"
LIVE = (AlertState.OPEN, AlertState.ACKNOWLEDGED)


def _serialize_per_tenant(tenant):
    """Two scans (beat and an outbox re-sync, or two workers) of one tenant run one after the other,
    so the second sees the first's alerts and publishes nothing twice."""
    list(Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk", flat=True))


def stalled_scan(tenant, now=None):
    """Mark engagements past due + grace as stalled, then open, resolve and escalate alerts."""
    now = now or timezone.now()
    with transaction.atomic():
        _serialize_per_tenant(tenant)
        newly_stalled = _mark_stalled(tenant, now)
        opened = _open_alerts(tenant, now)
        resolved = _resolve_obsolete(tenant, now)
        _follow_due_dates(tenant)
        escalated = _escalate(tenant, now)
    return {"stalled": newly_stalled, "opened": opened, "resolved": resolved, "escalated": escalated}


def sync_alerts(tenant, now=None):
    """Open alerts for stalled engagements and resolve those whose step is done (outbox handler)."""
    now = now or timezone.now()
    with transaction.atomic():
        _serialize_per_tenant(tenant)
        return {"opened": _open_alerts(tenant, now), "resolved": _resolve_obsolete(tenant, now)}


def _mark_stalled(tenant, now):
    due = Engagement.objects.filter(status=Status.ON_TRACK, next_due_at__lt=now - timedelta(days=tenant.grace_days))
    ids = list(due.values_list("id", flat=True))
    if not ids:
        return 0
    count = Engagement.objects.filter(id__in=ids, status=Status.ON_TRACK).update(status=Status.STALLED, updated_at=now)
    outbox.publish_many(
        tenant,
        [(outbox.STALLED, {"engagement": str(i), "from": Status.ON_TRACK, "to": Status.STALLED}) for i in ids]
        + [(outbox.CHANGED, {"count": count})],
    )
    return count


def _open_alerts(tenant, now):
    """One alert per stalled engagement and step; a resolved one for the same step opens again."""
    stalled = Engagement.objects.filter(status=Status.STALLED).exclude(next_step="")
    missing = stalled.exclude(
        Exists(Alert.objects.filter(engagement=OuterRef("pk"), step=OuterRef("next_step")))
    ).values_list("id", "next_step", "next_due_at")
    new = [Alert(tenant=tenant, engagement_id=eid, step=step, due_at=due, opened_at=now) for eid, step, due in missing]
    Alert.objects.bulk_create(new, ignore_conflicts=True)
    # A step that became current again (a journey edit) reopens; a person's resolution stands.
    reopened = Alert.objects.exclude(resolution=Resolution.MANUAL).filter(
        state=AlertState.RESOLVED,
        engagement__tenant=tenant,
        engagement__status=Status.STALLED,
        engagement__next_step=F("step"),
    )
    reopened_ids = list(reopened.values_list("id", flat=True))
    Alert.objects.filter(id__in=reopened_ids).update(
        state=AlertState.OPEN, opened_at=now, resolved_at=None, resolution="", resolved_by="", escalated_at=None
    )
    opened = [str(a.id) for a in new] + [str(i) for i in reopened_ids]
    if opened:
        outbox.publish_many(tenant, [(ALERT_OPENED, {"alert": a}) for a in opened])
    return len(opened)


def _resolve_obsolete(tenant, now):
    """Resolve live alerts whose engagement ended or moved past the step."""
    # engagement__tenant: the joined engagements are read through the tenant's index, not every tenant's rows.
    live = Alert.objects.filter(state__in=LIVE, engagement__tenant=tenant)
    ended = live.filter(engagement__status__in=(Status.REACHED, Status.LOST))
    moved_on = live.exclude(engagement__status__in=(Status.REACHED, Status.LOST)).filter(
        ~Q(engagement__next_step=F("step"))
    )
    results = []
    for queryset, resolution in ((ended, Resolution.ENDED), (moved_on, Resolution.REACHED)):
        ids = list(queryset.values_list("id", flat=True))
        if ids:
            Alert.objects.filter(id__in=ids, state__in=LIVE).update(
                state=AlertState.RESOLVED, resolved_at=now, resolution=resolution, resolved_by="system"
            )
            results += ids
    if results:
        outbox.publish_many(tenant, [(ALERT_RESOLVED, {"alert": str(i)}) for i in results])
    return len(results)


def _follow_due_dates(tenant):
    """Live alerts follow their engagement's due date, which moves with pauses and journey edits."""
    due = Engagement.objects.filter(pk=OuterRef("engagement_id")).values("next_due_at")[:1]
    return (
        Alert.objects.filter(
            state__in=LIVE,
            engagement__tenant=tenant,
            engagement__next_step=F("step"),
            engagement__next_due_at__isnull=False,
        )
        .exclude(due_at=F("engagement__next_due_at"))
        .update(due_at=Subquery(due))
    )


def _escalate(tenant, now):
    """Alerts open past the tenant's escalation days; not while the engagement's clock is paused."""
    cutoff = now - timedelta(days=tenant.escalation_days)
    live = Alert.objects.filter(state__in=LIVE, escalated_at__isnull=True, opened_at__lt=cutoff)
    live = live.filter(engagement__tenant=tenant).exclude(engagement__status=Status.PAUSED)
    return live.update(escalated_at=now)


# Acting on alerts ------------------------------------------------------------------------------


def alert_acknowledge(*, tenant, alert, actor, assignee=None):
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        if locked.state == AlertState.RESOLVED:
            raise Invalid({"state": ["This alert is already resolved."]})
        locked.state = AlertState.ACKNOWLEDGED
        locked.acknowledged_at = locked.acknowledged_at or timezone.now()
        locked.acknowledged_by = actor.label
        if assignee is not None:
            locked.assignee = assignee
        locked.save()
        audit(tenant=tenant, actor=actor, action="alert.acknowledged", target=locked)
    return locked


def alert_assign(*, tenant, alert, actor, assignee):
    with transaction.atomic():
        Alert.objects.filter(pk=alert.pk).update(assignee=assignee)
        audit(tenant=tenant, actor=actor, action="alert.assigned", target=alert,
              assignee=assignee.user.email if assignee else None)  # fmt: skip
    alert.refresh_from_db()
    return alert


def alert_resolve(*, tenant, alert, actor):
    with transaction.atomic():
        updated = Alert.objects.filter(pk=alert.pk, state__in=LIVE).update(
            state=AlertState.RESOLVED, resolved_at=timezone.now(), resolution=Resolution.MANUAL, resolved_by=actor.label
        )
        if updated:
            audit(tenant=tenant, actor=actor, action="alert.resolved", target=alert)
            outbox.publish(tenant, ALERT_RESOLVED, {"alert": str(alert.pk)})
    alert.refresh_from_db()
    return alert
