"""The checks every way in shares: the single endpoints, batch items, web forms and the services.

`clean_customer`, `clean_purchase` and `clean_event` turn a request body (a dict) into cleaned values or
raise Invalid naming each field, in plain dict checks (a batch of a thousand items pays for no serializer
machinery). Optional fields that are absent are left out of a cleaned customer, so an upsert keeps their
stored values. The checks of meaning (money, event times, scores, what a replayed purchase must repeat)
are functions of their own that the services call too.
"""

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from engagement.currencies import ISO_4217
from engagement.errors import Invalid
from engagement.models import EventType
from tenants.models import ACTING_ROLES, Member

ID_MAX = 255
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FUTURE_TOLERANCE = timedelta(minutes=5)
# The years PoV accepts anywhere a date is given (README, "Connect your CRM"): far enough either side for any
# real purchase or report, near enough that converting to any time zone or adding a day cannot overflow.
FIRST_YEAR, LAST_YEAR = 1970, 2200
ATTRIBUTES_MAX = 10_000
CRITERIA_MAX, CRITERION_MAX = 10, 200
NAIVE = "Give a time zone offset (e.g. 2026-05-01T09:00:00+02:00 or ...Z); naive times are ambiguous."
ABSENT = object()

CUSTOMER_FIELDS = frozenset({"external_id", "name", "email", "segment", "attributes"})
PURCHASE_FIELDS = frozenset(
    {"external_id", "customer", "offering", "purchased_at", "amount", "currency", "owner", "sales_rep",
     "success_criteria"}
)  # fmt: skip
EVENT_FIELDS = frozenset(
    {"type", "purchase", "occurred_at", "milestone", "score", "comment", "reason", "external_id", "criteria_met"}
)
EVENT_TYPES = frozenset(EventType.values)


def invalid(field: str, message: str) -> Invalid:
    return Invalid({field: [message]})


# Values -------------------------------------------------------------------------------------------


def _unknown(data: dict, allowed: frozenset) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise Invalid({name: ["Unknown field."] for name in extra})


def _string(
    data: dict, field: str, max_length: int, *, required: bool = False, allow_blank: bool = False,
    allow_null: bool = False,
) -> Any:  # fmt: skip
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


def _timestamp(data: dict, field: str) -> datetime:
    raw = data.get(field)
    if not isinstance(raw, str) or len(raw) > 40:
        raise invalid(field, "An ISO 8601 timestamp with an offset is required.")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid(field, f"{raw!r} is not an ISO 8601 timestamp.") from None
    aware(value, field)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise invalid(field, f"{raw!r} is out of range (years 1 to 9999 in UTC).") from None
    return value


def _email(data: dict, field: str, *, allow_blank: bool = False, allow_null: bool = False) -> Any:
    value = _string(data, field, 254, allow_blank=allow_blank, allow_null=allow_null)
    if isinstance(value, str) and value:
        try:
            validate_email(value)
        except ValidationError:
            raise invalid(field, "Enter a valid email address.") from None
    return value


def attributes(value: Any) -> dict:
    """A customer's free-form attributes: an object of bounded size that PostgreSQL can store."""
    if not isinstance(value, dict):
        raise invalid("attributes", "Expected a dictionary of items.")
    if contains_nul(value):
        raise invalid("attributes", "Null characters are not allowed.")
    if len(str(value)) > ATTRIBUTES_MAX:
        raise invalid("attributes", "Keep attributes under 10,000 characters.")
    return value


def success_criteria(value: Any, field: str = "success_criteria") -> list[str]:
    """What the customer expects, as a list of short texts: trimmed, blank ones dropped, each once (in any
    letter case)."""
    if not isinstance(value, list):
        raise invalid(field, 'Give a list of short texts, e.g. ["Invoices out in one day"].')
    for i, item in enumerate(value):
        if not isinstance(item, str) or "\x00" in item:
            raise invalid(f"{field}.{i}", "Give each criterion as text.")
        if len(_one_spaced(item)) > CRITERION_MAX:
            raise invalid(f"{field}.{i}", f"Keep each criterion to {CRITERION_MAX} characters at most.")
    criteria = _distinct(value, CRITERIA_MAX + 1)
    if len(criteria) > CRITERIA_MAX:
        raise invalid(field, f"Give at most {CRITERIA_MAX} criteria.")
    return criteria


def criteria_that_fit(texts: list[str]) -> list[str]:
    """Success criteria from a vendor's free text, cut to fit instead of refused (a sale is never lost over
    them): each shortened to CRITERION_MAX characters, the first CRITERIA_MAX kept."""
    return _distinct([_one_spaced(text.replace("\x00", ""))[:CRITERION_MAX] for text in texts], CRITERIA_MAX)


def _distinct(texts: list[str], most: int) -> list[str]:
    """The first `most` criteria among `texts`, trimmed, blank ones dropped, each once in any letter case
    (as first written); stops reading once it has them."""
    kept: dict[str, str] = {}
    for text in map(_one_spaced, texts):
        if text:
            kept.setdefault(text.casefold(), text)
            if len(kept) == most:
                break
    return list(kept.values())


def _one_spaced(text: str) -> str:
    """A criterion as compared and stored: trimmed, each run of spaces or line breaks one space."""
    return " ".join(text.split())


def criteria_met(value: Any, event_type: str) -> dict[str, bool] | None:
    """A satisfaction event's answer per success criterion, {criterion: true or false} (each criterion once,
    in any letter case); None when not given or empty."""
    if value is None:
        return None
    if event_type != EventType.SATISFACTION:
        raise invalid("criteria_met", "Only satisfaction events answer the success criteria.")
    if not isinstance(value, dict) or len(value) > CRITERIA_MAX:
        raise invalid("criteria_met", f'Give up to {CRITERIA_MAX} answers as {{"criterion": true or false}}.')
    answers: dict[str, tuple[str, bool]] = {}
    for criterion, met in value.items():
        text = _one_spaced(criterion)
        if not text or len(text) > CRITERION_MAX or "\x00" in text or not isinstance(met, bool):
            raise invalid("criteria_met", f"Answer each criterion (up to {CRITERION_MAX} characters) true or false.")
        if text.casefold() in answers:
            raise invalid("criteria_met", f"{text!r} is answered twice.")
        answers[text.casefold()] = (text, met)
    return dict(answers.values()) or None


def criteria_answered(form: Any, criteria: list[str]) -> dict[str, bool] | None:
    """A form's yes or no for each of `criteria` (a field named "criterion:" and the criterion's text, so an
    answer never lands on another criterion when they were edited meanwhile), as criteria_met takes them;
    None when none was answered."""
    answers = {criterion: form.get(f"criterion:{criterion}") for criterion in criteria}
    return {c: answer == "yes" for c, answer in answers.items() if answer in ("yes", "no")} or None


def criteria_in_text(text: str) -> list[str]:
    """Success criteria written in one text field of a spreadsheet or a vendor: one a line or separated by
    semicolons; success_criteria() or criteria_that_fit() then clean the list."""
    return re.split(r"[;\n]", text)


def contains_nul(value: Any) -> bool:
    """True when a NUL character (which PostgreSQL cannot store) hides anywhere in a JSON value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def aware(value: datetime | None, field: str) -> datetime:
    if value is None:
        raise invalid(field, "This field is required.")
    if timezone.is_naive(value):
        raise invalid(field, NAIVE)
    return value


def when(value: datetime) -> str:
    """A time as people read it, in the zone it was given in: "1 Jan 2030, 10:00 (UTC+01:00)"."""
    offset = value.strftime("%z")
    zone = "UTC" if offset in ("", "+0000") else f"UTC{offset[:3]}:{offset[3:]}"
    return f"{value.day} {value:%b %Y, %H:%M} ({zone})"


def recorded_time(value: datetime, field: str, now: datetime) -> None:
    """A time the record accepts: from 1970 to 5 minutes from now."""
    if value.year < FIRST_YEAR or value.astimezone(UTC).year < FIRST_YEAR:  # the first test spares year 1 an overflow
        day = f"{value.year:04d}-{value.month:02d}-{value.day:02d}"  # zones had odd offsets then: the day alone
        raise invalid(field, f"{day} is before {FIRST_YEAR}; give a date from {FIRST_YEAR} on.")
    if value > now + FUTURE_TOLERANCE:
        raise invalid(field, f"{when(value)} is more than 5 minutes in the future.")


def in_accepted_years(value: date, field: str) -> date:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise invalid(field, f"{value.isoformat()} is not between the years {FIRST_YEAR} and {LAST_YEAR}.")
    return value


def event_time(occurred_at: datetime, *, purchased_at: datetime, now: datetime) -> None:
    """An event happens at or after its purchase, and not (more than 5 minutes) in the future."""
    aware(occurred_at, "occurred_at")
    recorded_time(occurred_at, "occurred_at", now)
    if occurred_at < purchased_at:
        bought = purchased_at.astimezone(occurred_at.tzinfo)  # in the zone the time was given in
        raise invalid("occurred_at", f"{when(occurred_at)} is before the purchase ({when(bought)}).")


def score(value: Any) -> int:
    """A satisfaction score as the API reads it ("5" and 5.0 are 5), from 1 to 5."""
    if value is None or value == "":
        raise invalid("score", "Choose a satisfaction score from 1 to 5.")
    if isinstance(value, bool):
        raise invalid("score", f"A satisfaction score is a whole number from 1 to 5, not {value!r}.")
    try:
        whole = int(re.sub(r"\.0*$", "", str(value).strip()))
    except ValueError:
        raise invalid("score", "A valid integer is required.") from None
    if not 1 <= whole <= 5:
        raise invalid("score", f"A satisfaction score is a whole number from 1 to 5, not {value!r}.")
    return whole


def responsible(member: Member | None, field: str) -> None:
    """Only an active member who acts (admin, owner, sales, service) owns an engagement or takes an alert."""
    if member is not None and not (member.is_active and member.role in ACTING_ROLES):
        reason = "is deactivated" if not member.is_active else "is a viewer"
        raise invalid(field, f"{member.name} {reason}; only admins, owners, sales and service can take this on.")


def money(amount: Any, currency: str | None) -> tuple[Decimal | None, str]:
    """(amount, currency): at most 12 digits before and 2 after the point, and an ISO 4217 code with it."""
    if isinstance(amount, str) and not amount.strip():
        amount = None
    if isinstance(amount, bool) or not isinstance(amount, (int, float, str, Decimal, type(None))):
        raise invalid("amount", "A valid number is required.")
    if amount is not None:
        try:
            amount = Decimal(str(amount).strip())
        except InvalidOperation:
            raise invalid("amount", "A valid number is required.") from None
        if not amount.is_finite() or (amount != 0 and amount.adjusted() >= 12) or amount.as_tuple().exponent < -2:
            raise invalid("amount", "Use at most 12 digits before and 2 after the decimal point.")
        if amount < 0:
            raise invalid("amount", f"{amount} is negative; a purchase's amount is zero or more.")
    currency = (currency or "").strip().upper()
    if currency and currency not in ISO_4217:
        raise invalid("currency", f"{currency[:10]!r} is not a currency's ISO 4217 code (e.g. EUR, USD).")
    if amount is not None and not currency:
        raise invalid("currency", "Give the currency of the amount (ISO 4217, e.g. EUR).")
    return amount, currency


def purchase_differences(stored: dict, wanted: dict) -> list[str]:
    """The fields where a purchase sent again differs from the stored one (a replay repeats them all);
    an owner, sales rep or success criteria left out of the replay do not count, nor the criteria's order
    or letter case."""
    return [
        name for name, value in wanted.items()
        if _comparable(name, stored.get(name)) != _comparable(name, value)
        and not (name in ("owner", "sales_rep", "success_criteria") and not value)
    ]  # fmt: skip


def _comparable(name: str, value: Any) -> Any:
    return sorted(text.casefold() for text in value or []) if name == "success_criteria" else value


def conflict_message(external_id: str, differing: list[str]) -> tuple[str, dict]:
    fields = {name: ["Differs from the stored purchase."] for name in differing}
    return f"Purchase {external_id!r} already exists with other values for: {', '.join(differing)}.", fields


# Bodies -------------------------------------------------------------------------------------------


def _present(**values: Any) -> dict:
    return {k: v for k, v in values.items() if v is not ABSENT}


def _customer_id(data: dict) -> str:
    """A customer's external_id, which names it in an address (/api/v1/customers/<external_id>/)."""
    value = _string(data, "external_id", ID_MAX, required=True)
    if "/" in value:
        raise invalid("external_id", f"{value!r} contains '/', which an address cannot carry; use another character.")
    return value


def clean_customer(data: Any) -> dict:
    if not isinstance(data, dict):
        raise invalid("non_field_errors", "Send an object.")
    _unknown(data, CUSTOMER_FIELDS)
    given = data.get("attributes", ABSENT)
    return _present(
        external_id=_customer_id(data),
        name=_string(data, "name", 255, required=True),
        email=_email(data, "email", allow_blank=True),
        segment=_string(data, "segment", 64, allow_blank=True),
        attributes=given if given is ABSENT else attributes(given),
    )


def _customer_ref(value: Any) -> str | dict:
    if isinstance(value, dict):
        try:
            return clean_customer(value)
        except Invalid as exc:
            # Named as the body names them: customer.<field>.
            raise Invalid({f"customer.{k}": v for k, v in exc.message_dict.items()}) from None
    if not isinstance(value, str) or not value.strip() or len(value) > ID_MAX or "\x00" in value:
        raise invalid("customer", "Give the customer's external_id or an object {external_id, name, ...}.")
    return value.strip()


def clean_purchase(data: Any) -> dict:
    if not isinstance(data, dict):
        raise invalid("non_field_errors", "Send an object.")
    _unknown(data, PURCHASE_FIELDS)
    customer = _customer_ref(data.get("customer"))
    currency = _string(data, "currency", 3, allow_blank=True)
    amount, currency = money(data.get("amount"), None if currency is ABSENT else currency)
    owner, sales_rep = _email(data, "owner", allow_null=True), _email(data, "sales_rep", allow_null=True)
    return {
        "external_id": _string(data, "external_id", ID_MAX, required=True),
        "customer": customer,
        "offering": _string(data, "offering", 64, required=True),
        "purchased_at": _timestamp(data, "purchased_at"),
        "amount": amount,
        "currency": currency,
        "owner": None if owner is ABSENT else owner,
        "sales_rep": None if sales_rep is ABSENT else sales_rep,
        "success_criteria": success_criteria(data["success_criteria"]) if "success_criteria" in data else [],
    }


def clean_event(data: Any) -> dict:
    if not isinstance(data, dict):
        raise invalid("non_field_errors", "Send an object.")
    _unknown(data, EVENT_FIELDS)
    type_ = data.get("type")
    if type_ is None:
        raise invalid("type", f"Say which kind of event this is, one of: {', '.join(EventType.values)}.")
    if not isinstance(type_, str) or type_ not in EVENT_TYPES:
        raise invalid("type", f"{type_!r} is not one of: {', '.join(EventType.values)}.")
    given_score = None if data.get("score") is None else score(data["score"])
    milestone = _string(data, "milestone", 64, allow_null=True)
    milestone = None if milestone is ABSENT else milestone
    if type_ == "satisfaction" and given_score is None:
        raise invalid("score", "A satisfaction event needs a score from 1 to 5.")
    if type_ != "satisfaction" and given_score is not None:
        raise invalid("score", "Only satisfaction events carry a score.")
    if type_ == "milestone" and not milestone:
        raise invalid("milestone", "A milestone event needs the milestone key.")
    if type_ != "milestone" and milestone:
        raise invalid("milestone", f"Only milestone events name a milestone, not {type_} events.")
    comment = _string(data, "comment", 4000, allow_blank=True)
    reason = _string(data, "reason", 500, allow_blank=True)
    external_id = _string(data, "external_id", ID_MAX, allow_null=True)
    answers = criteria_met(data.get("criteria_met"), type_)
    return {
        "type": type_,
        "purchase": _string(data, "purchase", ID_MAX, required=True),
        "occurred_at": _timestamp(data, "occurred_at"),
        "milestone": milestone,
        "score": given_score,
        "comment": "" if comment is ABSENT else comment,
        "reason": "" if reason is ABSENT else reason,
        "external_id": None if external_id is ABSENT else external_id,
        "criteria_met": answers,
    }


CLEANERS = {"customer": clean_customer, "purchase": clean_purchase, "event": clean_event}
