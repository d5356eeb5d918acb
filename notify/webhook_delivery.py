"""Sending webhook deliveries: sign, POST, log the attempt, back off, and disable an endpoint that has
been failing for 24 h (telling its admins).

Each due delivery is claimed with a conditional UPDATE before its POST (healthchecks style), so two
workers never send the same one at once; a worker that dies mid-POST frees it after CLAIM_TIMEOUT.
Receivers deduplicate on the delivery id, which every retry keeps.
"""

import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import smtplib
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.mail import get_connection
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from notify import chat
from notify.mail import absolute, email_from_templates
from notify.models import EndpointFormat, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from notify.webhooks import CLAIM_TIMEOUT, RETRY_WINDOW, endpoint_disable, shown_url
from tenants.actors import Actor
from tenants.models import Member, Role, Tenant
from tenants.scoping import tenant_scope

log = logging.getLogger(__name__)

USER_AGENT = "PoV-Webhooks/1.0"
DEADLINE_SECONDS = 10  # for one attempt's whole exchange: connect, send, the answer's status, headers and excerpt
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
EXCERPT_CHARS = 500
BATCH_SIZE = 50
# A run starts no new attempt after this long, and asks for another run instead: with every attempt under
# DEADLINE_SECONDS a run ends within RUN_SECONDS + DEADLINE_SECONDS, well inside its task's time limit.
RUN_SECONDS = 60


# Signing ------------------------------------------------------------------------------------------


def body_of(tenant: Tenant, delivery: WebhookDelivery) -> bytes:
    """The JSON body, compact; the same bytes on every retry (the receiver deduplicates on `id`)."""
    document = {
        "id": str(delivery.id),
        "type": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "tenant": tenant.slug,
        "data": delivery.payload.get("data", {}),
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def headers_for(secret: str, delivery: WebhookDelivery, body: bytes) -> dict[str, str]:
    """PoV-Signature: hex HMAC-SHA256 keyed with the whole secret, over "<unix seconds>.<body bytes>"."""
    t = int(time.time())  # the real clock, even when a test drives `now`: receivers compare t with theirs
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "PoV-Event-Id": str(delivery.id),
        "PoV-Event-Type": delivery.event,
        "PoV-Signature": f"t={t},v1={signature}",
    }


# One HTTP POST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int | None
    latency_ms: int
    excerpt: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


# What the tenant reads when a destination is refused. One reason for a name that does not resolve and a
# name of our own network, so the delivery log cannot be used to tell which internal names exist.
NOT_PUBLIC = "Refused: the address is not on the public internet, or its name does not resolve."


def refused_destination(url: str) -> str:
    """Why `url` must not be called, or "": an admin's endpoint must not reach our own network
    (loopback, private, link-local such as cloud metadata) unless WEBHOOKS_ALLOW_PRIVATE_NETWORKS.
    The name is resolved again by the request; the window between the two lookups is accepted.
    The details (which addresses, which lookup error) go to the server's log only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):  # checked at creation too; never open file:// etc.
        return f"Refused to send to {parts.scheme!r} URLs."
    if settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS:
        return ""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except (OSError, UnicodeError) as exc:
        log.warning("webhook destination %s refused: cannot resolve it (%s)", parts.hostname, exc)
        return NOT_PUBLIC
    private = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_global)
    if private:
        log.warning("webhook destination %s refused: non-public addresses %s", parts.hostname, ", ".join(private))
        return NOT_PUBLIC
    return ""


def post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST within DEADLINE_SECONDS for the whole exchange. A socket timeout alone bounds each read, so a
    receiver sending a byte every few seconds held a worker for ten minutes; the watchdog closes the
    connection when the deadline passes, whatever it is waiting for. A 3xx is a failure, never followed:
    it could send the signed event elsewhere."""
    if refusal := refused_destination(url):
        return Outcome(None, 0, error=refusal)
    parts = urlsplit(url)
    kind = HTTPSConnection if parts.scheme == "https" else HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=DEADLINE_SECONDS)
    cut = threading.Event()
    watchdog = threading.Timer(DEADLINE_SECONDS, _cut, args=(connection, cut))
    started = time.monotonic()
    watchdog.start()
    status, excerpt, error = None, "", ""
    try:
        connection.request("POST", urlunsplit(("", "", parts.path or "/", parts.query, "")), body, headers)
        response = connection.getresponse()
        status, excerpt = response.status, _excerpt(response)
        if 300 <= status < 400:
            error = f"Redirect to {response.getheader('Location', '?')} not followed."
    except (OSError, HTTPException, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        watchdog.cancel()
        connection.close()
    if cut.is_set():  # even with a status read in time: the exchange as a whole was too slow
        status, excerpt, error = None, "", f"No complete answer within {DEADLINE_SECONDS} s."
    latency = int((time.monotonic() - started) * 1000)
    return Outcome(status, latency, excerpt[:EXCERPT_CHARS], error[:EXCERPT_CHARS])


def _cut(connection: HTTPConnection, cut: threading.Event) -> None:
    """Unblock whatever the request waits for: shutting the socket down ends a pending connect or read."""
    cut.set()
    if connection.sock is not None:
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RDWR)


def _excerpt(response: Any) -> str:
    try:
        return response.read(EXCERPT_CHARS * 4).decode("utf-8", "replace")[:EXCERPT_CHARS]
    except (OSError, HTTPException, ValueError):
        return ""


# Delivering ---------------------------------------------------------------------------------------


def due(now: datetime) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(
        delivered_at__isnull=True, given_up_at__isnull=True, next_attempt_at__lte=now, endpoint__is_active=True
    )


def backoff(attempts: int) -> timedelta:
    """After the n-th failed attempt: 30 s · 2^(n−1), at most 1 h, less up to 20 % of jitter so the
    retries of one outage do not arrive together."""
    base = min(FIRST_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)
    return base * random.uniform(0.8, 1.0)


def deliver_due(tenant: Tenant, *, now: datetime | None = None, limit: int = BATCH_SIZE) -> dict[str, int]:
    """Send the tenant's due deliveries, oldest first. `now` (tests) fixes the clock; otherwise each
    attempt reads it. Returns counts by result, and `more` when another run should follow at once."""
    counts: Counter[str] = Counter()
    failing: set[uuid.UUID] = set()
    recovered = False
    pending = due(now or timezone.now()).filter(tenant=tenant).select_related("endpoint")
    batch = list(pending.order_by("next_attempt_at")[:limit])
    ends = time.monotonic() + RUN_SECONDS
    for delivery in batch:
        if time.monotonic() > ends:
            return {**counts, "more": True}
        if delivery.endpoint_id in failing:  # its receiver just failed: see _hold_back
            counts["deferred"] += 1
            continue
        result = deliver_one(tenant, delivery, now=now or timezone.now())
        recovered |= result == "recovered"  # its held-back queue is due now
        counts["delivered" if result == "recovered" else result] += 1
        if result in ("failed", "given_up"):
            failing.add(delivery.endpoint_id)
    return {**counts, "more": len(batch) == limit or recovered}


def claim(delivery: WebhookDelivery, now: datetime) -> bool:
    """Conditional UPDATE on the next_attempt_at we read: exactly one worker wins it. The claim moves
    next_attempt_at past CLAIM_TIMEOUT, so a worker that dies mid-POST leaves it due again later."""
    won = WebhookDelivery.objects.filter(
        pk=delivery.pk, delivered_at=None, given_up_at=None, next_attempt_at=delivery.next_attempt_at,
        endpoint__is_active=True,
    ).update(claimed_at=now, next_attempt_at=now + CLAIM_TIMEOUT)  # fmt: skip
    return won == 1


def deliver_one(tenant: Tenant, delivery: WebhookDelivery, *, now: datetime) -> str:
    """Claim, POST, log. Returns "delivered", "recovered" (delivered by an endpoint that was failing),
    "failed" (a retry is scheduled), "given_up" or "skipped" (another worker has it)."""
    if not claim(delivery, now):
        return "skipped"
    endpoint = delivery.endpoint
    if endpoint.format == EndpointFormat.CHAT:
        body = chat.message_body(delivery)
        outcome = post(endpoint.url, body, {"Content-Type": "application/json", "User-Agent": USER_AGENT})
    else:
        body = body_of(tenant, delivery)
        outcome = post(endpoint.url, body, headers_for(endpoint.secret, delivery, body))
    with transaction.atomic():
        WebhookAttempt.objects.create(
            tenant=tenant, delivery=delivery, at=now, status=outcome.status, latency_ms=outcome.latency_ms,
            response_excerpt=outcome.excerpt, error=outcome.error,
        )  # fmt: skip
        result = _succeeded(delivery, now) if outcome.ok else _failed(delivery, now)
    if result in ("failed", "given_up"):
        _disable_if_failing_too_long(tenant, endpoint, now)
    return result


def _mine(delivery: WebhookDelivery, now: datetime) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(pk=delivery.pk, claimed_at=now)


def _others_waiting(delivery: WebhookDelivery, now: datetime) -> QuerySet[WebhookDelivery]:
    """The endpoint's other undelivered deliveries that no worker is posting right now."""
    return (
        WebhookDelivery.objects.filter(endpoint_id=delivery.endpoint_id, delivered_at=None, given_up_at=None)
        .exclude(pk=delivery.pk)
        .exclude(claimed_at__gt=now - CLAIM_TIMEOUT)
    )


def _succeeded(delivery: WebhookDelivery, now: datetime) -> str:
    _mine(delivery, now).update(attempts=delivery.attempts + 1, delivered_at=now, next_attempt_at=None)
    recovered = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, failing_since__isnull=False)
    if not recovered.update(failing_since=None):
        return "delivered"
    # The receiver is back: what _hold_back kept waiting goes out now instead of at its retry time.
    _others_waiting(delivery, now).filter(next_attempt_at__gt=now).update(next_attempt_at=now)
    return "recovered"


def _failed(delivery: WebhookDelivery, now: datetime) -> str:
    attempts = delivery.attempts + 1
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, failing_since__isnull=True).update(failing_since=now)
    deadline = delivery.created_at + RETRY_WINDOW
    if now >= deadline:
        _mine(delivery, now).update(attempts=attempts, given_up_at=now, next_attempt_at=None)
        return "given_up"
    # The last retry lands on the deadline itself, so the window is used to its end.
    retry_at = min(now + backoff(attempts), deadline)
    _mine(delivery, now).update(attempts=attempts, next_attempt_at=retry_at)
    _hold_back(delivery, now, retry_at)
    return "failed"


def _hold_back(delivery: WebhookDelivery, now: datetime, retry_at: datetime) -> None:
    """A receiver that just failed gets nothing else before this delivery's retry: one probe per backoff
    instead of a timeout per queued delivery, and its queue does not crowd out other endpoints'."""
    others = _others_waiting(delivery, now)
    others.filter(created_at__lte=now - RETRY_WINDOW).update(given_up_at=now, next_attempt_at=None)
    others.filter(given_up_at=None, next_attempt_at__lt=retry_at).update(next_attempt_at=retry_at)


def _disable_if_failing_too_long(tenant: Tenant, endpoint: WebhookEndpoint, now: datetime) -> bool:
    reason = f"Every delivery failed for {RETRY_WINDOW.total_seconds() / 3600:.0f} hours."
    disabled = endpoint_disable(
        tenant=tenant, endpoint=endpoint, actor=Actor.system("webhook health check"), reason=reason, now=now,
        failing_before=now - RETRY_WINDOW,
    )  # fmt: skip
    if disabled:
        notify_admins_disabled(tenant, endpoint)
    return disabled


def notify_admins_disabled(tenant: Tenant, endpoint: WebhookEndpoint) -> int:
    """One email per admin. Sent after the disabling UPDATE committed (it is the claim): told once."""
    admins = Member.objects.filter(tenant=tenant, role=Role.ADMIN, is_active=True).select_related("user")
    link = absolute("webhook-endpoint", tenant.slug, endpoint.pk)
    context = {
        "tenant": tenant, "endpoint": endpoint, "link": link, "host": urlsplit(endpoint.url).hostname,
        "shown_url": shown_url(endpoint),  # a chat channel's address is its key: only its host
    }  # fmt: skip
    emails = [
        email_from_templates("notify/webhooks/endpoint_disabled", context, tenant=tenant, to=[admin.user.email])
        for admin in admins
    ]
    try:
        return get_connection().send_messages(emails) or 0
    except (smtplib.SMTPException, OSError):
        # The endpoint stays disabled and says why on its settings page; the log keeps the failure.
        log.exception("could not tell the admins of %s that webhook endpoint %s was disabled", tenant.slug, endpoint.pk)
        return 0


def tenants_with_due_deliveries(now: datetime | None = None) -> list[Tenant]:
    """Beat, across tenants: tenants with a delivery due on an active endpoint.

    Asks each tenant in its own scope (row-level security shows a query one tenant's rows only);
    the deliveries themselves are read by each tenant's task."""
    now = now or timezone.now()
    with_due = []
    for tenant in Tenant.objects.order_by("slug"):
        with tenant_scope(tenant):
            if due(now).exists():
                with_due.append(tenant)
    return with_due
