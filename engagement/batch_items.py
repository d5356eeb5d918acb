"""Fast validation of batch items: plain dict checks, no serializer machinery per field.

Each `clean_*` returns a cleaned dict or raises ItemError. The rules are those of the single
endpoints' serializers (required, null, blank, lengths, trimmed strings), so a batch item gets the
same answer as the same body sent alone. Optional fields that are absent are left out of the
cleaned dict, so an upsert keeps their stored values.
"""

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from engagement.models import EventType
from pov.api_errors import contains_nul

ID_MAX = 255
ABSENT = object()


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


def _string(data, field, max_length, *, required=False, allow_blank=False, allow_null=False):
    if field not in data:
        if required:
            raise invalid(field, "This field is required.")
        return ABSENT
    value = data[field]
    if value is None:
        if allow_null:
            return None
        raise invalid(field, "This field may not be null.")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise invalid(field, "Not a valid string.")
    value = str(value).strip()
    if not value and not allow_blank:
        raise invalid(field, "This field may not be blank.")
    if len(value) > max_length:
        raise invalid(field, f"Ensure this field has no more than {max_length} characters.")
    if "\x00" in value:
        raise invalid(field, "Null characters are not allowed.")
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
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise invalid(field, f"{raw!r} is out of range (years 1 to 9999 in UTC).") from None
    return value


def _email(data, field, *, allow_blank=False, allow_null=False):
    value = _string(data, field, 254, allow_blank=allow_blank, allow_null=allow_null)
    if isinstance(value, str) and value:
        try:
            validate_email(value)
        except ValidationError:
            raise invalid(field, "Enter a valid email address.") from None
    return value


def _present(**values):
    return {k: v for k, v in values.items() if v is not ABSENT}


CUSTOMER_FIELDS = frozenset({"external_id", "name", "email", "segment", "attributes"})
PURCHASE_FIELDS = frozenset(
    {"external_id", "customer", "offering", "purchased_at", "amount", "currency", "owner", "sales_rep"}
)
EVENT_FIELDS = frozenset({"type", "purchase", "occurred_at", "milestone", "score", "comment", "reason", "external_id"})
EVENT_TYPES = frozenset(EventType.values)  # EventType.values builds a new list on every access


def clean_customer(data):
    _unknown(data, CUSTOMER_FIELDS)
    attributes = data.get("attributes", ABSENT)
    if attributes is not ABSENT:
        if not isinstance(attributes, dict):
            raise invalid("attributes", "Expected a dictionary of items.")
        if contains_nul(attributes):
            raise invalid("attributes", "Null characters are not allowed.")
        if len(str(attributes)) > 10000:
            raise invalid("attributes", "Keep attributes under 10,000 characters.")
    return _present(
        external_id=_string(data, "external_id", ID_MAX, required=True),
        name=_string(data, "name", 255, required=True),
        email=_email(data, "email", allow_blank=True),
        segment=_string(data, "segment", 64, allow_blank=True),
        attributes=attributes,
    )


def _amount(data):
    amount = data.get("amount")
    if amount is None or (isinstance(amount, str) and not amount.strip()):
        return None  # as DRF's DecimalField(allow_null=True) reads a blank string
    if isinstance(amount, bool) or not isinstance(amount, (int, float, str)):
        raise invalid("amount", "A valid number is required.")
    try:
        return Decimal(str(amount).strip())
    except InvalidOperation:
        raise invalid("amount", "A valid number is required.") from None


def clean_purchase(data):
    _unknown(data, PURCHASE_FIELDS)
    customer = data.get("customer")
    if isinstance(customer, dict):
        try:
            customer = clean_customer(customer)
        except ItemError as exc:
            # Named as the single endpoint names them: customer.<field>.
            fields = {f"customer.{k}": v for k, v in exc.fields.items()}
            raise ItemError(exc.status, exc.code, f"customer.{exc.message}", fields) from None
    elif not isinstance(customer, str) or not customer.strip() or len(customer) > ID_MAX or "\x00" in customer:
        raise invalid("customer", "Give the customer's external_id or an object {external_id, name, ...}.")
    currency = _string(data, "currency", 3, allow_blank=True)
    owner = _email(data, "owner", allow_null=True)
    sales_rep = _email(data, "sales_rep", allow_null=True)
    return {
        "external_id": _string(data, "external_id", ID_MAX, required=True),
        "customer": customer.strip() if isinstance(customer, str) else customer,
        "offering": _string(data, "offering", 64, required=True),
        "purchased_at": _timestamp(data, "purchased_at"),
        "amount": _amount(data),
        "currency": "" if currency is ABSENT else currency,
        "owner": None if owner is ABSENT else owner,
        "sales_rep": None if sales_rep is ABSENT else sales_rep,
    }


WHOLE_NUMBER = re.compile(r"\.0*$")


def _score(data):
    """Read as DRF's IntegerField does ("5" and 5.0 are 5), then bounded to 1-5."""
    score = data.get("score")
    if score is None:
        return None
    if isinstance(score, bool):
        raise invalid("score", "A valid integer is required.")
    try:
        value = int(WHOLE_NUMBER.sub("", str(score).strip()))
    except ValueError:
        raise invalid("score", "A valid integer is required.") from None
    if not 1 <= value <= 5:
        raise invalid("score", f"A satisfaction score is a whole number from 1 to 5, not {score!r}.")
    return value


def clean_event(data):
    _unknown(data, EVENT_FIELDS)
    type_ = data.get("type")
    if not isinstance(type_, str) or type_ not in EVENT_TYPES:
        raise invalid("type", f"{type_!r} is not one of: {', '.join(EventType.values)}.")
    score = _score(data)
    milestone = _string(data, "milestone", 64, allow_null=True)
    milestone = None if milestone is ABSENT else milestone
    if type_ == "satisfaction" and score is None:
        raise invalid("score", "A satisfaction event needs a score from 1 to 5.")
    if type_ != "satisfaction" and score is not None:
        raise invalid("score", "Only satisfaction events carry a score.")
    if type_ == "milestone" and not milestone:
        raise invalid("milestone", "A milestone event needs the milestone key.")
    if type_ != "milestone" and milestone:
        raise invalid("milestone", f"Only milestone events name a milestone, not {type_} events.")
    comment = _string(data, "comment", 4000, allow_blank=True)
    reason = _string(data, "reason", 500, allow_blank=True)
    external_id = _string(data, "external_id", ID_MAX, allow_null=True)
    return {
        "type": type_,
        "purchase": _string(data, "purchase", ID_MAX, required=True),
        "occurred_at": _timestamp(data, "occurred_at"),
        "milestone": milestone,
        "score": score,
        "comment": "" if comment is ABSENT else comment,
        "reason": "" if reason is ABSENT else reason,
        "external_id": None if external_id is ABSENT else external_id,
    }


CLEANERS = {"customer": clean_customer, "purchase": clean_purchase, "event": clean_event}
