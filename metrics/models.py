"""Stalled-customer alerts, and the stored metric rollups the dashboards and API read."""

import uuid

from django.db import models
from django.db.models import Q
from django_scopes import ScopedManager

from engagement.models import Engagement, TenantOwned, tenant_without_own_index
from tenants.models import Member, Tenant


class AlertState(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Resolution(models.TextChoices):
    REACHED = "reached", "Milestone reached"
    ENDED = "ended", "Engagement ended"
    MANUAL = "manual", "Resolved by hand"


class Alert(TenantOwned):
    """An engagement stuck before `step` (a milestone key, or 'satisfaction'); one per engagement and step."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the indexes below start with the tenant. Each index costs the stalled scan a
    # write per alert it opens or escalates, so the table has only those its queries use.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    # Found (and removed with its engagement) through alert_one_per_step, which starts with it.
    engagement = models.ForeignKey(Engagement, on_delete=models.CASCADE, related_name="alerts", db_index=False)
    step = models.CharField(max_length=64)
    due_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.OPEN)
    opened_at = models.DateTimeField()
    # Indexed below only where set: most alerts are never assigned, and the scan opens them unassigned.
    assignee = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=255, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True)
    resolved_by = models.CharField(max_length=255, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Led by the engagement, so that it serves the engagement's lookups; with the tenant, as every key.
        constraints = [models.UniqueConstraint(fields=["engagement", "step", "tenant"], name="alert_one_per_step")]
        indexes = [
            models.Index(fields=["tenant", "state", "due_at"], name="alert_state_due_idx"),
            # Removing a member clears its assignments: found here, without indexing every unassigned alert.
            models.Index(fields=["assignee"], condition=Q(assignee__isnull=False), name="alert_assignee_idx"),
            # Escalation reads only the live alerts not escalated yet, oldest first: a few rows, not the queue.
            models.Index(
                fields=["tenant", "opened_at"],
                condition=Q(state__in=("open", "acknowledged"), escalated_at__isnull=True),
                name="alert_escalation_idx",
            ),
        ]
        ordering = ["due_at"]

    def __str__(self):
        return f"{self.engagement_id} stuck before {self.step} ({self.state})"


class Dimension(models.TextChoices):
    ALL = "all", "All engagements"
    OFFERING = "offering", "Offering"
    SEGMENT = "segment", "Segment"
    OWNER = "owner", "Owner"
    SALES_REP = "sales_rep", "Sales rep"


class MetricRollup(TenantOwned):
    """The metrics (docs/metrics.md) of one group of engagements, as computed on one tenant-local day.

    The rows of the newest day are the current numbers; older days stay as the daily snapshots that
    trends are drawn from. `key` is the offering key, the segment, or the member's email ("" = none).
    """

    day = models.DateField()
    dimension = models.CharField(max_length=16, choices=Dimension.choices)
    key = models.CharField(max_length=255, blank=True)
    summary = models.JSONField()
    cohorts = models.JSONField(default=list)
    funnel = models.JSONField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "dimension", "key"], name="rollup_one_per_group_day")
        ]
        indexes = [models.Index(fields=["tenant", "dimension", "key", "day"], name="rollup_trend_idx")]

    def __str__(self):
        return f"{self.day} {self.dimension}={self.key or '-'}"


class RollupState(TenantOwned):
    """Per tenant: whether the rollups are stale, when a recompute is scheduled, and the newest day.

    Writes mark the state dirty and schedule one recompute no sooner than a minute after the last
    one started (the debounce); the task clears `dirty_since` before computing, so a write that lands
    during the computation schedules the next one.
    """

    dirty_since = models.DateTimeField(null=True, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    day = models.DateField(null=True, blank=True)

    objects = ScopedManager(tenant="tenant")
    # Across tenants, for the beat reconcile only: it reads which tenants need work, never their data.
    unscoped = models.Manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="rollup_state_one_per_tenant")]

    def __str__(self):
        return f"rollups computed {self.computed_at or 'never'}"


class Forecast(TenantOwned):
    """An open engagement's chance to reach PoV by its target day, recomputed with the rollups from the
    curves of similar engagements (docs/metrics.md, "Forecast"). Removed once the engagement ends."""

    # No index led by the tenant alone: under the row-level policy the planner cannot tell how many rows a
    # tenant has, and scanned every forecast through such an index for a page of 50 engagements.
    tenant = tenant_without_own_index()
    # The engagement's own key: one forecast each, found and removed with it.
    engagement = models.OneToOneField(Engagement, on_delete=models.CASCADE, primary_key=True, related_name="forecast")
    reach_by_target = models.FloatField(null=True, help_text="Null when no similar customer was still waiting.")
    expected_pov_day = models.FloatField(null=True, help_text="Clock day; null when half never got there.")
    at_risk = models.BooleanField(default=False)
    computed_at = models.DateTimeField()

    class Meta:
        # Only the at-risk ones, for their lists and counts; lookups by engagement use the primary key.
        indexes = [models.Index(fields=["tenant"], condition=Q(at_risk=True), name="forecast_at_risk_idx")]

    def __str__(self):
        return f"{self.engagement_id}: {self.reach_by_target}"


class BacktestRun(TenantOwned):
    """The outcome of `manage.py backtest`: how well the forecasts made on `as_of` came true."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    as_of = models.DateField()
    scored = models.PositiveIntegerField(help_text="Engagements open on as_of whose outcome is known now.")
    brier = models.FloatField(null=True)
    auc = models.FloatField(null=True)
    calibration = models.JSONField(default=list, help_text="Per decile of predicted probability.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"backtest as of {self.as_of}"
