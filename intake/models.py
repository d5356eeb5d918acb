"""Connections: a vendor's system that sends PoV what happened (Stripe, HubSpot, a Segment-compatible
analytics source), and the log of what each sent."""

import uuid

from django.db import models

from engagement.models import TenantOwned


class Kind(models.TextChoices):
    STRIPE = "stripe", "Stripe"
    HUBSPOT = "hubspot", "HubSpot"
    SEGMENT = "segment", "Analytics (Segment-compatible)"


class Connection(TenantOwned):
    """Where one vendor account sends, the secret that proves it is that account, and how what it sends
    maps onto PoV's offerings and milestones (docs: README, "Connect Stripe / HubSpot / your analytics")."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=100)
    mapping = models.JSONField(default=dict)
    # Stripe's endpoint signing secret or HubSpot's app client secret (the vendor makes them; the admin
    # pastes them here), or the write key PoV made for an analytics source. Kept readable: every arrival
    # is checked against it.
    secret = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.name}"


class Outcome(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    IGNORED = "ignored", "Ignored"
    REJECTED = "rejected", "Rejected"


class Arrival(TenantOwned):
    """One request a connection received, and what PoV did with it; kept 30 days (intake.tasks)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="arrivals")
    at = models.DateTimeField()
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    # The vendor's id of what arrived (a Stripe event, a HubSpot deal, a Segment messageId or "batch").
    vendor_id = models.CharField(max_length=255, blank=True)
    summary = models.CharField(max_length=1000)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["connection", "-at"], name="arrival_connection_at_idx")]
