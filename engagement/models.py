"""The record (customers, offerings, purchases, events, notes) and its projection (Engagement).

Events are append-only facts. The Engagement row is a projection of its purchase and events,
rebuilt by `engagement.projection.derive` in the same transaction as every event.
"""

import uuid

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_scopes import ScopedManager

from tenants.models import Member, Tenant

KEY_VALIDATOR = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "Use letters, digits, '-', '_' and '.'.")


class TenantOwned(models.Model):
    """Every tenant-owned row: a non-null tenant and a manager that fails closed outside a scope."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    objects = ScopedManager(tenant="tenant")

    class Meta:
        abstract = True


def tenant_without_own_index():
    """The tenant key for a large table whose indexes all start with it: an index of its own would only
    cost writes. (Deleting a tenant, rare, then checks this key with one scan of the table.)"""
    return models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)


class Customer(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    email = models.EmailField(max_length=254, blank=True)
    segment = models.CharField(max_length=64, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id"], name="customer_unique_external_id")]
        indexes = [models.Index(fields=["tenant", "segment"], name="customer_segment_idx")]
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.external_id})"


class Offering(TenantOwned):
    """What is sold; its journey is the ordered milestones, the last of which is the PoV milestone."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.CharField(max_length=64, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200)
    requires_satisfaction = models.BooleanField(default=False)
    satisfaction_threshold = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    confirm_value = models.BooleanField(
        default=False, help_text="Email the customer to confirm the value when the PoV milestone is reached."
    )
    # The PoV milestone's due_day, kept here so metrics can compare without a join.
    target_days = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="offering_unique_key")]
        ordering = ["name"]

    def __str__(self):
        return self.name


class Milestone(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    offering = models.ForeignKey(Offering, on_delete=models.CASCADE, related_name="milestones")
    key = models.CharField(max_length=64, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200)
    order = models.PositiveSmallIntegerField()
    due_day = models.PositiveIntegerField(validators=[MaxValueValidator(3650)])
    is_pov = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "offering", "key"], name="milestone_unique_key"),
            models.UniqueConstraint(fields=["tenant", "offering", "order"], name="milestone_unique_order"),
            models.UniqueConstraint(
                fields=["tenant", "offering"], condition=Q(is_pov=True), name="milestone_one_pov_per_offering"
            ),
        ]
        ordering = ["offering", "order"]

    def __str__(self):
        return f"{self.offering.key}:{self.key}"


class Purchase(TenantOwned):
    """The point of sale. Opens exactly one Engagement."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    external_id = models.CharField(max_length=255)
    customer = models.ForeignKey(Customer, on_delete=models.RESTRICT, related_name="purchases")
    offering = models.ForeignKey(Offering, on_delete=models.RESTRICT, related_name="purchases")
    purchased_at = models.DateTimeField()
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    # What the customer expects to get from the purchase, in their words ("invoices out in one day"): set at
    # the sale, kept with the purchase so the handoff to the engagement's owner cannot lose it.
    success_criteria = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id"], name="purchase_unique_external_id")]

    def __str__(self):
        return self.external_id


class Status(models.TextChoices):
    ON_TRACK = "on_track", "On track"
    STALLED = "stalled", "Stalled"
    PAUSED = "paused", "Paused"
    REACHED = "reached", "Reached PoV"
    LOST = "lost", "Lost"


OPEN_STATUSES = (Status.ON_TRACK, Status.STALLED, Status.PAUSED)


class Engagement(TenantOwned):
    """The engagement phase of one purchase. Everything below `sales_rep` is derived (docs/metrics.md)."""

    # Every projection write updates each index: offering, owner and sales rep are served by the
    # (tenant, …) indexes below, not by indexes of their own.
    tenant = tenant_without_own_index()
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    purchase = models.OneToOneField(Purchase, on_delete=models.CASCADE, related_name="engagement")
    # Copies of the purchase's, so lists and metrics filter without joining it.
    customer = models.ForeignKey(Customer, on_delete=models.RESTRICT, related_name="engagements")
    offering = models.ForeignKey(Offering, on_delete=models.RESTRICT, related_name="engagements", db_index=False)
    pos_at = models.DateTimeField()
    owner = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned", db_index=False
    )
    sales_rep = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="sold", db_index=False
    )

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ON_TRACK)
    next_step = models.CharField(max_length=64, blank=True, help_text="Milestone key, or 'satisfaction'.")
    next_due_at = models.DateTimeField(null=True, blank=True)
    pov_at = models.DateTimeField(null=True, blank=True)
    days_to_value = models.FloatField(null=True, blank=True)
    calendar_days_to_value = models.FloatField(null=True, blank=True)
    lost_at = models.DateTimeField(null=True, blank=True)
    days_to_loss = models.FloatField(null=True, blank=True)
    churned_at = models.DateTimeField(null=True, blank=True)
    paused_days = models.FloatField(default=0.0, help_text="Closed pauses, in days.")
    paused_since = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status", "next_due_at"], name="engagement_status_due_idx"),
            # The engagement list's default order (what is due first), so a page is an index range.
            models.Index(fields=["tenant", "next_due_at", "pos_at", "id"], name="engagement_due_order_idx"),
            models.Index(fields=["tenant", "offering", "pos_at"], name="engagement_offering_pos_idx"),
            models.Index(fields=["tenant", "pos_at"], name="engagement_pos_idx"),
            models.Index(fields=["tenant", "owner"], name="engagement_owner_idx"),
            models.Index(fields=["tenant", "sales_rep"], name="engagement_sales_rep_idx"),
        ]
        ordering = ["-pos_at"]

    def __str__(self):
        return f"{self.purchase.external_id} ({self.status})"


class MilestoneReach(TenantOwned):
    """Projection: when each milestone of an engagement was first reached, on the value clock."""

    # Served by reach_unique_milestone (tenant, engagement, milestone). The engagement keeps an index of its
    # own: deleting an engagement checks its foreign key by the engagement alone.
    tenant = tenant_without_own_index()
    engagement = models.ForeignKey(Engagement, on_delete=models.CASCADE, related_name="reaches")
    milestone = models.ForeignKey(Milestone, on_delete=models.CASCADE, related_name="reaches")
    reached_at = models.DateTimeField()
    clock_days = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "engagement", "milestone"], name="reach_unique_milestone")
        ]

    def __str__(self):
        return f"{self.milestone_id} @ {self.clock_days:.1f} d"


class EventType(models.TextChoices):
    MILESTONE = "milestone", "Milestone"
    SATISFACTION = "satisfaction", "Satisfaction"
    LOST = "lost", "Lost"
    PAUSED = "paused", "Paused"
    RESUMED = "resumed", "Resumed"
    REOPENED = "reopened", "Reopened"


class AppendOnlyError(Exception):
    pass


class Event(TenantOwned):
    """An append-only fact about an engagement."""

    # Read by engagement through event_engagement_time_idx (engagement, occurred_at), which also serves
    # the engagement's foreign key: one index less for every event written. (By external id and by
    # milestone through the indexes below and the milestone key's own.)
    tenant = tenant_without_own_index()
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    engagement = models.ForeignKey(Engagement, on_delete=models.CASCADE, related_name="events", db_index=False)
    type = models.CharField(max_length=16, choices=EventType.choices)
    occurred_at = models.DateTimeField()
    milestone = models.ForeignKey(Milestone, null=True, blank=True, on_delete=models.RESTRICT, related_name="events")
    score = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    comment = models.TextField(blank=True, max_length=4000)
    reason = models.CharField(max_length=500, blank=True)
    # A satisfaction event's answer for each of the purchase's success criteria: {criterion: met}.
    criteria_met = models.JSONField(null=True, blank=True)
    external_id = models.CharField(max_length=255, null=True, blank=True)
    source = models.CharField(max_length=16, default="api")
    recorded_by = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_id"],
                condition=Q(external_id__isnull=False),
                name="event_unique_external_id",
            ),
            models.CheckConstraint(
                condition=~Q(type="milestone") | Q(milestone__isnull=False), name="event_milestone_has_milestone"
            ),
            models.CheckConstraint(
                condition=~Q(type="satisfaction") | Q(score__gte=1, score__lte=5), name="event_satisfaction_has_score"
            ),
        ]
        indexes = [models.Index(fields=["engagement", "occurred_at"], name="event_engagement_time_idx")]
        ordering = ["occurred_at", "created_at"]

    def __str__(self):
        return f"{self.type} @ {self.occurred_at:%Y-%m-%d}"

    def save(self, *args, **kwargs):
        # Append-only: a save is always an INSERT, so saving a stored event again fails on its primary key
        # (an IntegrityError) instead of rewriting the fact; an explicit update is refused outright.
        if kwargs.get("update_fields") is not None or kwargs.get("force_update"):
            raise AppendOnlyError("Events are append-only.")
        super().save(*args, **{**kwargs, "force_insert": True})


class NoteKind(models.TextChoices):
    NOTE = "note", "Note"
    HANDOFF = "handoff", "Handoff"


class Note(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    engagement = models.ForeignKey(Engagement, on_delete=models.CASCADE, related_name="notes")
    kind = models.CharField(max_length=16, choices=NoteKind.choices, default=NoteKind.NOTE)
    body = models.TextField(max_length=10000)
    author = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    author_label = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.kind} by {self.author_label}"


class OutboxMessage(TenantOwned):
    """What the record publishes, written in the same transaction as the change (DESIGN.md).

    Handed to the handlers registered for `kind` by the drain task; a row is claimed with a
    conditional UPDATE before it is handled, so two drains never handle it twice at once.
    """

    # Pending rows are found through outbox_pending_idx, those to purge through outbox_handled_idx.
    tenant = tenant_without_own_index()
    kind = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    claim_token = models.UUIDField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["tenant", "created_at"], condition=Q(handled_at__isnull=True), name="outbox_pending_idx"
            ),
            models.Index(
                fields=["tenant", "handled_at"], condition=Q(handled_at__isnull=False), name="outbox_handled_idx"
            ),
        ]
        ordering = ["id"]

    def __str__(self):
        return f"{self.kind} #{self.pk}"


class AssignmentMethod(models.TextChoices):
    ROUND_ROBIN = "round_robin", "Round robin"
    FEWEST_OPEN = "fewest_open", "Fewest open engagements"


class AssignmentRule(TenantOwned):
    """Who owns a purchase that arrives without an owner (engagement.assignment): the first rule, in
    `position` order, whose offering and segment match (blank: any) and which has an acting member."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    position = models.PositiveIntegerField()
    offering = models.ForeignKey(Offering, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    segment = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=16, choices=AssignmentMethod.choices, default=AssignmentMethod.ROUND_ROBIN)
    # Member ids, not a many-to-many table: every row of a tenant carries its tenant (row-level security).
    members = ArrayField(models.UUIDField())
    # Round robin's place: the member who was given the last engagement.
    last_assigned = models.ForeignKey(Member, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position"]

    def __str__(self):
        return f"rule {self.position}"


class ImportState(models.TextChoices):
    DRAFT = "draft", "Waiting for its columns"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Import(TenantOwned):
    """A CSV file of customers, purchases or events, read row by row through the API's services
    (engagement.imports), a chunk of rows per transaction; `done_chunks` are those a stopped run skips."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=[(k, k.title()) for k in ("customers", "purchases", "events")])
    filename = models.CharField(max_length=255)
    data = models.BinaryField()  # the file as uploaded, so a worker anywhere can read it
    encoding = models.CharField(max_length=16)
    delimiter = models.CharField(max_length=1)
    mapping = models.JSONField(default=dict)  # column header -> field
    time_zone = models.CharField(max_length=64)
    dry_run = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=ImportState.choices, default=ImportState.DRAFT)
    rows = models.PositiveIntegerField(default=0)
    done_rows = models.PositiveIntegerField(default=0)
    # Chunks (of imports.CHUNK rows, counted from 0): the next no run has taken yet, and those committed.
    next_chunk = models.PositiveIntegerField(default=0)
    done_chunks = ArrayField(models.PositiveIntegerField(), default=list)
    # One chunk after another when rows depend on rows of other chunks (csv_files.chunks_depend).
    in_order = models.BooleanField(default=True)
    # Which start of the import a run belongs to: a run left from an earlier one (a dry run) does nothing.
    attempt = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The last step of its run: a queued or running import quiet for long lost its task (imports.resume).
    moved_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} import {self.filename} ({self.state})"


class ImportRejection(TenantOwned):
    """A row of an import that was refused, with the API's reason."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Import, on_delete=models.CASCADE, related_name="rejections")
    row = models.PositiveIntegerField()  # in the file, the header being row 1
    reason = models.TextField()

    class Meta:
        ordering = ["row"]
        indexes = [models.Index(fields=["run", "row"], name="import_rejection_row_idx")]

    def __str__(self):
        return f"row {self.row}: {self.reason}"
