"""What every connection does with what it understood: a body in the API's own shape, cleaned by the
API's cleaners and recorded by the same services (idempotent, clock rules, owner rules, outbox)."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engagement import cleaners, intake
from engagement.errors import Conflict, Invalid, Missing
from engagement.models import OPEN_STATUSES, Engagement
from intake.models import Connection, Outcome
from tenants.actors import Actor


@dataclass(frozen=True)
class Result:
    """What became of one thing a vendor sent: the line its connection's log shows."""

    outcome: Outcome
    summary: str
    vendor_id: str = ""


class Refused(Exception):
    """The whole request is refused (a bad signature or write key, an unreadable or oversized body)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


def actor_for(connection: Connection) -> Actor:
    return Actor(label=f"{connection.get_kind_display()} connection {connection.name!r}", source=connection.kind)


def describe(exc: Exception) -> str:
    """The error in the words the API would answer with, on one line."""
    if isinstance(exc, Invalid):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.detail.items())
    return getattr(exc, "message", str(exc))


def dig(value: Any, *path: str) -> Any:
    """value[path[0]][path[1]]..., or None where a step is missing or not an object."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def criteria(text: Any) -> list[str]:
    """Success criteria a vendor's text field carries (one a line or separated by semicolons), cut to fit;
    none when it carries no text."""
    return cleaners.criteria_that_fit(cleaners.criteria_in_text(text)) if isinstance(text, str) else []


def object_at(value: Any, *path: str) -> dict:
    """The object at `path` (see dig), or {} where there is none: what a vendor sent may put text there."""
    found = dig(value, *path)
    return found if isinstance(found, dict) else {}


def iso_time(seconds: Any) -> str:
    """Seconds since 1970 (an int or float, not a bool) as ISO 8601 in UTC; "" for anything else, which the
    cleaner then refuses naming the field."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return ""
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return ""


def read_json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):  # RecursionError: nesting too deep for the parser
        raise Refused("The body is not JSON (or nests too deeply).") from None


def ignored(summary: str, vendor_id: str = "") -> Result:
    return Result(Outcome.IGNORED, summary, vendor_id)


# Per kind of body: how it is recorded, and how the log names what it recorded.
WRITERS: dict[str, tuple[Callable[..., tuple[Any, bool]], Callable[[dict], str]]] = {
    "customer": (intake.upsert_customer, lambda data: f"customer {data['external_id']}"),
    "purchase": (intake.record_purchase, lambda data: f"purchase {data['external_id']} of {data['offering']}"),
    "event": (intake.record_event, lambda data: f"{data['milestone'] or data['type']} on purchase {data['purchase']}"),
}


def record(connection: Connection, kind: str, body: dict, vendor_id: str) -> Result:
    """Clean `body` (a customer, purchase or event as the API takes it) and record it as the API does."""
    write, named = WRITERS[kind]
    try:
        data = cleaners.CLEANERS[kind](body)
        _, created = write(tenant=connection.tenant, actor=actor_for(connection), data=data)
    except (Invalid, Conflict, Missing) as exc:
        return Result(Outcome.REJECTED, describe(exc), vendor_id)
    done = "Recorded" if created else "Updated" if kind == "customer" else "Already recorded"
    return Result(Outcome.ACCEPTED, f"{done} {named(data)}.", vendor_id)


def open_purchase(customer_id: str, offering: str) -> str | None:
    """The external id of the customer's latest open engagement of the offering, if there is one."""
    return (
        Engagement.objects.filter(customer__external_id=customer_id, offering__key=offering, status__in=OPEN_STATUSES)
        .order_by("-pos_at")
        .values_list("purchase__external_id", flat=True)
        .first()
    )


def purchase_exists(external_id: str) -> bool:
    return Engagement.objects.filter(purchase__external_id=external_id).exists()
