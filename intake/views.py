"""Settings → Connections (admins): each connection's address, secret, mapping, switch and log; adding,
a test, and deleting after a confirmation."""

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Q
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from engagement.errors import Invalid
from engagement.models import Milestone, Offering
from intake import services, trial
from intake.models import Arrival, Connection, Kind, Outcome
from notify import webhooks
from notify.models import CHAT_EVENTS, EndpointFormat, WebhookEndpoint, WebhookEvent
from tenants.scoping import get_or_404
from tenants.web import ADMIN_ONLY, roles, web_actor

admin_only = roles(ADMIN_ONLY, read=ADMIN_ONLY)
LOG_LINES = 100
EMPTY_ROWS = 3  # blank rows under a mapping's rows, to add to it


def _connections():
    month_ago = timezone.now() - services.KEEP_ARRIVALS
    counts = {o: Count("arrivals", filter=Q(arrivals__outcome=o, arrivals__at__gte=month_ago)) for o in Outcome.values}
    return Connection.objects.annotate(last_arrival=Max("arrivals__at"), **counts)


@admin_only
def connection_list(request, slug):
    return _list(request)


def _list(request, *, status=200, errors=None, form=None, chat_errors=None, chat_form=None):
    context = {
        "connections": _connections(), "kinds": Kind.choices, "errors": errors or {}, "form": form or {},
        "chats": _chats(), "chat_events": [(e, WebhookEvent(e).label) for e in CHAT_EVENTS],
        "chat_errors": chat_errors or {}, "chat_form": chat_form or {"events": list(CHAT_EVENTS)},
    }  # fmt: skip
    return render(request, "intake/list.html", context, status=status)


def _chats():
    """Chat channels, with their deliveries of the last 30 days that were given up."""
    month_ago = timezone.now() - services.KEEP_ARRIVALS
    given_up = Count("deliveries", filter=Q(deliveries__given_up_at__gte=month_ago))
    delivered = Count("deliveries", filter=Q(deliveries__delivered_at__gte=month_ago))
    chats = WebhookEndpoint.objects.filter(format=EndpointFormat.CHAT).order_by("created_at")
    return chats.annotate(delivered=delivered, given_up=given_up, last_delivery=Max("deliveries__delivered_at"))


@admin_only
@require_POST
def chat_create(request, slug):
    """A chat channel: notify's endpoint that sends chat messages; its page is the webhook endpoint page."""
    name, url, events = request.POST.get("name", ""), request.POST.get("url", ""), request.POST.getlist("events")
    try:
        endpoint, _ = webhooks.endpoint_create(tenant=request.tenant, actor=web_actor(request), url=url,
                                               events=events, format=EndpointFormat.CHAT, name=name)  # fmt: skip
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"general": exc.messages}
        return _list(request, status=400, chat_errors=errors, chat_form={"name": name, "url": url, "events": events})
    messages.success(request, f"{endpoint.name or 'The channel'} will hear about what you chose. Send a test to check.")
    return redirect("webhook-endpoint", slug, endpoint.pk)


@admin_only
@require_POST
def connection_create(request, slug):
    kind, name = request.POST.get("kind", ""), request.POST.get("name", "")
    try:
        connection = services.connection_create(tenant=request.tenant, actor=web_actor(request), kind=kind, name=name,
                                                mapping={})  # fmt: skip
    except Invalid as exc:
        return _list(request, status=400, errors=exc.detail, form={"kind": kind, "name": name})
    secret = connection.secret if connection.kind == Kind.SEGMENT else None
    return _page(request, connection, secret=secret)


def _connection(connection_id):
    return get_or_404(Connection.objects.all(), id=connection_id)


@admin_only
@require_http_methods(["GET", "HEAD", "POST"])
def connection_detail(request, slug, connection_id):
    """GET shows the connection; POST saves its name and mapping (the form of its kind)."""
    connection = _connection(connection_id)
    if request.method != "POST":
        return _page(request, connection)
    try:
        mapping = _mapping_from(connection.kind, request.POST)
        services.connection_update(tenant=request.tenant, connection=connection, actor=web_actor(request),
                                   name=request.POST.get("name", ""), mapping=mapping)  # fmt: skip
    except Invalid as exc:
        return _page(request, connection, errors=exc.detail, status=400)
    messages.success(request, "Saved. What arrives from now on uses this mapping.")
    return redirect("connection", slug, connection.pk)


def _mapping_from(kind, post):
    """The mapping form of each kind, read back into the mapping's JSON shape."""
    if kind == Kind.STRIPE:
        pairs = zip(post.getlist("price"), post.getlist("offering"), strict=False)
        return {"prices": {p.strip(): o for p, o in pairs if p.strip()}}
    if kind == Kind.HUBSPOT:
        return {k: post.get(k, "").strip() for k in ("won_stage", "lost_stage", "offering")}
    events = {}
    for name, target in zip(post.getlist("event"), post.getlist("target"), strict=False):
        if name.strip():
            offering, _, milestone = target.partition(" ")
            events[name.strip()] = {"offering": offering, "milestone": milestone}
    return {"customer_id": post.get("customer_id", "userId"), "events": events}


def _page(request, connection, *, secret=None, errors=None, status=200):
    outcome = request.GET.get("outcome", "")
    log = Arrival.objects.filter(connection=connection)
    if outcome in Outcome.values:
        log = log.filter(outcome=outcome)
    context = {
        "connection": connection, "url": services.address(connection), "secret": secret,
        "errors": errors or {}, "log": log[:LOG_LINES], "outcome": outcome, "outcomes": Outcome.choices,
        "offerings": Offering.objects.order_by("name"), "rows": _rows(connection),
        "milestones": Milestone.objects.select_related("offering").order_by("offering__name", "order"),
        "kept_days": services.KEEP_ARRIVALS // timedelta(days=1),
    }  # fmt: skip
    response = render(request, "intake/connection.html", context, status=status)
    if secret:
        add_never_cache_headers(response)  # no copy of the write key in a browser or proxy cache
    return response


def _rows(connection):
    """The mapping's rows for the form, and a few blank ones to add to it."""
    mapping = connection.mapping
    if connection.kind == Kind.STRIPE:
        rows = [{"key": k, "value": v} for k, v in mapping.get("prices", {}).items()]
    elif connection.kind == Kind.SEGMENT:
        rows = [{"key": k, "value": f"{v['offering']} {v['milestone']}"} for k, v in mapping.get("events", {}).items()]
    else:
        return []
    return rows + [{"key": "", "value": ""}] * EMPTY_ROWS


@admin_only
@require_POST
def connection_secret(request, slug, connection_id):
    """Stripe and HubSpot: the pasted secret. An analytics source: a new write key, shown once."""
    connection = _connection(connection_id)
    actor = web_actor(request)
    if connection.kind == Kind.SEGMENT:
        secret = services.connection_new_write_key(tenant=request.tenant, connection=connection, actor=actor)
        return _page(request, connection, secret=secret)
    try:
        services.connection_update(tenant=request.tenant, connection=connection, actor=actor,
                                   secret=request.POST.get("secret", ""))  # fmt: skip
    except Invalid as exc:
        return _page(request, connection, errors=exc.detail, status=400)
    messages.success(
        request, "Secret saved." if connection.secret else "Secret removed: nothing is accepted until one is set."
    )
    return redirect("connection", slug, connection.pk)


@admin_only
@require_POST
def connection_switch(request, slug, connection_id):
    connection = _connection(connection_id)
    enabled = request.POST.get("enabled") == "on"
    services.connection_update(tenant=request.tenant, connection=connection, actor=web_actor(request), enabled=enabled)
    messages.success(
        request, "Switched on." if enabled else "Switched off: what the vendor sends is refused, so it retries later."
    )
    return redirect("connection", slug, connection.pk)


@admin_only
@require_POST
def connection_test(request, slug, connection_id):
    connection = _connection(connection_id)
    result = trial.send_test(connection)
    (messages.success if result.outcome == Outcome.ACCEPTED else messages.error)(request, result.summary)
    return redirect("connection", slug, connection.pk)


@admin_only
@require_http_methods(["GET", "HEAD", "POST"])
def connection_delete(request, slug, connection_id):
    """GET asks for confirmation; POST deletes."""
    connection = _connection(connection_id)
    if request.method != "POST":
        return render(request, "intake/delete.html", {"connection": connection})
    services.connection_delete(tenant=request.tenant, connection=connection, actor=web_actor(request))
    messages.success(request, f"Deleted the connection {connection.name}.")
    return redirect("connections", slug)


# Under /t/<slug>/ (intake/urls.py).
tenant_urlpatterns = [
    path("settings/connections/", connection_list, name="connections"),
    path("settings/connections/new/", connection_create, name="connection-create"),
    path("settings/connections/chat/", chat_create, name="chat-create"),
    path("settings/connections/<uuid:connection_id>/", connection_detail, name="connection"),
    path("settings/connections/<uuid:connection_id>/secret/", connection_secret, name="connection-secret"),
    path("settings/connections/<uuid:connection_id>/switch/", connection_switch, name="connection-switch"),
    path("settings/connections/<uuid:connection_id>/test/", connection_test, name="connection-test"),
    path("settings/connections/<uuid:connection_id>/delete/", connection_delete, name="connection-delete"),
]
