"""Fixtures of the dashboard tests: a tenant ("acme", and "charlie" for the leak tests) with one member per
role and a small record built through the services: a stalled engagement with an open alert, an API key."""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.utils import timezone

from engagement.models import AssignmentRule, Customer, Engagement, Event, Milestone, Note, Offering, Purchase
from engagement.services import event_record, purchase_record
from metrics.alerts import stalled_scan
from metrics.models import Alert
from tenants.api_keys import api_key_create
from tenants.models import ApiKey, AuditEntry, Member
from tenants.scoping import tenant_scope
from tests.factories import CustomerFactory, MemberFactory, make_offering

ROLES = ("admin", "owner", "sales", "service", "viewer")


@dataclass
class World:
    """One tenant's members by role and the objects the routes under /t/<slug>/ point at."""

    tenant: object
    members: dict = field(default_factory=dict)
    offering: object = None
    engagement: object = None
    alert: object = None
    key: object = None
    teammate: object = None  # a member whose role the admin changes

    def path(self, rest=""):
        return f"/t/{self.tenant.slug}/{rest}"

    def ids(self):
        """Placeholders of the route templates."""
        return {
            "engagement": self.engagement.id,
            "customer": self.engagement.customer_id,
            "alert": self.alert.id,
            "offering": self.offering.key,
            "member": self.teammate.id,
            "key": self.key.id,
        }


def buy(tenant, offering, actor, *, name=None, days_ago=20, owner=None, sales_rep=None, segment="smb", ref=None):
    """A purchase (and its engagement) through the service; inside the tenant's scope."""
    customer = CustomerFactory(tenant=tenant, segment=segment, **({"name": name} if name else {}))
    purchase, _ = purchase_record(
        tenant=tenant,
        external_id=ref or f"p-{customer.external_id}",
        customer=customer,
        offering=offering,
        purchased_at=timezone.now() - timedelta(days=days_ago),
        actor=actor,
        owner=owner,
        sales_rep=sales_rep,
    )
    return Engagement.objects.select_related("customer", "purchase").get(pk=purchase.engagement.pk)


def reach(tenant, engagement, milestone, actor, *, days_ago=1):
    """A milestone event through the service."""
    event_record(
        tenant=tenant,
        engagement=engagement,
        type="milestone",
        milestone=milestone,
        occurred_at=timezone.now() - timedelta(days=days_ago),
        actor=actor,
    )


def build_world(tenant, actor):
    """Members of every role, an offering with a three-step journey (days 2, 7, 14), an engagement
    bought 20 days ago with nothing recorded (stalled, so the scan opens an alert) and an API key."""
    slug = tenant.slug
    with tenant_scope(tenant):
        world = World(tenant=tenant)
        for role in ROLES:
            world.members[role] = MemberFactory(tenant=tenant, user__email=f"{role}@{slug}.test", role=role)
        world.teammate = MemberFactory(tenant=tenant, user__email=f"teammate@{slug}.test", role="owner")
        world.offering = make_offering(tenant, key=f"{slug}-software")
        world.engagement = buy(tenant, world.offering, actor, owner=world.members["owner"], ref=f"{slug}-p1")
        stalled_scan(tenant)
        world.alert = Alert.objects.get(engagement=world.engagement)
        world.key, _ = api_key_create(tenant=tenant, name="CRM", scope="write", actor=actor)
    return world


@pytest.fixture
def acme(tenant, actor):
    return build_world(tenant, actor)


@pytest.fixture
def charlie(other_tenant, actor):
    return build_world(other_tenant, actor)


def snapshot(world):
    """What a refused or invalid request must leave as it was: the record's counts and the state of each
    object the routes act on (compare before and after)."""
    tenant = world.tenant
    tenant.refresh_from_db()
    with tenant_scope(tenant):
        engagement = Engagement.objects.get(pk=world.engagement.pk)
        alert = Alert.objects.get(pk=world.alert.pk)
        return {
            "events": Event.objects.count(),
            "customers": sorted(Customer.objects.values_list("external_id", "name", "email", "segment")),
            "purchases": Purchase.objects.count(),
            "rules": AssignmentRule.objects.count(),
            "notes": Note.objects.count(),
            "audit": AuditEntry.objects.count(),
            "engagement": (engagement.status, engagement.owner_id, engagement.sales_rep_id),
            "alert": (alert.state, alert.assignee_id, alert.resolved_at),
            "offerings": sorted(Offering.objects.values_list("key", "name", "target_days")),
            "milestones": sorted(Milestone.objects.values_list("key", "name", "due_day")),
            "members": sorted(Member.objects.values_list("user__email", "role", "is_active")),
            "keys": sorted(ApiKey.objects.values_list("name", "revoked_at")),
            "company": (tenant.name, tenant.time_zone, tenant.grace_days, tenant.escalation_days),
        }
