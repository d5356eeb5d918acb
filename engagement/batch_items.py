"""Fast validation of batch items: plain dict checks, no serializer machinery per field.

Each `clean_*` returns a cleaned dict or raises ItemError with the same error shape the single
endpoints give (status, code, message, fields).
"""

from datetime import datetime
from decimal import Decimal, InvalidOperation

from engagement.models import EventType

ID_MAX = 255


class ItemError(Exception):
    def __init__(self, status, code, message, fields=None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}

    def as_result(self):
        return {"code": self.code, "message": self.message, "fields": self.fields}


def invalid(field, message):
    return ItemError(400, "invalid", f"{field}: {message}", {field: [message]})


def _unknown(data, allowed):
    extra = set(data) - allowed
    if extra:
        names = sorted(extra)
        raise ItemError(400, "invalid", f"Unknown field: {', '.join(names)}.", {n: ["Unknown field."] for n in names})


def _string(data, field, max_length, required=True, allow_blank=False):
    value = data.get(field)
    if value is None:
        if required:
            raise invalid(field, "This field is required.")
        return None
    if not isinstance(value, str):
        raise invalid(field, "Must be a string.")
    if len(value) > max_length:
        raise invalid(field, f"At most {max_length} characters.")
    if not allow_blank and not value.strip():
        raise invalid(field, "May not be blank.")
    if "\x00" in value:
        raise invalid(field, "Contains a NUL character.")
    return value


def _timestamp(data, field):
    raw = data.get(field)
    if not isinstance(raw, str) or len(raw) > 40:
        raise invalid(field, "An ISO 8601 timestamp with an offset is required.")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid(field, f"{raw!r} is not an ISO 8601 timestamp.") from None
    if value.tzinfo is None:
        raise invalid(
            field, "Give a time zone offset (e.g. 2026-05-01T09:00:00+02:00 or ...Z); naive times are ambiguous."
        )
    return value


def _email(data, field):
    value = _string(data, field, 254, required=False, allow_blank=True)
    if value and ("@" not in value or value.startswith("@") or value.endswith("@") or " " in value):
        raise invalid(field, f"{value!r} is not an email address.")
    return value or None


CUSTOMER_FIELDS = frozenset({"external_id", "name", "email", "segment", "attributes"})
PURCHASE_FIELDS = frozenset(
    {"external_id", "customer", "offering", "purchased_at", "amount", "currency", "owner", "sales_rep"}
)
EVENT_FIELDS = frozenset({"type", "purchase", "occurred_at", "milestone", "score", "comment", "reason", "external_id"})


def clean_customer(data):
    _unknown(data, CUSTOMER_FIELDS)
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise invalid("attributes", "Must be an object.")
    if len(str(attributes)) > 10000:
        raise invalid("attributes", "Keep attributes under 10,000 characters.")
    return {
        "external_id": _string(data, "external_id", ID_MAX),
        "name": _string(data, "name", 255),
        "email": _email(data, "email") or "",
        "segment": _string(data, "segment", 64, required=False, allow_blank=True) or "",
        "attributes": attributes,
    }


def clean_purchase(data):
    _unknown(data, PURCHASE_FIELDS)
    customer = data.get("customer")
    if isinstance(customer, dict):
        customer = clean_customer(customer)
    elif not isinstance(customer, str) or not customer or len(customer) > ID_MAX:
        raise invalid("customer", "Give the customer's external_id or an object {external_id, name, ...}.")
    amount = data.get("amount")
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, (int, float, str)):
            raise invalid("amount", "Must be a number.")
        try:
            amount = Decimal(str(amount))
        except InvalidOperation:
            raise invalid("amount", f"{amount!r} is not a number.") from None
    return {
        "external_id": _string(data, "external_id", ID_MAX),
        "customer": customer,
        "offering": _string(data, "offering", 64),
        "purchased_at": _timestamp(data, "purchased_at"),
        "amount": amount,
        "currency": _string(data, "currency", 3, required=False, allow_blank=True) or "",
        "owner": _email(data, "owner"),
        "sales_rep": _email(data, "sales_rep"),
    }


def clean_event(data):
    _unknown(data, EVENT_FIELDS)
    type_ = data.get("type")
    if type_ not in EventType.values:
        raise invalid("type", f"{type_!r} is not one of: {', '.join(EventType.values)}.")
    score = data.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5):
        raise invalid("score", f"A satisfaction score is a whole number from 1 to 5, not {score!r}.")
    if type_ == "satisfaction" and score is None:
        raise invalid("score", "A satisfaction event needs a score from 1 to 5.")
    if type_ != "satisfaction" and score is not None:
        raise invalid("score", "Only satisfaction events carry a score.")
    milestone = _string(data, "milestone", 64, required=False, allow_blank=True)
    if type_ == "milestone" and not milestone:
        raise invalid("milestone", "A milestone event needs the milestone key.")
    if type_ != "milestone" and milestone:
        raise invalid("milestone", f"Only milestone events name a milestone, not {type_} events.")
    return {
        "type": type_,
        "purchase": _string(data, "purchase", ID_MAX),
        "occurred_at": _timestamp(data, "occurred_at"),
        "milestone": milestone or None,
        "score": score,
        "comment": _string(data, "comment", 4000, required=False, allow_blank=True) or "",
        "reason": _string(data, "reason", 500, required=False, allow_blank=True) or "",
        "external_id": _string(data, "external_id", ID_MAX, required=False) or None,
    }


CLEANERS = {"customer": clean_customer, "purchase": clean_purchase, "event": clean_event}
