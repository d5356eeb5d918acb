"""Factories for the record. Tenant-owned factories need an active tenant scope when they query."""

from datetime import timedelta

import factory
from django.utils import timezone

from engagement.models import Customer, Milestone, Offering
from tenants.models import Member, Role, Tenant, User
from tenants.scoping import tenant_scope


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.Sequence(lambda n: f"Company {n}")
    time_zone = "Europe/Berlin"
    grace_days = 3


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")


class TenantOwnedFactory(factory.django.DjangoModelFactory):
    """Writes the row inside its tenant's scope, as row-level security requires on PostgreSQL."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with tenant_scope(kwargs["tenant"]):
            return super()._create(model_class, *args, **kwargs)


class MemberFactory(TenantOwnedFactory):
    class Meta:
        model = Member

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER


class CustomerFactory(TenantOwnedFactory):
    class Meta:
        model = Customer

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"cus-{n}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    segment = "smb"


def make_offering(tenant, key="software", due_days=(2, 7, 14), requires_satisfaction=False, threshold=4):
    """An offering whose journey has one milestone per due day, keyed m1, m2, ...; the last is PoV."""
    offering = Offering.objects.create(
        tenant=tenant,
        key=key,
        name=key.title(),
        requires_satisfaction=requires_satisfaction,
        satisfaction_threshold=threshold,
        target_days=due_days[-1],
    )
    for order, due_day in enumerate(due_days):
        Milestone.objects.create(
            tenant=tenant,
            offering=offering,
            key=f"m{order + 1}",
            name=f"Milestone {order + 1}",
            order=order,
            due_day=due_day,
            is_pov=order == len(due_days) - 1,
        )
    return offering


def days_ago(n, now=None):
    return (now or timezone.now()) - timedelta(days=n)


def refresh(obj):
    """`obj.refresh_from_db()` in its tenant's scope (row-level security hides it anywhere else)."""
    with tenant_scope(obj.tenant):
        obj.refresh_from_db()
    return obj
