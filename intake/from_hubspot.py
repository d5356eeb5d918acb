"""HubSpot's "Send a webhook" workflow action to purchases and losses (README, "Connect Stripe / HubSpot /
your analytics").

The action posts the deal's properties as JSON, either flat (`{"dealstage": "closedwon", ...}`, the body
chosen property by property) or as HubSpot's object payload (`{"objectId": 1, "properties": {"dealstage":
{"value": ...}}}`). A deal in the connection's won stage is a purchase whose external id is the deal's
id, so a resend records nothing twice; a deal in the lost stage, after its purchase, is lost.
"""

import time
from typing import Any

from hubspot.exceptions import InvalidSignatureTimestampError
from hubspot.utils.signature import Signature

from engagement import queries
from engagement.errors import Invalid
from intake import recording
from intake.models import Connection, Outcome
from intake.recording import Refused, Result, ignored, iso_time

MAX_SKEW_SECONDS = 300  # HubSpot's own five minutes
SIGNATURE = "X-HubSpot-Signature-v3"
TIMESTAMP = "X-HubSpot-Request-Timestamp"
# Where the body may carry each value, in order (HubSpot's internal property names first).
DEAL_ID = ("hs_object_id", "objectId", "deal_id", "dealId")
COMPANY_ID = ("company_id", "associatedcompanyid", "hs_primary_associated_company")
COMPANY_NAME = ("company_name", "company")
SALES_REP = ("owner_email", "hubspot_owner_email", "deal_owner_email")
CRITERIA = ("pov_success_criteria", "success_criteria")


def verified_deal(connection: Connection, payload: bytes, headers: Any, uri: str) -> dict:
    """The deal's properties, once the v3 signature (HMAC-SHA256 of method, URI, body and timestamp with the
    app's client secret) matches and the timestamp is less than 5 minutes old, as HubSpot specifies."""
    if not connection.secret:
        raise Refused("This connection has no client secret yet: paste your HubSpot app's client secret.", 401)
    try:
        body = payload.decode()
    except UnicodeDecodeError:
        raise Refused("The body is not UTF-8 text.") from None
    signature, timestamp = headers.get(SIGNATURE), headers.get(TIMESTAMP)
    if not signature or not signature.isascii():
        raise Refused(f"The {SIGNATURE} header is missing or not ASCII.", 401)
    if _from_the_future(timestamp):
        raise Refused(f"The {TIMESTAMP} header lies more than 5 minutes ahead.", 401)
    try:
        valid = Signature.is_valid(
            signature=signature, client_secret=connection.secret, request_body=body, http_uri=uri,
            http_method="POST", signature_version="v3", timestamp=timestamp,
        )  # fmt: skip
    except InvalidSignatureTimestampError:
        raise Refused(f"The {TIMESTAMP} header is missing or more than 5 minutes old.", 401) from None
    if not valid:
        raise Refused(f"The {SIGNATURE} header does not match this connection's client secret.", 401)
    deal = recording.read_json(payload)
    if not isinstance(deal, dict):
        raise Refused("Send the deal's properties as a JSON object.")
    return _flat(deal)


def handle(connection: Connection, deal: dict) -> Result:
    deal_id = _first(deal, DEAL_ID)
    stage = deal.get("dealstage")
    if deal_id is None:
        return Result(Outcome.REJECTED, "The body has no deal id (hs_object_id): add it to the webhook's body.")
    vendor_id = f"deal {deal_id}"
    won, lost = connection.mapping.get("won_stage"), connection.mapping.get("lost_stage")
    if not won:
        return ignored("This connection has no won stage yet: set its mapping in PoV.", vendor_id)
    if stage == won:
        return _won(connection, deal, str(deal_id), vendor_id)
    if lost and stage == lost:
        return _lost(connection, deal, str(deal_id), vendor_id)
    return ignored(f"Stage {stage!r} is neither the won nor the lost stage of this connection.", vendor_id)


def _won(connection: Connection, deal: dict, deal_id: str, vendor_id: str) -> Result:
    company_id, company_name = _first(deal, COMPANY_ID), _first(deal, COMPANY_NAME)
    customer_id = company_id or company_name
    if customer_id is None:
        return Result(
            Outcome.REJECTED, "The deal names no company: add the company's id (company_id) or name.", vendor_id
        )
    sales_rep, note = _sales_rep(_first(deal, SALES_REP))
    body = {
        "external_id": deal_id,
        "customer": {"external_id": str(customer_id), "name": str(company_name or customer_id)},
        "offering": connection.mapping["offering"],
        "purchased_at": _time(deal.get("closedate")),  # required: a resend must name the same moment
        "amount": deal.get("amount"),
        "currency": deal.get("deal_currency_code") or "",
        "sales_rep": sales_rep,
        "success_criteria": recording.criteria(_first(deal, CRITERIA)),
    }
    result = recording.record(connection, "purchase", body, vendor_id)
    return Result(result.outcome, f"{result.summary} {note}".strip(), vendor_id)


def _lost(connection: Connection, deal: dict, deal_id: str, vendor_id: str) -> Result:
    if not recording.purchase_exists(deal_id):
        return ignored("Lost before it was won: there is no purchase to mark lost.", vendor_id)
    reason = deal.get("closed_lost_reason") or "Deal closed lost in HubSpot"
    body = {
        "type": "lost", "purchase": deal_id, "occurred_at": _time(deal.get("closedate")) or iso_time(time.time()),
        "reason": str(reason)[:500], "external_id": f"hubspot:{deal_id}:lost",
    }  # fmt: skip
    return recording.record(connection, "event", body, vendor_id)


def _sales_rep(email: Any) -> tuple[str | None, str]:
    """The deal owner's email if they are a member who can be named; otherwise none, and why."""
    if not isinstance(email, str) or not email:
        return None, ""
    try:
        queries.member_by_email(email, "sales_rep")
    except Invalid as exc:
        return None, f"Sales rep left empty: {recording.describe(exc)}"
    return email, ""


def _flat(deal: dict) -> dict:
    """HubSpot's object payload ({"properties": {name: {"value": v}}}) as flat properties."""
    properties = deal.get("properties")
    flat = {k: v for k, v in deal.items() if k != "properties"}
    if isinstance(properties, dict):
        for name, value in properties.items():
            flat[name] = value.get("value") if isinstance(value, dict) else value
    return flat


def _first(deal: dict, names: tuple[str, ...]) -> Any:
    return next((deal[n] for n in names if deal.get(n) not in (None, "")), None)


def _time(value: Any) -> str:
    """HubSpot sends dates as milliseconds since 1970 (object payloads) or as ISO 8601 text; "" when absent,
    which the cleaner refuses naming the field."""
    if isinstance(value, str) and value.isdecimal() and value.isascii():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return iso_time(value / 1000)
    if isinstance(value, str) and value:
        return value if "T" in value else f"{value}T00:00:00+00:00"
    return ""


def _from_the_future(timestamp: Any) -> bool:
    """HubSpot's library refuses an old timestamp; one ahead of the clock is refused here."""
    try:
        return float(timestamp) / 1000 > time.time() + MAX_SKEW_SECONDS
    except (TypeError, ValueError, OverflowError):
        return False
