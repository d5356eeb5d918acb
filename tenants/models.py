"""Tenants, their members and roles, and the email-login user."""

import uuid
import zoneinfo

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django_scopes import ScopedManager


def validate_time_zone(value):
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known IANA time zone (e.g. Europe/Berlin).")


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractUser):
    """A person. Signs in with their email; belongs to tenants through Member rows."""

    username = None
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []
    objects = UserManager()

    def __str__(self):
        return self.email


class Tenant(models.Model):
    """A company using PoV. Everything tenant-owned points here."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(
        max_length=50,
        unique=True,
        validators=[RegexValidator(r"^[a-z0-9][a-z0-9-]*$", "Use lowercase letters, digits and hyphens.")],
    )
    name = models.CharField(max_length=200)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    grace_days = models.PositiveIntegerField(
        default=3, validators=[MaxValueValidator(365)], help_text="Days past a due date before a customer is stalled."
    )
    escalation_days = models.PositiveIntegerField(
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="Days an alert may stay open before it is escalated.",
    )
    at_risk_threshold = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="An open engagement is at risk when its chance to reach value by the target day is below this.",
    )
    # When an admin hid the overview's set-up checklist before every step was done.
    setup_dismissed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def tzinfo(self):
        return zoneinfo.ZoneInfo(self.time_zone)


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Engagement owner"
    SALES = "sales", "Sales"
    SERVICE = "service", "Service"
    VIEWER = "viewer", "Viewer"


# Who may change what, on the pages (tenants.web.roles) and through the API (TenantAPIView.write_roles)
# alike; viewers change nothing. Customers, purchases, events, engagements and alerts: the acting roles.
ACTING_ROLES = frozenset({Role.ADMIN, Role.OWNER, Role.SALES, Role.SERVICE})
# Journeys, members, API keys, webhooks and settings: admins.
ADMIN_ONLY = frozenset({Role.ADMIN})


class Member(models.Model):
    """A user's membership in one tenant, with a role."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    is_active = models.BooleanField(default=True)
    # An existing user invited here, who has not accepted yet: inactive, so nothing of the company shows
    # until they do (tenants.invitations).
    invitation_pending = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(tenant="tenant")
    # A user's own memberships span tenants by nature (sign-in, tenant switcher); only that lookup uses this.
    unscoped = models.Manager()  # noqa: DJ012 - the scoped manager must stay the default (first)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="member_unique_user_per_tenant")]
        ordering = ["user__email"]

    def __str__(self):
        return f"{self.user.email} ({self.role}) @ {self.tenant.slug}"

    @property
    def email(self):
        return self.user.email

    @property
    def name(self):
        """As people call them: their name, or their email while they have none."""
        return self.user.get_full_name() or self.user.email

    @property
    def can_act(self):
        return self.role in ACTING_ROLES


class AuditEntry(models.Model):
    """Who changed what: reassignments, journeys, members, keys. Events are their own audit trail."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    actor_label = models.CharField(max_length=255)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=255)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.actor_label} {self.action} {self.target_type} {self.target_id}"


class ApiScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Read and write"
    ADMIN = "admin", "Read, write and connections"


class ApiKey(models.Model):
    """A tenant's key for the REST API. Only a hash is stored; the prefix identifies it in lists and logs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64)
    scope = models.CharField(max_length=8, choices=ApiScope.choices, default=ApiScope.READ)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=255, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(tenant="tenant")
    # Authentication finds a key by its prefix before any tenant is known; only that lookup uses this.
    unscoped = models.Manager()  # noqa: DJ012 - the scoped manager must stay the default (first)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="apikey_unique_name_per_tenant")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…, {self.scope})"

    @property
    def is_active(self):
        return self.revoked_at is None


class IdempotencyKey(models.Model):
    """A POST's Idempotency-Key, claimed before the work runs and answered from here for 24 h."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(tenant="tenant")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_unique_key")]

    def __str__(self):
        return self.key
