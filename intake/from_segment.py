"""A Segment-compatible source (README, "Connect Stripe / HubSpot / your analytics"): the connection's URL
works as a Segment host, so Segment's own clients send to it by setting their host.

`POST <url>/v1/identify`, `/v1/track` and `/v1/batch` take Segment's HTTP API bodies, with the write key
(the connection's secret) as the HTTP Basic user or as `writeKey` in the body, and Segment's limits:
32 KB a message, 500 KB a request. `identify` creates or updates the customer; `track` of an event the
mapping names records that milestone on the customer's open engagement of the mapped offering. The
`messageId` is the event's external id, so a message sent twice is recorded once. Other events and
calls are counted in the log, not stored.
"""

import base64
import hashlib
import hmac
import json
import zlib
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from intake import recording
from intake.models import Connection, Outcome
from intake.recording import Refused, Result, ignored, object_at

MESSAGE_MAX_BYTES = 32 * 1024
REQUEST_MAX_BYTES = 500 * 1024
# Segment's HTTP API calls; page, screen, group and alias are answered and counted, not stored.
CALLS = ("track", "identify", "batch", "page", "screen", "group", "alias")
BATCH_MAX_MESSAGES = 500  # each is its own transaction: a batch stays a few seconds' work
SHOWN_PER_OUTCOME = 5  # lines of detail a batch's log line shows for each outcome


def read_body(payload: bytes, encoding: str) -> bytes:
    """The request body, gunzipped if the client compressed it (analytics-python's gzip option)."""
    if len(payload) > REQUEST_MAX_BYTES:
        raise Refused(
            f"The request is over {REQUEST_MAX_BYTES // 1024} KB, Segment's limit; send smaller batches.", 413
        )
    if encoding.strip().lower() != "gzip":
        return payload
    try:
        # At most one byte past the limit is unpacked: a small bomb cannot fill the memory.
        body = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(payload, REQUEST_MAX_BYTES + 1)
    except zlib.error:
        raise Refused("The body says it is gzip but does not unpack.") from None
    if len(body) > REQUEST_MAX_BYTES:
        raise Refused(f"The request is over {REQUEST_MAX_BYTES // 1024} KB unpacked, Segment's limit.", 413)
    return body


def verified_body(connection: Connection, body: bytes, authorization: str) -> dict:
    """The body, once the write key matches: from the Basic user before the body is read, or else from the
    body's `writeKey`, as Segment's HTTP API takes either."""
    key = _basic_user(authorization)
    if key is not None:
        _check(connection, key)
    data = recording.read_json(body)
    if not isinstance(data, dict):
        raise Refused("Send a JSON object.")
    if key is None:
        _check(connection, data.get("writeKey"))
    return data


def _check(connection: Connection, key: Any) -> None:
    if (
        not isinstance(key, str)
        or not key.isascii()
        or not hmac.compare_digest(key.encode(), connection.secret.encode())
    ):
        raise Refused("The write key is not this source's: use the write key shown when it was created.", 401)


def _basic_user(authorization: str) -> str | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode().partition(":")[0]
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 (UnicodeDecodeError)
        return None


def handle(connection: Connection, call: str, data: dict) -> Result:
    """One request: a single message, or a batch of them summed up in one log line."""
    if call == "batch":
        messages = data.get("batch")
        if not isinstance(messages, list):
            raise Refused('A batch is {"batch": [messages]}.')
        if len(messages) > BATCH_MAX_MESSAGES:
            raise Refused(f"A batch holds at most {BATCH_MAX_MESSAGES} messages; send smaller batches.", 413)
        return _summary([_message(connection, m.get("type") if isinstance(m, dict) else None, m) for m in messages])
    return _message(connection, call, data)


def _message(connection: Connection, call: Any, message: Any) -> Result:
    if not isinstance(message, dict):
        return Result(Outcome.REJECTED, "A message is a JSON object.")
    compact = json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
    # Segment's clients always set a messageId; without one, the same message sent again has the same hash.
    message_id = str(message.get("messageId") or "") or "sha256:" + hashlib.sha256(compact).hexdigest()
    if len(compact) > MESSAGE_MAX_BYTES:
        return Result(
            Outcome.REJECTED, f"Over {MESSAGE_MAX_BYTES // 1024} KB, Segment's limit for a message.", message_id
        )
    if call == "identify":
        return _identify(connection, message, message_id)
    if call == "track":
        return _track(connection, message, message_id)
    return ignored(f"{call} calls are not used", message_id)


def _identify(connection: Connection, message: dict, message_id: str) -> Result:
    traits = object_at(message, "traits")
    customer_id = _customer_id(connection, message, traits)
    if customer_id is None:
        return Result(
            Outcome.REJECTED,
            f"No {connection.mapping.get('customer_id', 'userId')} to name the customer by.",
            message_id,
        )
    if connection.mapping.get("customer_id") == "traits.company":
        # The customer is the person's company: named after it, and no person's email becomes its own.
        company = traits.get("company")
        name = company.get("name") if isinstance(company, dict) else company
        body = {"external_id": customer_id, "name": str(name or customer_id)}
    else:
        body = {"external_id": customer_id, "name": str(traits.get("name") or customer_id)}
        if isinstance(traits.get("email"), str):
            body["email"] = traits["email"]
    return recording.record(connection, "customer", body, message_id)


def _track(connection: Connection, message: dict, message_id: str) -> Result:
    name = message.get("event")
    target = object_at(connection.mapping, "events").get(name) if isinstance(name, str) else None
    if target is None:
        return ignored(f"not mapped: {name!r}", message_id)
    traits = object_at(message, "context", "traits")
    customer_id = _customer_id(connection, message, traits)
    if customer_id is None:
        return Result(
            Outcome.REJECTED, f"{name!r} names no customer ({connection.mapping.get('customer_id')}).", message_id
        )
    purchase = recording.open_purchase(customer_id, target["offering"])
    if purchase is None:
        return ignored(
            f"{name!r}: customer {customer_id!r} has no open engagement of {target['offering']!r}", message_id
        )
    body = {
        "type": "milestone", "purchase": purchase, "milestone": target["milestone"],
        "occurred_at": message.get("timestamp") or message.get("originalTimestamp") or datetime.now(UTC).isoformat(),
        "external_id": f"segment:{message_id}",
    }  # fmt: skip
    return recording.record(connection, "event", body, message_id)


def _customer_id(connection: Connection, message: dict, traits: dict) -> str | None:
    if connection.mapping.get("customer_id") == "traits.company":
        company = traits.get("company")
        value = (company.get("id") or company.get("name")) if isinstance(company, dict) else company
    else:
        value = message.get("userId")
    return str(value) if isinstance(value, (str, int)) and str(value).strip() else None


def _summary(results: list[Result]) -> Result:
    """One log line for a batch: counts per outcome, the first few of each, and ignored events by name."""
    counts = Counter(r.outcome for r in results)
    worst = next((o for o in (Outcome.REJECTED, Outcome.ACCEPTED) if counts[o]), Outcome.IGNORED)
    parts = [f"{len(results)} messages: " + ", ".join(f"{counts[o]} {o.label.lower()}" for o in Outcome if counts[o])]
    for outcome in (Outcome.REJECTED, Outcome.ACCEPTED):
        shown = [r.summary for r in results if r.outcome == outcome][:SHOWN_PER_OUTCOME]
        if shown:
            parts.append(f"{outcome.label}: " + " | ".join(shown))
    reasons = Counter(r.summary for r in results if r.outcome == Outcome.IGNORED)
    if reasons:
        parts.append("Ignored: " + ", ".join(f"{why} ×{n}" for why, n in reasons.most_common(SHOWN_PER_OUTCOME)))
    return Result(worst, ". ".join(parts), "batch")
