"""Invitations of people who already have an account: a signed link, and their consent before the
company appears in their switcher. (A new person's invitation is the link to choose a password.)"""

from django.core import signing
from django.db import transaction

from tenants.actors import Actor, audit
from tenants.models import Member, Tenant
from tenants.scoping import tenant_scope

SALT = "tenants.invitation"
MAX_AGE_DAYS = 14


def token_for(member: Member) -> str:
    return signing.dumps({"t": str(member.tenant_id), "m": str(member.pk)}, salt=SALT)


def pending_for(token: str, user) -> tuple[Tenant, Member] | None:
    """The company and the pending membership a link names, if it is valid and meant for `user`."""
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE_DAYS * 86400)
        tenant = Tenant.objects.filter(pk=data["t"]).first()
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    if tenant is None:
        return None
    with tenant_scope(tenant):
        member = Member.objects.select_related("user").filter(pk=data["m"], invitation_pending=True).first()
    return (tenant, member) if member is not None and member.user_id == user.pk else None


def invitation_accept(*, tenant: Tenant, member: Member) -> None:
    with tenant_scope(tenant), transaction.atomic():
        Member.objects.filter(pk=member.pk, invitation_pending=True).update(invitation_pending=False, is_active=True)
        audit(tenant=tenant, actor=Actor.for_member(member), action="member.joined", target=member)
