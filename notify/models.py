"""What notify keeps: digest choices and sends, customers' confirmations of value, webhook endpoints and
their deliveries. Every send is claimed by a row before the network call, so nothing goes out twice."""

import uuid

from django.db import models

from engagement.models import Engagement, TenantOwned
from tenants.models import Member, Role


class DigestFrequency(models.TextChoices):
    OFF = "off", "Off"
    DAILY = "daily", "Daily (weekdays)"
    WEEKLY = "weekly", "Weekly (Monday)"


# Owners and service live in the daily queue; sales and admins want the weekly picture.
DEFAULT_FREQUENCY: dict[str, str] = {
    Role.OWNER: DigestFrequency.DAILY,
    Role.SERVICE: DigestFrequency.DAILY,
    Role.SALES: DigestFrequency.WEEKLY,
    Role.ADMIN: DigestFrequency.WEEKLY,
    Role.VIEWER: DigestFrequency.OFF,
}


class DigestPreference(TenantOwned):
    """A member's own choice; without a row the role's default applies."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    frequency = models.CharField(max_length=8, choices=DigestFrequency.choices)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "member"], name="digest_pref_one_per_member")]


class DigestSend(TenantOwned):
    """One digest of one member for one period ("2026-11-25" daily, "2026-W48" weekly), claimed before
    the SMTP call (notify.digests says what each state of a claim means)."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=16)
    claimed_at = models.DateTimeField()
    claim_token = models.UUIDField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    skipped = models.BooleanField(default=False, help_text="Nothing to report: no email was sent.")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "member", "period"], name="digest_send_once_per_period")
        ]


class ValueConfirmation(TenantOwned):
    """The customer's own answer to "did you get the value you expected?", asked once per engagement."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    engagement = models.ForeignKey(Engagement, on_delete=models.CASCADE, related_name="+")
    email = models.EmailField(max_length=254)
    claimed_at = models.DateTimeField()
    claim_token = models.UUIDField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True, max_length=4000)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "engagement"], name="confirmation_once_per_engagement")
        ]


class WebhookEvent(models.TextChoices):
    REACHED_POV = "engagement.reached_pov", "Engagement reached PoV"
    STALLED = "engagement.stalled", "Engagement stalled"
    LOST = "engagement.lost", "Engagement lost"
    REOPENED = "engagement.reopened", "Lost engagement reopened"
    AT_RISK = "engagement.at_risk", "Engagement became at risk"
    ALERT_OPENED = "alert.opened", "Alert opened"
    ALERT_RESOLVED = "alert.resolved", "Alert resolved"
    ALERT_ASSIGNED = "alert.assigned", "Alert assigned to someone"


class EndpointFormat(models.TextChoices):
    SIGNED_JSON = "json", "Signed JSON"
    CHAT = "chat", "Chat message (Slack-compatible)"


# What a chat channel can hear: what a team acts on, not every state change.
CHAT_EVENTS = (
    WebhookEvent.STALLED,
    WebhookEvent.AT_RISK,
    WebhookEvent.REACHED_POV,
    WebhookEvent.LOST,
    WebhookEvent.ALERT_ASSIGNED,
)


WEBHOOK_URL_MAX_LENGTH = 500


class WebhookEndpoint(TenantOwned):
    """An admin's receiver. The secret signs every delivery; it is shown once when created or rotated."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=WEBHOOK_URL_MAX_LENGTH)
    # A chat channel's incoming-webhook URL is its only key: shown in full to nobody after it is saved.
    format = models.CharField(max_length=8, choices=EndpointFormat.choices, default=EndpointFormat.SIGNED_JSON)
    name = models.CharField(max_length=100, blank=True, help_text="A chat channel's name, e.g. #onboarding.")
    events = models.JSONField(default=list, help_text="WebhookEvent values this endpoint receives.")
    secret = models.CharField(max_length=80)
    is_active = models.BooleanField(default=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.url


class WebhookDelivery(TenantOwned):
    """One event for one endpoint. Its id is the event id receivers deduplicate on."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=WebhookEvent.choices)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    given_up_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "next_attempt_at"], name="webhook_due_idx")]


class WebhookAttempt(TenantOwned):
    """The log of one HTTP attempt, shown in settings."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField()
    status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="HTTP status; empty on no answer.")
    latency_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at"]
