"""Stalled-customer alerts (and, later, metric rollups)."""

import uuid

from django.db import models

from engagement.models import Engagement, TenantOwned
from tenants.models import Member


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
    engagement = models.ForeignKey(Engagement, on_delete=models.CASCADE, related_name="alerts")
    step = models.CharField(max_length=64)
    due_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.OPEN)
    opened_at = models.DateTimeField()
    assignee = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=255, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True)
    resolved_by = models.CharField(max_length=255, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "engagement", "step"], name="alert_one_per_step")]
        indexes = [models.Index(fields=["tenant", "state", "due_at"], name="alert_state_due_idx")]
        ordering = ["due_at"]

    def __str__(self):
        return f"{self.engagement_id} stuck before {self.step} ({self.state})"
