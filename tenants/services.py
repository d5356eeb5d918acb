"""Writes for tenants and members."""

import secrets

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from tenants.models import Member, Role, Tenant, User


def generate_password():
    return secrets.token_urlsafe(12)


def tenant_create(*, slug, name, time_zone="UTC", grace_days=3, escalation_days=7):
    tenant = Tenant(slug=slug, name=name, time_zone=time_zone, grace_days=grace_days, escalation_days=escalation_days)
    tenant.full_clean()
    tenant.save()
    return tenant


def member_add(*, tenant, email, role, password=None, first_name="", last_name=""):
    """Add a user (created if new) to `tenant` with `role`. Returns (member, user_created).

    A password is set only on a new user; an existing user keeps theirs.
    """
    if role not in Role.values:
        raise ValidationError({"role": [f"{role!r} is not one of: {', '.join(Role.values)}."]})
    email = User.objects.normalize_email(email).lower()
    with transaction.atomic():
        user = User.objects.filter(email=email).first()
        created = user is None
        if created:
            user = User(email=email, first_name=first_name, last_name=last_name)
            if password:
                validate_password(password, user)
            user.set_password(password) if password else user.set_unusable_password()
            user.full_clean(exclude=["password"])
            user.save()
        member, _ = Member.unscoped.update_or_create(
            tenant=tenant, user=user, defaults={"role": role, "is_active": True}
        )
    return member, created
