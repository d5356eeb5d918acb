"""Settings (admins): members and roles, invitations, API keys, and the company's own settings."""

import zoneinfo

from django.conf import settings as conf
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlencode, urlsafe_base64_encode
from django.views.decorators.http import require_http_methods, require_POST

from tenants import invitations
from tenants.api_keys import api_key_create, api_key_revoke
from tenants.forms import sign_in_name
from tenants.models import ApiKey, ApiScope, AuditEntry, Member, Role
from tenants.scoping import get_or_404
from tenants.services import (
    invitation_cancel,
    invitation_outstanding,
    member_add,
    member_set_active,
    member_set_role,
    setup_dismiss,
    tenant_update,
    user_rename,
)
from tenants.web import ADMIN_ONLY, EVERY_ROLE, error_messages, roles, web_actor


def time_zone_choices():
    """Area/City names and UTC: the database's "localtime", "Factory" or "EST5EDT" are no company's zone."""
    return sorted(tz for tz in zoneinfo.available_timezones() if "/" in tz or tz == "UTC")


def _members():
    members = list(Member.objects.select_related("user").order_by("user__email"))
    for member in members:
        member.outstanding = invitation_outstanding(member)  # an invitation to resend or withdraw
    return members


def _render_settings(request, *, status=200, **extra):
    context = {
        "members": _members(),
        "roles": Role.choices,
        "keys": ApiKey.objects.order_by("-created_at"),
        "scopes": ApiScope.choices,
        "audit": AuditEntry.objects.order_by("-created_at")[:50],
        "time_zones": time_zone_choices(),
        **extra,
    }
    return render(request, "tenants/settings.html", context, status=status)


def locked_out(request, original_response=None, credentials=None):
    """The page django-axes shows instead of signing in, once an (email, address) pair is locked out."""
    context = {
        "username": sign_in_name(request, credentials),
        "failure_limit": conf.AXES_FAILURE_LIMIT,
        "cooloff_minutes": round(conf.AXES_COOLOFF_TIME.total_seconds() / 60),
    }
    return render(request, "tenants/locked_out.html", context, status=429)


@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def settings_page(request, slug):
    return _render_settings(request)


def _back(slug, section):
    return HttpResponseRedirect(f"{reverse('settings', args=[slug])}#{section}")


def _invitation_email(request, member, tenant):
    """The invitation: a new person gets a link to choose a password (Django's reset token: single use,
    expires); someone with an account already, a link to accept, signed in as themselves."""
    user = member.user
    if member.invitation_pending:
        template, path = "tenants/email/join.txt", reverse("invitation", args=[invitations.token_for(member)])
    else:
        uid, token = urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)
        template, path = "tenants/email/invite.txt", reverse("password_reset_confirm", args=[uid, token])
    context = {"tenant": tenant, "link": conf.SITE_URL.rstrip("/") + path, "inviter": request.user.email,
               "role": member.get_role_display(), "days": invitations.MAX_AGE_DAYS}  # fmt: skip
    send_mail(
        subject=f"You are invited to {tenant.name} on PoV",
        message=render_to_string(template, context),
        from_email=None,
        recipient_list=[user.email],
    )


@login_required
@require_http_methods(["GET", "POST"])
def invitation(request, token):
    """GET shows whom the invitation is from and for what (a link scanner accepts nothing); POST accepts."""
    found = invitations.pending_for(token, request.user)
    if found is None:
        return render(request, "tenants/invitation_invalid.html", status=404)
    tenant, member = found
    if request.method == "POST":
        invitations.invitation_accept(tenant=tenant, member=member)
        messages.success(request, f"Welcome to {tenant.name}.")
        return HttpResponseRedirect(reverse("overview", args=[tenant.slug]))
    return render(request, "tenants/invitation.html", {"company": tenant, "invited": member})


@require_POST
@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def member_invite(request, slug):
    email, role = request.POST.get("email", "").strip(), request.POST.get("role", "")
    try:
        if not email:
            raise ValidationError({"email": ["Enter the email address to invite."]})
        if Member.objects.filter(user__email__iexact=email).exists():
            raise ValidationError({"email": [f"{email} is already a member or invited; see the table below."]})
        member, _ = member_add(tenant=request.tenant, email=email, role=role, actor=web_actor(request))
    except ValidationError as exc:
        invite = {"email": email, "role": role}
        return _render_settings(request, status=400, invite_errors=error_messages(exc), invite=invite)
    # One answer whether or not the address has an account elsewhere: the page must not tell.
    _invitation_email(request, member, request.tenant)
    messages.success(request, f"Invitation sent to {member.user.email}.")
    return _back(slug, "members")


@require_POST
@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def invitation_again(request, slug, member_id):
    """Resend (`resend`) or withdraw (`cancel`) an invitation not taken up yet."""
    member = get_or_404(Member.objects.select_related("user"), id=member_id)
    if not invitation_outstanding(member):
        messages.error(request, f"{member.user.email} has joined already.")
    elif request.POST.get("action") == "cancel":
        invitation_cancel(tenant=request.tenant, member=member, actor=web_actor(request))
        messages.success(request, f"The invitation of {member.user.email} is withdrawn.")
    else:
        _invitation_email(request, member, request.tenant)
        messages.success(request, f"Invitation sent to {member.user.email} again.")
    return _back(slug, "members")


@require_POST
@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def member_role(request, slug, member_id):
    member = get_or_404(Member.objects.select_related("user"), id=member_id)
    try:
        member_set_role(
            tenant=request.tenant, member=member, role=request.POST.get("role", ""), actor=web_actor(request)
        )
        messages.success(request, f"{member.user.email} is now {member.get_role_display()}.")
    except ValidationError as exc:
        messages.error(request, " ".join(error_messages(exc)))
    return _back(slug, "members")


@roles(EVERY_ROLE, read=EVERY_ROLE)
def me(request, slug):
    """Your own name, as colleagues see it in place of your email."""
    errors = []
    if request.method == "POST":
        try:
            user_rename(user=request.user, first_name=request.POST.get("first_name", ""),
                        last_name=request.POST.get("last_name", ""))  # fmt: skip
        except ValidationError as exc:
            errors = error_messages(exc)
        else:
            messages.success(request, "Your name is saved.")
            return HttpResponseRedirect(reverse("me", args=[slug]))
    return render(request, "tenants/me.html", {"errors": errors}, status=400 if errors else 200)


@require_POST
@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def member_active(request, slug, member_id):
    member = get_or_404(Member.objects.select_related("user"), id=member_id, invitation_pending=False)
    active = request.POST.get("active") == "yes"
    try:
        member_set_active(tenant=request.tenant, member=member, active=active, actor=web_actor(request))
    except ValidationError as exc:
        messages.error(request, " ".join(error_messages(exc)))
        return _back(slug, "members")
    if active:
        messages.success(request, f"{member.user.email} can open {request.tenant.name} again.")
        return _back(slug, "members")
    # What they owned waits for a new owner: the list of it, with its bulk handoff.
    messages.success(request, f"{member.user.email} is deactivated. Hand their engagements to someone else here.")
    return HttpResponseRedirect(reverse("engagements", args=[slug]) + "?" + urlencode({"owner": member.user.email}))


@require_POST
@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def key_create(request, slug):
    name, scope = request.POST.get("name", "").strip()[:100], request.POST.get("scope", "")
    errors = []
    if not name:
        errors.append("Give the key a name, e.g. the system that will use it.")
    if scope not in ApiScope.values:
        errors.append(f"Scope must be one of: {', '.join(ApiScope.values)}.")
    if name and ApiKey.objects.filter(name=name).exists():
        errors.append(f"A key named {name!r} already exists.")
    if errors:
        return _render_settings(request, status=400, key_errors=errors)
    key, raw = api_key_create(tenant=request.tenant, name=name, scope=scope, actor=web_actor(request))
    # The raw key is shown on this response only; it is not stored.
    return _render_settings(request, new_key=key, new_key_raw=raw)


@require_POST
@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def key_revoke(request, slug, key_id):
    key = get_or_404(ApiKey.objects.all(), id=key_id)
    api_key_revoke(tenant=request.tenant, key=key, actor=web_actor(request))
    messages.success(request, f"Key {key.name} revoked.")
    return _back(slug, "keys")


@require_POST
@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def company_update(request, slug):
    post = request.POST
    try:
        tenant_update(
            tenant=request.tenant, actor=web_actor(request), name=post.get("name", "").strip(),
            time_zone=post.get("time_zone", ""), grace_days=_whole(post, "grace_days"),
            escalation_days=_whole(post, "escalation_days"), at_risk_threshold=_percent(post, "at_risk_percent"),
        )  # fmt: skip
    except ValidationError as exc:
        request.tenant.refresh_from_db()
        return _render_settings(request, status=400, company_errors=error_messages(exc))
    messages.success(request, "Company settings saved.")
    return _back(slug, "company")


def _percent(post, field):
    """A whole percent as a share; None when the field was not sent (the threshold stays)."""
    if field not in post:
        return None
    raw = post.get(field, "").strip()
    problem = ValidationError(
        {"at_risk_threshold": [f"The at-risk threshold is a whole percent from 0 to 100, not {raw!r}."]}
    )
    try:
        percent = int(raw)
    except ValueError as exc:
        raise problem from exc
    if not 0 <= percent <= 100:
        raise problem
    return percent / 100


def _whole(post, field):
    raw = post.get(field, "").strip()
    try:
        return int(raw)
    except ValueError as exc:
        raise ValidationError({field: [f"{raw!r} is not a whole number of days."]}) from exc


@require_POST
@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def setup_dismissed(request, slug):
    setup_dismiss(tenant=request.tenant, actor=web_actor(request))
    messages.success(request, "The set-up checklist is hidden.")
    return HttpResponseRedirect(reverse("overview", args=[slug]))
