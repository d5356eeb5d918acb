"""Outbound webhooks: an admin's endpoints, and the fan-out of the record's events into deliveries
(notify.webhook_delivery signs and sends them, with retries for up to RETRY_WINDOW)."""

import secrets
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from engagement import outbox
from engagement.models import Engagement, Event, EventType, OutboxMessage, Status
from metrics.alerts import ALERT_ASSIGNED, ALERT_OPENED, ALERT_RESOLVED
from metrics.forecast import AT_RISK
from metrics.models import Alert
from notify.mail import absolute
from notify.models import (
    CHAT_EVENTS,
    WEBHOOK_URL_MAX_LENGTH,
    EndpointFormat,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from pov.enqueue import enqueue_on_commit
from tenants.actors import Actor, audit
from tenants.models import Tenant

EVENT_KINDS = (
    outbox.REACHED_POV, outbox.STALLED, outbox.LOST, outbox.REOPENED, AT_RISK, ALERT_OPENED, ALERT_RESOLVED,
    ALERT_ASSIGNED,
)  # fmt: skip
TEST_EVENT = "webhook.test"  # sent by the "Send a test event" button; no endpoint subscribes to it
SECRET_PREFIX = "whsec_"
MAX_ENDPOINTS = 20
NAME_MAX_LENGTH = 100
# A delivery is retried until this long after its event; an endpoint failing this long is disabled.
RETRY_WINDOW = timedelta(hours=24)
# Longer than a POST can take (10 s timeout), so a claim only expires when its worker died mid-POST.
CLAIM_TIMEOUT = timedelta(minutes=2)


def register() -> None:
    for kind in EVENT_KINDS:
        outbox.register(kind, fan_out, batch=True)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def request_delivery(tenant: Tenant) -> None:
    from notify.webhook_tasks import deliver_webhooks  # the tasks import this module

    enqueue_on_commit(deliver_webhooks, tenant_id=str(tenant.pk))


# Endpoints ----------------------------------------------------------------------------------------


def _url_error(url: str) -> str | None:
    if not url:
        return "Enter the URL that should receive the events."
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "The URL must start with https:// (or http://); no other scheme is sent to."
    if parts.username or parts.password:
        return "Leave credentials out of the URL: receivers verify the PoV-Signature header instead."
    if len(url) > WEBHOOK_URL_MAX_LENGTH:
        return f"The URL is too long ({WEBHOOK_URL_MAX_LENGTH} characters at most)."
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        return "Enter a valid URL, e.g. https://example.com/hooks/pov."
    return None


def _clean(url: str | None, events: Iterable[str] | None, format: str) -> tuple[str, list[str]]:
    errors = {}
    url = (url or "").strip()
    if url_error := _url_error(url):
        errors["url"] = [url_error]
    asked = set(events or ())
    offered = CHAT_EVENTS if format == EndpointFormat.CHAT else WebhookEvent.values
    unknown = sorted(asked - set(offered))
    chosen = [value for value in offered if value in asked]  # in the documented order
    if unknown:
        errors["events"] = [f"Unknown events: {', '.join(unknown)}."]
    elif not chosen:
        errors["events"] = ["Pick at least one event."]
    if errors:
        raise ValidationError(errors)
    return url, chosen


def endpoint_create(
    *, tenant: Tenant, url: str | None, events: Iterable[str] | None, actor: Actor,
    format: str = EndpointFormat.SIGNED_JSON, name: str = "",
) -> tuple[WebhookEndpoint, str]:  # fmt: skip
    """A new endpoint; returns (endpoint, secret). The secret is shown to the admin once, on this response.
    A chat channel (format CHAT) gets messages to read instead of signed JSON, and hears only CHAT_EVENTS."""
    if format not in EndpointFormat.values:
        raise ValidationError({"format": [f"One of: {', '.join(EndpointFormat.values)}."]})
    url, events = _clean(url, events, format)
    if len(name or "") > NAME_MAX_LENGTH:
        raise ValidationError({"name": [f"At most {NAME_MAX_LENGTH} characters."]})
    with transaction.atomic():
        if WebhookEndpoint.objects.filter(tenant=tenant).count() >= MAX_ENDPOINTS:
            raise ValidationError({"url": [f"A company has at most {MAX_ENDPOINTS} endpoints; delete one first."]})
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant, url=url, events=events, secret=new_secret(), format=format, name=(name or "").strip()
        )
        audit(tenant=tenant, actor=actor, action="webhook.created", target=endpoint, url=shown_url(endpoint),
              events=events)  # fmt: skip
    return endpoint, endpoint.secret


def endpoint_update(
    *, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor, url: str | None = None,
    events: Iterable[str] | None = None, name: str | None = None,
) -> WebhookEndpoint:  # fmt: skip
    """Change what is given: the URL, the events heard, a chat channel's name."""
    url, events = _clean(endpoint.url if url is None else url, endpoint.events if events is None else events,
                         endpoint.format)  # fmt: skip
    name = endpoint.name if name is None else name.strip()
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": [f"At most {NAME_MAX_LENGTH} characters."]})
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint.pk, tenant=tenant).update(url=url, events=events, name=name)
        endpoint.url, endpoint.events, endpoint.name = url, events, name
        audit(tenant=tenant, actor=actor, action="webhook.changed", target=endpoint, url=shown_url(endpoint),
              events=events)  # fmt: skip
    return endpoint


def shown_url(endpoint: WebhookEndpoint) -> str:
    """What pages and the audit log show of the URL: a chat URL carries its key in the path, so only its host."""
    if endpoint.format == EndpointFormat.CHAT:
        return f"{urlsplit(endpoint.url).scheme}://{urlsplit(endpoint.url).netloc}/…"
    return endpoint.url


def endpoint_rotate_secret(*, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor) -> str:
    """A new secret for the next attempts; returns it (shown once). The old one stops signing at once."""
    secret = new_secret()
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint.pk, tenant=tenant).update(secret=secret)
        audit(tenant=tenant, actor=actor, action="webhook.secret_rotated", target=endpoint, url=shown_url(endpoint))
    endpoint.secret = secret
    return secret


def endpoint_disable(
    *, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor, reason: str = "", now: datetime | None = None,
    failing_before: datetime | None = None,
) -> bool:  # fmt: skip
    """Stop sending to the endpoint; True if this call disabled it. Its pending deliveries are paused,
    not given up: enabling it again within their 24 h window sends them.

    With `failing_before`, only an endpoint failing since before then is disabled (the health check):
    the conditional UPDATE is the claim, so its admins are told once."""
    now = now or timezone.now()
    reason = (reason or f"Disabled by {actor.label}.")[:255]
    active = WebhookEndpoint.objects.filter(pk=endpoint.pk, tenant=tenant, is_active=True)
    if failing_before is not None:
        active = active.filter(failing_since__lte=failing_before)
    with transaction.atomic():
        disabled = active.update(is_active=False, disabled_at=now, disabled_reason=reason) == 1
        if disabled:
            audit(tenant=tenant, actor=actor, action="webhook.disabled", target=endpoint, url=shown_url(endpoint),
                  reason=reason)  # fmt: skip
    endpoint.refresh_from_db()
    return disabled


def endpoint_enable(*, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor, now: datetime | None = None) -> bool:
    """Send again. Paused deliveries still inside their 24 h window go out at once; older ones are given up."""
    now = now or timezone.now()
    with transaction.atomic():
        enabled = WebhookEndpoint.objects.filter(pk=endpoint.pk, tenant=tenant, is_active=False).update(
            is_active=True, disabled_at=None, disabled_reason="", failing_since=None
        )
        if enabled:
            paused = WebhookDelivery.objects.filter(endpoint=endpoint, delivered_at=None, given_up_at=None)
            paused.filter(created_at__lte=now - RETRY_WINDOW).update(given_up_at=now, next_attempt_at=None)
            # Not one a worker is still posting (claimed moments ago): that would send it twice.
            paused.filter(next_attempt_at__gt=now).exclude(claimed_at__gt=now - CLAIM_TIMEOUT).update(
                next_attempt_at=now
            )
            audit(tenant=tenant, actor=actor, action="webhook.enabled", target=endpoint, url=shown_url(endpoint))
            request_delivery(tenant)
    endpoint.refresh_from_db()
    return bool(enabled)


def endpoint_delete(*, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor) -> None:
    """Delete the endpoint with its deliveries and their log."""
    with transaction.atomic():
        audit(tenant=tenant, actor=actor, action="webhook.deleted", target=endpoint, url=shown_url(endpoint))
        WebhookEndpoint.objects.filter(pk=endpoint.pk, tenant=tenant).delete()


def endpoint_send_test(*, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor) -> WebhookDelivery:
    """Queue a `webhook.test` delivery, signed and logged like any other."""
    if not endpoint.is_active:
        raise ValidationError("Enable the endpoint before sending it a test event.")
    data = {"message": "A test event from PoV.", "sent_by": actor.label, "endpoint": str(endpoint.pk)}
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            tenant=tenant, endpoint=endpoint, event=TEST_EVENT, payload={"data": data}, next_attempt_at=timezone.now()
        )
        request_delivery(tenant)
    return delivery


# Fan-out ------------------------------------------------------------------------------------------


# Deliveries are built and inserted this many subjects at a time, so a drained batch of long lists
# holds a bounded number of rows in memory.
FAN_OUT_SLICE = 1000

Key = tuple[int, int]  # (outbox message id, the subject's position in its list)
Subscribers = dict[str, list[uuid.UUID]]  # {kind: ids of the active endpoints subscribed to it}
Done = set[tuple[int, int, uuid.UUID]]  # (message id, position, endpoint id) of the deliveries made


def fan_out(tenant: Tenant, messages: list[OutboxMessage]) -> int:
    """Outbox batch handler: one delivery per (subject of a message, subscribed active endpoint), with one
    INSERT per FAN_OUT_SLICE subjects (a message may list many engagements or alerts: outbox.subjects).

    Idempotent: a delivery keeps its outbox message id and the subject's position in the message's list in
    its payload (never sent: the id is sequential), so a message handled again (a drain that died before
    marking it handled) adds nothing."""
    subscribers = _subscribers(tenant)
    wanted = [m for m in messages if subscribers.get(m.kind)]
    if not wanted:
        return 0
    done = _fanned_out(tenant, wanted)
    todo = [((m.id, position), m.kind, subject) for m in wanted for position, subject in enumerate(outbox.subjects(m))]
    created = 0
    for start in range(0, len(todo), FAN_OUT_SLICE):
        created += _insert_deliveries(tenant, todo[start : start + FAN_OUT_SLICE], subscribers, done)
    if created:
        request_delivery(tenant)
    return created


def _subscribers(tenant: Tenant) -> Subscribers:
    subscribers: Subscribers = defaultdict(list)
    active = WebhookEndpoint.objects.filter(tenant=tenant, is_active=True)
    for endpoint_id, events in active.values_list("id", "events"):
        for kind in events:
            subscribers[kind].append(endpoint_id)
    return subscribers


def _fanned_out(tenant: Tenant, messages: list[OutboxMessage]) -> Done:
    """{(message id, position, endpoint id)} already delivered or queued. A delivery from before messages
    listed their subjects has no position: its message named one subject, at position 0."""
    stored = WebhookDelivery.objects.filter(tenant=tenant, payload__outbox__in=[m.id for m in messages])
    rows = stored.values_list("payload__outbox", "payload__item", "endpoint_id")
    return {(message_id, item or 0, endpoint_id) for message_id, item, endpoint_id in rows}


def _insert_deliveries(tenant: Tenant, todo: list[tuple[Key, str, dict]], subscribers: Subscribers, done: Done) -> int:
    data = event_data(tenant, [(key, subject) for key, _, subject in todo])
    at = timezone.now()
    rows = [
        WebhookDelivery(tenant=tenant, endpoint_id=eid, event=kind, payload=_stored(key, data[key]), next_attempt_at=at)
        for key, kind, _ in todo
        if key in data  # an engagement or alert deleted since has nothing left to tell
        for eid in subscribers[kind]
        if (*key, eid) not in done
    ]
    WebhookDelivery.objects.bulk_create(rows)
    return len(rows)


def _stored(key: Key, data: dict) -> dict:
    message_id, position = key
    return {"outbox": message_id, "item": position, "data": data}


ENGAGEMENT_FIELDS = (
    "id", "status", "purchase__external_id", "customer__external_id", "customer__name", "offering__key", "pos_at",
    "next_step", "next_due_at", "pov_at", "days_to_value", "calendar_days_to_value", "lost_at",
    "forecast__reach_by_target", "forecast__expected_pov_day", "forecast__at_risk", "owner__user__email",
    "paused_days", "paused_since",
)  # fmt: skip
ALERT_FIELDS = ("id", "step", "state", "due_at", "opened_at", "resolved_at", "resolution")
DAY = timedelta(days=1)


def event_data(tenant: Tenant, subjects: list[tuple[Key, dict]]) -> dict[Key, dict]:
    """{key: the event's `data`} for (key, subject) pairs, a subject being a one-subject payload
    (outbox.subjects), read with one query per kind of subject (engagements, alerts, loss reasons)
    however many there are."""
    engagement_ids = {s["engagement"] for _, s in subjects if s.get("engagement")}
    alert_ids = {s["alert"] for _, s in subjects if s.get("alert")}
    engagements: dict[str, dict] = {}
    if engagement_ids:
        rows = Engagement.objects.filter(tenant=tenant, id__in=engagement_ids).values(*ENGAGEMENT_FIELDS)
        reasons = _loss_reasons(tenant, [r["id"] for r in rows if r["status"] == Status.LOST])
        engagements = {str(r["id"]): _engagement_json(tenant, r, reasons=reasons) for r in rows}
    alerts: dict[str, dict] = {}
    if alert_ids:
        fields = (*ALERT_FIELDS, "assignee__user__email", *(f"engagement__{f}" for f in ENGAGEMENT_FIELDS))
        for row in Alert.objects.filter(tenant=tenant, id__in=alert_ids).values(*fields):
            alerts[str(row["id"])] = {
                "alert": {
                    **{f: _json(row[f]) for f in ALERT_FIELDS},
                    "assignee": row["assignee__user__email"],
                    "url": absolute("alerts", tenant.slug),
                },
                "engagement": _engagement_json(tenant, row, prefix="engagement__"),
            }
    data: dict[Key, dict] = {}
    for key, subject in subjects:
        if subject.get("engagement") in engagements:
            transition = {"from": subject.get("from"), "to": subject.get("to")}
            data[key] = {"engagement": engagements[subject["engagement"]], "transition": transition}
        elif subject.get("alert") in alerts:
            data[key] = alerts[subject["alert"]]
    return data


def _loss_reasons(tenant: Tenant, engagement_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not engagement_ids:
        return {}
    lost = Event.objects.filter(tenant=tenant, engagement_id__in=engagement_ids, type=EventType.LOST)
    # Newest first, so the dict keeps the earliest loss: the one that set lost_at.
    return dict(lost.order_by("-occurred_at").values_list("engagement_id", "reason"))


def _engagement_json(
    tenant: Tenant, row: dict[str, Any], *, prefix: str = "", reasons: dict[uuid.UUID, str] | None = None
) -> dict[str, Any]:
    """The same shape in every event, with null for what does not apply yet (pov_at before PoV...)."""

    def get(field: str) -> Any:
        return _json(row[prefix + field])

    engagement_id = row[prefix + "id"]
    return {
        "id": str(engagement_id),
        "url": absolute("engagement", tenant.slug, engagement_id),
        "status": get("status"),
        "purchase": {"external_id": get("purchase__external_id"), "purchased_at": get("pos_at")},
        "customer": {"external_id": get("customer__external_id"), "name": get("customer__name")},
        "offering": get("offering__key"),
        "owner": get("owner__user__email"),
        "value_clock_day": _value_clock_day(row, prefix),
        "next_step": get("next_step") or None,
        "next_due_at": get("next_due_at"),
        "pov_at": get("pov_at"),
        "days_to_value": get("days_to_value"),
        "calendar_days_to_value": get("calendar_days_to_value"),
        "lost_at": get("lost_at"),
        "lost_reason": (reasons or {}).get(engagement_id) or None,
        "forecast": None  # an engagement that ended, or one not forecast yet
        if get("forecast__at_risk") is None
        else {name: get(f"forecast__{name}") for name in ("reach_by_target", "expected_pov_day", "at_risk")},
    }


def _value_clock_day(row: dict[str, Any], prefix: str) -> int:
    """The day of the value clock now: days since the purchase, paused days not counted (docs/metrics.md)."""
    now, paused_since = timezone.now(), row[prefix + "paused_since"]
    paused = row[prefix + "paused_days"] + ((now - paused_since) / DAY if paused_since else 0)
    return max(0, int((now - row[prefix + "pos_at"]) / DAY - paused))


def _json(value: Any) -> Any:
    if value == "":
        return None  # an unset text field reads as null, like an unset date
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is not None and not isinstance(value, str | int | float | bool):
        return str(value)  # UUIDs
    return value
