"""Digest pages: a member's own digest and frequency, the admins' preview of anyone's, and the
public one-click unsubscribe (RFC 8058) that the signed link in every digest points at."""

from django.contrib import messages
from django.core import signing
from django.core.exceptions import ValidationError
from django.db.models import Max
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from engagement.queries import uuid_or_404
from notify import digests
from notify.mail import absolute
from notify.models import DigestFrequency, DigestSend
from tenants.actors import Actor
from tenants.models import Member, Tenant
from tenants.scoping import get_or_404, tenant_scope
from tenants.web import ADMIN_ONLY, EVERY_ROLE, roles, web_actor


def _preview(tenant, member):
    frequency = digests.frequency_of(member)
    return {
        "recipient": member,
        "frequency": frequency,
        "digest": digests.digest_for(tenant, member, frequency, timezone.now()),
        "last_sent_at": digests.last_sent_at(member),
    }


@roles(EVERY_ROLE, read=EVERY_ROLE)
def my_digest(request, slug):
    """Every member sees their own digest as it would be sent now, and chooses how often."""
    tenant, member = request.tenant, request.member
    errors = []
    if request.method == "POST":
        chosen = request.POST.get("frequency", "")
        try:
            digests.digest_set_frequency(tenant=tenant, member=member, frequency=chosen, actor=web_actor(request))
        except ValidationError as exc:
            errors = exc.messages
        else:
            messages.success(request, f"Digest: {DigestFrequency(chosen).label}.")
            return HttpResponseRedirect(reverse("digest", args=[slug]))
    context = {**_preview(tenant, member), "choices": DigestFrequency.choices, "errors": errors}
    return render(request, "notify/digest/mine.html", context, status=400 if errors else 200)


@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def settings_digests(request, slug):
    """Admins: every member's frequency and last digest, and a preview of anyone's (?member=<id>)."""
    tenant = request.tenant
    members = list(Member.objects.filter(is_active=True).select_related("user").order_by("user__email"))
    chosen = digests.frequencies(members)
    last = dict(DigestSend.objects.values("member_id").annotate(last=Max("sent_at")).values_list("member_id", "last"))
    unsent = digests.unsent(tenant, timezone.now())
    rows = [{"member": m, "frequency": DigestFrequency(chosen[m.id]).label, "last_sent_at": last.get(m.id),
             "unsent": unsent.get(m.id)} for m in members]  # fmt: skip
    context = {"rows": rows}
    if "member" in request.GET:
        previewed = get_or_404(Member.objects.select_related("user"), id=uuid_or_404(request.GET["member"]))
        context.update(_preview(tenant, previewed))
    return render(request, "notify/digest/settings.html", context)


# The public unsubscribe link ----------------------------------------------------------------------


def _member_of_token(token):
    """(tenant, member) the signed token names, or None when it is tampered with or no longer valid."""
    try:
        tenant_id, member_id = digests.read_unsubscribe_token(token)
    except signing.BadSignature:
        return None
    tenant = Tenant.objects.filter(id=tenant_id).first()
    if tenant is None:
        return None
    with tenant_scope(tenant):
        member = Member.objects.select_related("user").filter(id=member_id).first()
    return (tenant, member) if member else None


@csrf_exempt  # the signed token is the authority; mail clients POST the RFC 8058 one-click without a session
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token):
    """GET shows what will happen (link scanners change nothing); POST turns the member's digests off."""
    found = _member_of_token(token)
    if found is None:
        return render(request, "notify/digest/unsubscribe_invalid.html", status=400)
    tenant, member = found
    context = {"company": tenant, "recipient": member, "manage_url": absolute("digest", tenant.slug)}
    with tenant_scope(tenant):
        if request.method != "POST":
            context["frequency"] = DigestFrequency(digests.frequency_of(member)).label
            return render(request, "notify/digest/unsubscribe.html", context)
        actor = Actor(label=f"{member.user.email} (unsubscribe link)", source="web", member=member)
        digests.digest_set_frequency(tenant=tenant, member=member, frequency=DigestFrequency.OFF, actor=actor)
    return render(request, "notify/digest/unsubscribe_done.html", context)


public_urlpatterns = [path("digests/unsubscribe/<str:token>/", unsubscribe, name="digest-unsubscribe")]

# Under /t/<slug>/ (pov/urls.py).
tenant_urlpatterns = [
    path("digest/", my_digest, name="digest"),
    path("settings/digests/", settings_digests, name="settings-digests"),
]
