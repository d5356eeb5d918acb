"""The addresses vendors send to: `/in/<company>/<connection id>` (Stripe, HubSpot) and, for an analytics
source, `/in/<company>/<connection id>/v1/<call>`. No login: the vendor's signature or the write key is
checked against the connection's secret, inside the company's scope, before anything is recorded. Each
request to a connection leaves one line in its log, except those over the rate limit (API_RATE_LIMIT per
connection, as per API key)."""

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from intake import from_hubspot, from_segment, from_stripe, services
from intake.models import Connection, Kind, Outcome
from intake.recording import Refused, Result
from tenants.api_base import seconds_over_limit
from tenants.models import Tenant
from tenants.scoping import tenant_scope

BODY_MAX_BYTES = 1024 * 1024  # Stripe's and HubSpot's bodies are a few KB; Segment's limit is lower still


def _not_found() -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)


@csrf_exempt
@require_POST
def receive(request: HttpRequest, slug: str, connection_id: str, call: str | None = None) -> JsonResponse:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        return _not_found()
    with tenant_scope(tenant):
        connection = Connection.objects.filter(pk=connection_id).first()
        segment = connection is not None and connection.kind == Kind.SEGMENT
        if connection is None or segment != (call is not None) or (segment and call not in from_segment.CALLS):
            return _not_found()
        connection.tenant = tenant
        wait = seconds_over_limit(tenant.pk, f"connection:{connection.pk}")
        if wait is not None:  # not logged: a flood would fill the log
            response = _answer(connection, 429, f"Too many requests; try again in {wait} seconds.")
            response["Retry-After"] = str(wait)
            return response
        try:
            result = _receive(request, connection, call)
        except Refused as exc:
            services.arrival_log(tenant=tenant, connection=connection, outcome=Outcome.REJECTED, summary=exc.message)
            return _answer(connection, exc.status, exc.message)
        services.arrival_log(tenant=tenant, connection=connection, outcome=result.outcome, summary=result.summary,
                             vendor_id=result.vendor_id)  # fmt: skip
    return _answer(connection, 200, result.summary, result.outcome)


def _receive(request: HttpRequest, connection: Connection, call: str | None) -> Result:
    if not connection.enabled:
        raise Refused("This connection is switched off in PoV; the sender may retry later.", 503)
    length = request.headers.get("Content-Length") or "0"
    if not (length.isascii() and length.isdecimal()) or int(length) > BODY_MAX_BYTES:
        raise Refused(f"The body is over {BODY_MAX_BYTES // 1024} KB.", 413)
    if connection.kind == Kind.STRIPE:
        event = from_stripe.verified_event(connection, request.body, request.headers.get("Stripe-Signature"))
        return from_stripe.handle(connection, event)
    if connection.kind == Kind.HUBSPOT:
        # HubSpot signs the address it was given: the connection's, from SITE_URL (behind any proxy).
        uri = settings.SITE_URL.rstrip("/") + request.get_full_path()
        deal = from_hubspot.verified_deal(connection, request.body, request.headers, uri)
        return from_hubspot.handle(connection, deal)
    body = from_segment.read_body(request.body, request.headers.get("Content-Encoding", ""))
    data = from_segment.verified_body(connection, body, request.headers.get("Authorization", ""))
    return from_segment.handle(connection, call or "", data)


def _answer(connection: Connection, status: int, message: str, outcome: str | None = None) -> JsonResponse:
    """Segment's clients read `{"success": ...}`; the others get what happened, for their delivery logs.
    A rejected item is still a 200: sending it again would not change the answer."""
    if connection.kind == Kind.SEGMENT:  # Segment's clients show an error's `code` and `message`
        body = {"success": status == 200} | ({} if status == 200 else {"code": f"http_{status}", "message": message})
    else:
        body = {"outcome": outcome, "summary": message} if status == 200 else {"detail": message}
    return JsonResponse(body, status=status)


public_urlpatterns = [
    path("in/<slug:slug>/<uuid:connection_id>", receive, name="connection-receive"),
    path("in/<slug:slug>/<uuid:connection_id>/v1/<str:call>", receive, name="connection-receive-call"),
]
