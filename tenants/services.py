"""Writes for tenants and members."""

import secrets
from collections.abc import Callable
from functools import partial

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tenants.actors import Actor, audit
from tenants.models import Member, Role, Tenant, User
from tenants.scoping import tenant_scope


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def tenant_create(
    *, slug: str, name: str, time_zone: str = "UTC", grace_days: int = 3, escalation_days: int = 7
) -> Tenant:
    tenant = Tenant(slug=slug, name=name, time_zone=time_zone, grace_days=grace_days, escalation_days=escalation_days)
    tenant.full_clean()
    tenant.save()
    return tenant


def member_add(
    *, tenant: Tenant, email: str, role: str, password: str | None = None, first_name: str = "", last_name: str = "",
    actor: Actor | None = None,
) -> tuple[Member, bool]:  # fmt: skip
    """Add a user (created if new) to `tenant` with `role`. Returns (member, user_created).

    A password is set only on a new user; an existing user keeps theirs. With an `actor` (an admin
    inviting), the addition is audited, and an existing user's membership waits for them to accept it
    (tenants.invitations): nobody is put into a company without their consent. Set-up commands that
    create a company pass no actor.
    """
    if role not in Role.values:
        raise ValidationError({"role": [f"{role!r} is not one of: {', '.join(Role.values)}."]})
    email = User.objects.normalize_email(email).lower()
    with tenant_scope(tenant), transaction.atomic():
        user = User.objects.filter(email=email).first()
        created = user is None
        if created:
            user = User(email=email, first_name=first_name, last_name=last_name)
            if password:
                validate_password(password, user)
            user.set_password(password) if password else user.set_unusable_password()
            user.full_clean(exclude=["password"])
            user.save()
        pending = actor is not None and not created
        member, _ = Member.unscoped.update_or_create(
            tenant=tenant, user=user, defaults={"role": role, "is_active": not pending, "invitation_pending": pending}
        )
        if actor is not None:
            audit(tenant=tenant, actor=actor, action="member.invited", target=member, email=email, role=role)
    return member, created


NAME_MAX = 150


def user_rename(*, user: User, first_name: str, last_name: str) -> User:
    """A person's own name, as colleagues see it on every page (instead of their email)."""
    first_name, last_name = (first_name or "").strip(), (last_name or "").strip()
    errors = {
        field: [f"At most {NAME_MAX} characters." if len(value) > NAME_MAX else "Remove the control characters."]
        for field, value in (("first_name", first_name), ("last_name", last_name))
        if len(value) > NAME_MAX or any(ord(c) < 32 for c in value)
    }
    if not (first_name or last_name):
        errors["first_name"] = ["Give a first or last name: without one, colleagues see your email."]
    if errors:
        raise ValidationError(errors)
    User.objects.filter(pk=user.pk).update(first_name=first_name, last_name=last_name)
    user.first_name, user.last_name = first_name, last_name
    return user


def member_set_role(*, tenant: Tenant, member: Member, role: str, actor: Actor) -> Member:
    """Change a member's role; the last admin cannot stop being one (the company would lock itself out)."""
    if role not in Role.values:
        raise ValidationError({"role": [f"{role!r} is not one of: {', '.join(Role.values)}."]})
    with tenant_scope(tenant), transaction.atomic():
        admins = Member.unscoped.select_for_update().filter(tenant=tenant, role=Role.ADMIN, is_active=True)
        if member.role == Role.ADMIN and role != Role.ADMIN and admins.count() <= 1:
            raise ValidationError({"role": ["The company needs at least one admin."]})
        old = member.role
        Member.unscoped.filter(pk=member.pk, tenant=tenant).update(role=role)
        audit(tenant=tenant, actor=actor, action="member.role_changed", target=member, old=old, new=role)
    member.role = role
    return member


def invitation_outstanding(member: Member) -> bool:
    """An invitation not taken up yet: an existing user who has not accepted, or a new one who has not chosen
    a password."""
    return member.invitation_pending or (not member.user.has_usable_password() and member.user.last_login is None)


def invitation_cancel(*, tenant: Tenant, member: Member, actor: Actor) -> None:
    """Withdraw an invitation not taken up yet: the membership goes (the account, if any, stays)."""
    if not invitation_outstanding(member):
        raise ValidationError({"__all__": [f"{member.user.email} has joined already; deactivate them instead."]})
    with tenant_scope(tenant), transaction.atomic():
        audit(tenant=tenant, actor=actor, action="member.invitation_cancelled", target=member, email=member.user.email)
        Member.unscoped.filter(pk=member.pk, tenant=tenant).delete()


def member_set_active(*, tenant: Tenant, member: Member, active: bool, actor: Actor) -> Member:
    """Deactivate a member (they can no longer open the company, own or take anything) or reactivate one.
    Their engagements keep them as owner until reassigned; the last admin cannot be deactivated."""
    with tenant_scope(tenant), transaction.atomic():
        admins = Member.unscoped.select_for_update().filter(tenant=tenant, role=Role.ADMIN, is_active=True)
        if not active and member.role == Role.ADMIN and member.is_active and admins.count() <= 1:
            raise ValidationError({"__all__": ["The company needs at least one active admin."]})
        Member.unscoped.filter(pk=member.pk, tenant=tenant, invitation_pending=False).update(is_active=active)
        action = "member.reactivated" if active else "member.deactivated"
        audit(tenant=tenant, actor=actor, action=action, target=member, email=member.user.email)
    member.is_active = active
    return member


# Apps that derive rows from tenant settings (engagement: stalled depends on grace_days) add
# `hook(tenant, changed_fields)` here in AppConfig.ready(); called on commit.
settings_changed_hooks: list[Callable[[Tenant, set[str]], None]] = []


def setup_dismiss(*, tenant: Tenant, actor: Actor) -> None:
    """Hide the overview's set-up checklist for everyone in the company."""
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(setup_dismissed_at=timezone.now())
        audit(tenant=tenant, actor=actor, action="tenant.setup_dismissed", target=tenant)


def tenant_update(
    *,
    tenant: Tenant,
    actor: Actor,
    name: str,
    time_zone: str,
    grace_days: int,
    escalation_days: int,
    at_risk_threshold: float | None = None,
) -> Tenant:
    """Change the company's settings; validated like the model (time zone, day ranges, a threshold from 0
    to 1). A threshold of None keeps the current one."""
    asked = {"name": name, "time_zone": time_zone, "grace_days": grace_days, "escalation_days": escalation_days}
    if at_risk_threshold is not None:
        asked["at_risk_threshold"] = at_risk_threshold
    changes = {field: value for field, value in asked.items() if getattr(tenant, field) != value}
    for field, value in changes.items():
        setattr(tenant, field, value)
    tenant.full_clean()
    with transaction.atomic():
        tenant.save()
        audit(tenant=tenant, actor=actor, action="tenant.updated", target=tenant, changes=sorted(changes))
        for hook in settings_changed_hooks:
            transaction.on_commit(partial(hook, tenant, set(changes)))
    return tenant
