"""The stalled scan and the alert lifecycle: open → acknowledged → resolved (CONTRACT §3, §4).

Two kinds of change move alerts:
- The clock: on-track engagements pass due + grace (stalled, with an alert) and alerts pass the
  escalation days. `stalled_scan` does this on a schedule and touches only the rows that cross a
  line, found through indexes, so it costs the day's work, not the tenant's size.
- Writes (a milestone, a pause, a loss, a journey edit): `_reconcile` compares every live alert and
  every stalled engagement with the projection. Each such write publishes CHANGED, whose outbox
  handler runs `sync_alerts`; the scan also reconciles while a CHANGED is unhandled, so alerts never
  wait for the drain, and `recompute` forces it.

On PostgreSQL each step is one statement (UPDATE … RETURNING, INSERT … SELECT … ON CONFLICT, and the
outbox rows in the same statement), and a scan with nothing to reconcile is a single statement.
SQLite (development) runs the same steps through the ORM.
"""

from datetime import timedelta
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone

from engagement import outbox
from engagement.errors import Invalid
from engagement.models import Engagement, OutboxMessage, Status
from metrics.models import Alert, AlertState, Resolution
from tenants.actors import audit
from tenants.models import Tenant

ALERT_OPENED = "alert.opened"
ALERT_RESOLVED = "alert.resolved"
LIVE = (AlertState.OPEN, AlertState.ACKNOWLEDGED)
ENDED = (Status.REACHED, Status.LOST)
NOTHING_SYNCED = {"opened": 0, "resolved": 0}


def stalled_scan(tenant, now=None, *, reconcile=None):
    """Mark engagements past due + grace as stalled and open their alerts, escalate old alerts, and
    reconcile alerts with the projections while a write is not synced yet (always with reconcile=True)."""
    now = now or timezone.now()
    with transaction.atomic():
        _serialize_per_tenant(tenant)
        step = _stall_overdue(tenant, now, reconcile)
        synced = _reconcile(tenant, now) if step.reconcile else NOTHING_SYNCED
        # Escalation comes after the reconcile, which may resolve an alert; without one, it already ran.
        escalated = _escalate(tenant, now) if step.escalated is None else step.escalated
    return {
        "stalled": step.stalled,
        "opened": step.opened + synced["opened"],
        "resolved": synced["resolved"],
        "escalated": escalated,
    }


def sync_alerts(tenant, now=None):
    """Open alerts for stalled engagements, resolve those whose step is done or whose engagement ended,
    and move due dates with the projection (the CHANGED outbox handler)."""
    now = now or timezone.now()
    with transaction.atomic():
        _serialize_per_tenant(tenant)
        return _reconcile(tenant, now)


def _serialize_per_tenant(tenant):
    """Two scans (beat and an outbox re-sync, or two workers) of one tenant run one after the other,
    so the second sees the first's alerts and publishes nothing twice."""
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute(LOCK_TENANT, {"tenant": tenant.pk})
        return
    # NO KEY UPDATE: still one scan at a time, but it does not block the foreign-key checks (FOR KEY SHARE)
    # that every tenant-owned write takes on the tenant row at commit (a deadlock with event writes).
    list(Tenant.objects.select_for_update(no_key=True).filter(pk=tenant.pk).values_list("pk", flat=True))


def _changes_not_synced():
    """Whether a CHANGED is unhandled: a write whose alerts `sync_alerts` has not caught up with yet.
    Read through the outbox's pending index, which holds only unhandled rows."""
    return OutboxMessage.objects.filter(kind=outbox.CHANGED, handled_at__isnull=True).exists()


def _postgres():
    return connection.vendor == "postgresql"


class Stalling(NamedTuple):
    stalled: int  # engagements newly stalled
    opened: int  # alerts opened for them
    reconcile: bool  # whether the scan reconciles next: asked to, or a CHANGED was unhandled before it published
    escalated: int | None  # alerts escalated, or None when escalation waits for the reconcile


def _stall_overdue(tenant, now, reconcile):
    cutoff = now - timedelta(days=tenant.grace_days)
    if _postgres():
        return _stall_overdue_sql(tenant, now, cutoff, reconcile)
    reconcile = _changes_not_synced() if reconcile is None else reconcile
    return Stalling(*_stall_overdue_orm(tenant, now, cutoff), reconcile, escalated=None)


def _reconcile(tenant, now):
    if _postgres():
        opened = _open_missing_sql(tenant, now)
        return {"opened": opened, "resolved": _resolve_and_follow_sql(tenant, now)}
    opened = _open_alerts_orm(tenant, now, Engagement.objects.all())
    resolved = _resolve_obsolete_orm(tenant, now)
    _follow_due_dates_orm()
    return {"opened": opened, "resolved": resolved}


def _escalate(tenant, now):
    """Alerts open past the tenant's escalation days; not while the engagement's clock is paused."""
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute(ESCALATE, _escalation_params(tenant, now) | {"tenant": tenant.pk})
            return cursor.rowcount
    cutoff = now - timedelta(days=tenant.escalation_days)
    status = Engagement.objects.filter(pk=OuterRef("engagement_id")).order_by().values("status")[:1]
    due = Alert.objects.filter(state__in=LIVE, escalated_at__isnull=True, opened_at__lt=cutoff)
    due = due.alias(engagement_status=Subquery(status)).exclude(engagement_status=Status.PAUSED)
    return due.update(escalated_at=now)


# PostgreSQL: one statement per step --------------------------------------------------------------
# Only table names are interpolated into the SQL; every value is a parameter. Each statement filters
# on tenant_id as well as running in the tenant's scope: it gives the planner the tenant's indexes.

TENANTS, ENGAGEMENTS, ALERTS, OUTBOX = (
    f'"{model._meta.db_table}"' for model in (Tenant, Engagement, Alert, OutboxMessage)
)

# The lock, and JIT off for the rest of the transaction: compiling costs tens of milliseconds whenever
# a plan's estimated cost passes jit_above_cost, and the scan's statements read the few rows that cross a
# line, which the planner cannot see (for escalation it takes "live" and "not escalated" as independent
# and expects thousands of rows). Inside a savepoint, PostgreSQL undoes the setting on rollback.
# NO KEY UPDATE: one scan at a time, without blocking the foreign-key checks (FOR KEY SHARE) every
# tenant-owned write takes on the tenant row at commit (FOR UPDATE deadlocked with event writes).
LOCK_TENANT = f"SELECT set_config('jit', 'off', true) FROM {TENANTS} WHERE id = %(tenant)s FOR NO KEY UPDATE"  # noqa: S608


def _open_alerts(rows):
    """An alert per engagement in `rows` (alias s: id, next_step, next_due_at); a resolved one for the
    same step opens again unless a person resolved it. Returns the ids of the alerts opened."""
    return f"""
    INSERT INTO {ALERTS} AS a (id, tenant_id, engagement_id, step, due_at, state, opened_at,
                               acknowledged_by, resolution, resolved_by)
    SELECT gen_random_uuid(), %(tenant)s::uuid, s.id, s.next_step, s.next_due_at, 'open', %(now)s, '', '', ''
    FROM {rows}
    ON CONFLICT (engagement_id, step, tenant_id) DO UPDATE
        SET state = 'open', opened_at = excluded.opened_at, due_at = excluded.due_at, resolved_at = NULL,
            resolution = '', resolved_by = '', escalated_at = NULL
        WHERE a.state = 'resolved' AND a.resolution <> 'manual'
    RETURNING a.id"""  # noqa: S608


def _outbox_rows(kind, payload, rows):
    """Outbox rows as `publish_many` writes them (the caller asks for a drain)."""
    return f"SELECT %(tenant)s::uuid, %({kind})s, {payload}, %(published_at)s, 0, '' FROM {rows}"  # noqa: S608


def _outbox_lists(kind, key, rows, common=""):
    """Outbox rows as `outbox.listed` writes them: the ids of `rows` under `key`, LIST_SIZE a row, in the
    order `rows` returned them; no row for no ids."""
    numbered = f"(SELECT id, row_number() OVER () - 1 AS n FROM {rows}) listed GROUP BY n / %(list_size)s"  # noqa: S608
    return _outbox_rows(kind, f"jsonb_build_object('{key}', jsonb_agg(id::text ORDER BY n){common})", numbered)


PUBLISH = f"INSERT INTO {OUTBOX} (tenant_id, kind, payload, created_at, attempts, last_error)"
STALL_TRANSITION = ", 'from', 'on_track', 'to', 'stalled'"

# A partial index holds only live alerts not escalated yet, so this reads the few that qualify; the
# status is looked up per qualifying alert (not joined: that would read every paused engagement).
ESCALATE = f"""
UPDATE {ALERTS} AS a SET escalated_at = %(now)s
WHERE a.tenant_id = %(tenant)s::uuid AND a.state IN ('open', 'acknowledged') AND a.escalated_at IS NULL
  AND a.opened_at < %(escalation_cutoff)s
  AND (SELECT e.status FROM {ENGAGEMENTS} e WHERE e.tenant_id = %(tenant)s::uuid AND e.id = a.engagement_id) <> 'paused'
"""  # noqa: S608

# The whole scan in one statement unless a reconcile follows (%(reconcile)s, or NULL: whether a CHANGED
# is unhandled), which escalation must wait for.
STALL_OVERDUE = f"""
WITH unsynced AS (
    -- The statement's snapshot: the CHANGED it publishes is not seen here.
    SELECT coalesce(%(reconcile)s::boolean, EXISTS (
        SELECT 1 FROM {OUTBOX} WHERE tenant_id = %(tenant)s::uuid AND handled_at IS NULL AND kind = %(changed_kind)s
    )) AS reconcile
), stalled AS (
    UPDATE {ENGAGEMENTS} SET status = 'stalled', updated_at = %(now)s
    WHERE tenant_id = %(tenant)s::uuid AND status = 'on_track' AND next_due_at < %(cutoff)s
    RETURNING id, next_step, next_due_at
), opened AS ({_open_alerts("stalled s WHERE s.next_step <> ''")}
), published AS (
    {PUBLISH}
    {_outbox_lists("stalled_kind", "engagements", "stalled", STALL_TRANSITION)}
    UNION ALL
    {_outbox_rows("changed_kind", "jsonb_build_object('count', count(*))", "stalled HAVING count(*) > 0")}
    UNION ALL
    {_outbox_lists("opened_kind", "alerts", "opened")}
    RETURNING 1
), escalated AS ({ESCALATE} AND NOT (SELECT reconcile FROM unsynced)
    RETURNING 1
)
SELECT (SELECT count(*) FROM stalled), (SELECT count(*) FROM opened), reconcile,
       CASE WHEN NOT reconcile THEN (SELECT count(*) FROM escalated) END,
       (SELECT count(*) FROM published)
FROM unsynced
"""  # noqa: S608

# Stalled engagements with no alert for their step that counts (a live one, or one a person resolved).
MISSING_ALERTS = f"""{ENGAGEMENTS} s
    WHERE s.tenant_id = %(tenant)s::uuid AND s.status = 'stalled' AND s.next_step <> '' AND NOT EXISTS (
        SELECT 1 FROM {ALERTS} x
        WHERE x.tenant_id = %(tenant)s::uuid AND x.engagement_id = s.id AND x.step = s.next_step
          AND (x.state IN ('open', 'acknowledged') OR x.resolution = 'manual'))"""  # noqa: S608

OPEN_MISSING = f"""
WITH opened AS ({_open_alerts(MISSING_ALERTS)}
), published AS (
    {PUBLISH}
    {_outbox_lists("opened_kind", "alerts", "opened")}
    RETURNING 1
)
SELECT (SELECT count(*) FROM opened), (SELECT count(*) FROM published)
"""  # noqa: S608

# Live alerts whose engagement ended (resolved: ended), moved past the step (resolved: reached), or
# whose due date moved with a pause or a journey edit (the alert follows it).
RESOLVE_AND_FOLLOW = f"""
WITH verdicts AS (
    SELECT a.id, e.next_due_at,
           CASE WHEN e.status IN ('reached', 'lost') THEN 'ended'
                WHEN e.next_step <> a.step THEN 'reached' END AS resolution
    FROM {ALERTS} a JOIN {ENGAGEMENTS} e ON e.id = a.engagement_id AND e.tenant_id = %(tenant)s::uuid
    WHERE a.tenant_id = %(tenant)s::uuid AND a.state IN ('open', 'acknowledged')
      AND (e.status IN ('reached', 'lost') OR e.next_step <> a.step OR e.next_due_at <> a.due_at)
), changed AS (
    UPDATE {ALERTS} AS a
    SET state = CASE WHEN v.resolution IS NULL THEN a.state ELSE 'resolved' END,
        resolution = coalesce(v.resolution, a.resolution),
        resolved_at = CASE WHEN v.resolution IS NULL THEN a.resolved_at ELSE %(now)s END,
        resolved_by = CASE WHEN v.resolution IS NULL THEN a.resolved_by ELSE 'system' END,
        due_at = CASE WHEN v.resolution IS NULL THEN v.next_due_at ELSE a.due_at END
    FROM verdicts v WHERE a.tenant_id = %(tenant)s::uuid AND a.id = v.id
    RETURNING a.id, v.resolution
), published AS (
    {PUBLISH}
    {_outbox_lists("resolved_kind", "alerts", "changed WHERE resolution IS NOT NULL")}
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed WHERE resolution IS NOT NULL), (SELECT count(*) FROM published)
"""  # noqa: S608


def _run(sql, tenant, **params):
    """Run one statement; returns its single row. Asks for a drain when it published (the last column)."""
    params.update(
        tenant=tenant.pk, published_at=timezone.now(), stalled_kind=outbox.STALLED, changed_kind=outbox.CHANGED,
        opened_kind=ALERT_OPENED, resolved_kind=ALERT_RESOLVED, list_size=outbox.LIST_SIZE,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row[-1]:
        outbox.request_drain(tenant)
    return row


def _escalation_params(tenant, now):
    return {"now": now, "escalation_cutoff": now - timedelta(days=tenant.escalation_days)}


def _stall_overdue_sql(tenant, now, cutoff, reconcile):
    params = _escalation_params(tenant, now) | {"cutoff": cutoff, "reconcile": reconcile}
    return Stalling(*_run(STALL_OVERDUE, tenant, **params)[:4])


def _open_missing_sql(tenant, now):
    return _run(OPEN_MISSING, tenant, now=now)[0]


def _resolve_and_follow_sql(tenant, now):
    return _run(RESOLVE_AND_FOLLOW, tenant, now=now)[0]


# Other databases: the same steps through the ORM -------------------------------------------------


def _stall_overdue_orm(tenant, now, cutoff):
    ids = list(Engagement.objects.filter(status=Status.ON_TRACK, next_due_at__lt=cutoff).values_list("id", flat=True))
    if not ids:
        return 0, 0
    count = Engagement.objects.filter(id__in=ids, status=Status.ON_TRACK).update(status=Status.STALLED, updated_at=now)
    transition = {"from": Status.ON_TRACK, "to": Status.STALLED}
    stalled = outbox.listed(outbox.STALLED, "engagement", ids, transition)
    outbox.publish_many(tenant, [*stalled, (outbox.CHANGED, {"count": count})])
    return count, _open_alerts_orm(tenant, now, Engagement.objects.filter(id__in=ids))


def _open_alerts_orm(tenant, now, engagements):
    """One alert per stalled engagement of `engagements` and step; a resolved one for the step opens again."""
    stalled = engagements.filter(status=Status.STALLED).exclude(next_step="")
    missing = stalled.exclude(
        Exists(Alert.objects.filter(engagement=OuterRef("pk"), step=OuterRef("next_step")))
    ).values_list("id", "next_step", "next_due_at")
    new = [Alert(tenant=tenant, engagement_id=eid, step=step, due_at=due, opened_at=now) for eid, step, due in missing]
    Alert.objects.bulk_create(new, ignore_conflicts=True)
    # A step that became current again (a journey edit) reopens; a person's resolution stands.
    reopened = Alert.objects.exclude(resolution=Resolution.MANUAL).filter(
        state=AlertState.RESOLVED, engagement__in=stalled, engagement__next_step=F("step")
    )
    reopened_ids = list(reopened.values_list("id", flat=True))
    Alert.objects.filter(id__in=reopened_ids).update(
        state=AlertState.OPEN, opened_at=now, resolved_at=None, resolution="", resolved_by="", escalated_at=None
    )
    opened = [a.id for a in new] + reopened_ids
    outbox.publish_many(tenant, outbox.listed(ALERT_OPENED, "alert", opened))
    return len(opened)


def _resolve_obsolete_orm(tenant, now):
    """Resolve live alerts whose engagement ended or moved past the step."""
    live = Alert.objects.filter(state__in=LIVE)
    ended = live.filter(engagement__status__in=ENDED)
    moved_on = live.exclude(engagement__status__in=ENDED).filter(~Q(engagement__next_step=F("step")))
    results = []
    for queryset, resolution in ((ended, Resolution.ENDED), (moved_on, Resolution.REACHED)):
        ids = list(queryset.values_list("id", flat=True))
        if ids:
            Alert.objects.filter(id__in=ids, state__in=LIVE).update(
                state=AlertState.RESOLVED, resolved_at=now, resolution=resolution, resolved_by="system"
            )
            results += ids
    outbox.publish_many(tenant, outbox.listed(ALERT_RESOLVED, "alert", results))
    return len(results)


def _follow_due_dates_orm():
    """Live alerts follow their engagement's due date, which moves with pauses and journey edits."""
    due = Engagement.objects.filter(pk=OuterRef("engagement_id")).values("next_due_at")[:1]
    return (
        Alert.objects.filter(state__in=LIVE, engagement__next_step=F("step"), engagement__next_due_at__isnull=False)
        .exclude(due_at=F("engagement__next_due_at"))
        .update(due_at=Subquery(due))
    )


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
            outbox.publish_many(tenant, outbox.listed(ALERT_RESOLVED, "alert", [alert.pk]))
    alert.refresh_from_db()
    return alert
