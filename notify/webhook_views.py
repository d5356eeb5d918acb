"""Webhook settings (admins): endpoints and their health, a new endpoint or secret shown once, enable,
disable, delete, a test event, and each endpoint's recent deliveries with their attempt log."""

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from notify import webhooks
from notify.models import EndpointFormat, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from tenants.scoping import get_or_404
from tenants.web import ADMIN_ONLY, roles, web_actor

RECENT_DELIVERIES = 25
SECRET_HINT_CHARS = len(webhooks.SECRET_PREFIX) + 4  # enough to tell which secret is in use, not to use it

admin_only = roles(ADMIN_ONLY, read=ADMIN_ONLY)


def _endpoints():
    """Every endpoint with its health in one query: pending, delivered and given up in the last 24 h,
    and the last attempt's status."""
    day_ago = timezone.now() - timedelta(hours=24)
    last = WebhookAttempt.objects.filter(delivery__endpoint=OuterRef("pk")).order_by("-at")
    return (
        WebhookEndpoint.objects.filter(format=EndpointFormat.SIGNED_JSON)
        .annotate(
            pending=Count("deliveries", filter=Q(deliveries__delivered_at=None, deliveries__given_up_at=None)),
            delivered_day=Count("deliveries", filter=Q(deliveries__delivered_at__gte=day_ago)),
            given_up_day=Count("deliveries", filter=Q(deliveries__given_up_at__gte=day_ago)),
            last_attempt_at=Subquery(last.values("at")[:1]),
            last_status=Subquery(last.values("status")[:1]),
        )
        .order_by("created_at")
    )


def _list(request, *, status=200, errors=None, form=None):
    context = {"endpoints": _endpoints(), "events": WebhookEvent.choices, "errors": errors or {}, "form": form or {}}
    return render(request, "notify/webhooks/list.html", context, status=status)


def _endpoint_page(request, endpoint, *, secret=None):
    deliveries = (
        WebhookDelivery.objects.filter(endpoint=endpoint)
        .order_by("-created_at")
        .prefetch_related(Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("-at")))
    )[:RECENT_DELIVERIES]
    context = {
        "endpoint": endpoint,
        "deliveries": deliveries,
        "secret": secret,  # only on the response that created or rotated it
        "secret_hint": endpoint.secret[:SECRET_HINT_CHARS],
        "event_labels": dict(WebhookEvent.choices),
        "shown_url": webhooks.shown_url(endpoint),
        "is_chat": endpoint.format == EndpointFormat.CHAT,
        "now": timezone.now(),
    }
    response = render(request, "notify/webhooks/endpoint.html", context)
    if secret:
        add_never_cache_headers(response)  # no copy of the secret in a browser or proxy cache
    return response


def _endpoint(endpoint_id):
    return get_or_404(WebhookEndpoint.objects.all(), id=endpoint_id)


@admin_only
def webhook_list(request, slug):
    return _list(request)


@admin_only
@require_POST
def webhook_create(request, slug):
    url, events = request.POST.get("url", ""), request.POST.getlist("events")
    actor = web_actor(request)
    try:
        endpoint, secret = webhooks.endpoint_create(tenant=request.tenant, url=url, events=events, actor=actor)
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"general": exc.messages}
        return _list(request, status=400, errors=errors, form={"url": url, "events": events})
    # The secret is on this response only; a later GET of the page shows its first characters.
    return _endpoint_page(request, endpoint, secret=secret)


@admin_only
def webhook_detail(request, slug, endpoint_id):
    return _endpoint_page(request, _endpoint(endpoint_id))


@admin_only
@require_POST
def webhook_rotate(request, slug, endpoint_id):
    endpoint = _endpoint(endpoint_id)
    secret = webhooks.endpoint_rotate_secret(tenant=request.tenant, endpoint=endpoint, actor=web_actor(request))
    return _endpoint_page(request, endpoint, secret=secret)


@admin_only
@require_POST
def webhook_enable(request, slug, endpoint_id):
    endpoint = _endpoint(endpoint_id)
    if webhooks.endpoint_enable(tenant=request.tenant, endpoint=endpoint, actor=web_actor(request)):
        messages.success(request, f"Sending to {webhooks.shown_url(endpoint)} again.")
    return redirect("webhook-endpoint", slug, endpoint.pk)


@admin_only
@require_POST
def webhook_disable(request, slug, endpoint_id):
    endpoint = _endpoint(endpoint_id)
    if webhooks.endpoint_disable(tenant=request.tenant, endpoint=endpoint, actor=web_actor(request)):
        messages.success(request, f"Paused {webhooks.shown_url(endpoint)}: nothing is sent until you enable it.")
    return redirect("webhook-endpoint", slug, endpoint.pk)


@admin_only
@require_http_methods(["GET", "HEAD", "POST"])
def webhook_delete(request, slug, endpoint_id):
    """GET asks for confirmation; POST deletes."""
    endpoint = _endpoint(endpoint_id)
    if request.method != "POST":
        pending = WebhookDelivery.objects.filter(endpoint=endpoint, delivered_at=None, given_up_at=None).count()
        context = {"endpoint": endpoint, "pending": pending, "shown_url": webhooks.shown_url(endpoint)}
        return render(request, "notify/webhooks/delete.html", context)
    webhooks.endpoint_delete(tenant=request.tenant, endpoint=endpoint, actor=web_actor(request))
    messages.success(request, f"Deleted {endpoint.name or webhooks.shown_url(endpoint)}.")
    return redirect("connections" if endpoint.format == EndpointFormat.CHAT else "webhooks", slug)


@admin_only
@require_POST
def webhook_test(request, slug, endpoint_id):
    endpoint = _endpoint(endpoint_id)
    try:
        webhooks.endpoint_send_test(tenant=request.tenant, endpoint=endpoint, actor=web_actor(request))
        messages.success(request, "Test event queued; its attempts appear below within seconds.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("webhook-endpoint", slug, endpoint.pk)


# Under /t/<slug>/ (notify/urls.py).
tenant_urlpatterns = [
    path("settings/webhooks/", webhook_list, name="webhooks"),
    path("settings/webhooks/new/", webhook_create, name="webhook-create"),
    path("settings/webhooks/<uuid:endpoint_id>/", webhook_detail, name="webhook-endpoint"),
    path("settings/webhooks/<uuid:endpoint_id>/rotate/", webhook_rotate, name="webhook-rotate"),
    path("settings/webhooks/<uuid:endpoint_id>/enable/", webhook_enable, name="webhook-enable"),
    path("settings/webhooks/<uuid:endpoint_id>/disable/", webhook_disable, name="webhook-disable"),
    path("settings/webhooks/<uuid:endpoint_id>/delete/", webhook_delete, name="webhook-delete"),
    path("settings/webhooks/<uuid:endpoint_id>/test/", webhook_test, name="webhook-test"),
]
