"""Stripe's webhook events to purchases and losses (README, "Connect Stripe / HubSpot / your analytics").

- `checkout.session.completed` (or `...async_payment_succeeded`) of a one-off payment: a purchase whose
  external id is the checkout session's id. A subscription's checkout is left to its first invoice, so
  that one subscription makes one purchase.
- `invoice.paid` with billing reason `subscription_create`: a purchase whose external id is the
  subscription's id. Later invoices are renewals.
- `customer.subscription.deleted`: the purchase of that subscription is lost (churned, if it had
  reached PoV).
The Stripe customer's id is the customer's external id. The offering is the one the connection maps a
price, product or payment link of the payment to. Stripe's event id keeps a redelivery from recording
anything twice: a purchase is recorded once by its external id, a loss by the event's id.
"""

from decimal import Decimal
from typing import Any

import stripe

from intake import recording
from intake.models import Connection, Outcome
from intake.recording import Refused, Result, dig, ignored, iso_time, object_at

TOLERANCE_SECONDS = 300  # Stripe's own: a signature older than 5 minutes is a replay
# Stripe's amounts are in the currency's smallest unit; these have none or three decimals
# (Stripe's "Zero-decimal currencies" and "Three-decimal currencies").
ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())  # noqa: SIM905
CENT = Decimal("0.01")


def verified_event(connection: Connection, payload: bytes, header: str | None) -> dict:
    """The event, once its Stripe-Signature header proves the connection's signing secret made it within
    the tolerance (any of the `v1` values matches: Stripe signs with both secrets while one is rolled)."""
    if not connection.secret:
        raise Refused(
            "This connection has no signing secret yet: paste the endpoint's whsec_… secret from Stripe.", 401
        )
    if header is not None and not header.isascii():
        raise Refused("The Stripe-Signature header does not verify: it is not ASCII.", 401)
    try:
        stripe.WebhookSignature.verify_header(payload, header, connection.secret, tolerance=TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        raise Refused(f"The Stripe-Signature header does not verify: {exc}", 401) from None
    except UnicodeDecodeError:
        raise Refused("The body is not UTF-8 text.") from None
    event = recording.read_json(payload)
    if not isinstance(event, dict) or not isinstance(dig(event, "data", "object"), dict):
        raise Refused("This is not a Stripe event: it has no data.object.")
    return event


def handle(connection: Connection, event: dict) -> Result:
    kind, event_id = str(event.get("type", "")), str(event.get("id") or "")
    handler = HANDLERS.get(kind)
    if handler is None:
        return ignored(f"PoV does not use {kind or 'untyped'} events.", event_id)
    if not event_id:
        return Result(Outcome.REJECTED, "The event has no id, which keeps a redelivery from counting twice.")
    return handler(connection, event, event["data"]["object"])


# Handlers -----------------------------------------------------------------------------------------


def _checkout_completed(connection: Connection, event: dict, session: dict) -> Result:
    event_id = event["id"]
    if session.get("mode") == "subscription":
        return ignored("A subscription's checkout: its first invoice.paid records the purchase.", event_id)
    if session.get("payment_status") not in ("paid", "no_payment_required"):  # the latter: a 100% discount
        return ignored("Not paid yet: checkout.session.async_payment_succeeded will record it.", event_id)
    details = object_at(session, "customer_details")
    return _purchase(
        connection, event, external_id=session.get("id"), customer_id=session.get("customer"),
        email=details.get("email"), name=details.get("name"), amount=session.get("amount_total"),
        currency=session.get("currency"), paid_at=event.get("created"), metadata=session.get("metadata"),
        # Stripe's checkout events carry no line items: a one-off checkout is mapped by its payment link.
        ids=[session.get("payment_link")],
    )  # fmt: skip


def _first_invoice_paid(connection: Connection, event: dict, invoice: dict) -> Result:
    event_id = event["id"]
    if invoice.get("billing_reason") != "subscription_create":
        return ignored("A renewal or a one-off invoice: only a subscription's first invoice is a purchase.", event_id)
    subscription = invoice.get("subscription") or dig(invoice, "parent", "subscription_details", "subscription")
    return _purchase(
        connection, event, external_id=subscription, customer_id=invoice.get("customer"),
        email=invoice.get("customer_email"), name=invoice.get("customer_name"), amount=invoice.get("amount_paid"),
        currency=invoice.get("currency"),
        paid_at=dig(invoice, "status_transitions", "paid_at") or event.get("created"),
        metadata=dig(invoice, "subscription_details", "metadata")
        or dig(invoice, "parent", "subscription_details", "metadata"),
        ids=_line_item_ids(dig(invoice, "lines", "data")),
    )  # fmt: skip


def _subscription_deleted(connection: Connection, event: dict, subscription: dict) -> Result:
    event_id, purchase = event["id"], subscription.get("id")
    if not isinstance(purchase, str) or not recording.purchase_exists(purchase):
        return ignored(f"No purchase {purchase!r}: the subscription was not recorded by PoV.", event_id)
    reason = dig(subscription, "cancellation_details", "reason") or "cancelled"
    ended = subscription.get("ended_at") or subscription.get("canceled_at") or event.get("created")
    body = {
        "type": "lost", "purchase": purchase, "occurred_at": iso_time(ended), "external_id": f"stripe:{event_id}",
        "reason": f"Stripe subscription ended ({str(reason).replace('_', ' ')})",
    }  # fmt: skip
    return recording.record(connection, "event", body, event_id)


HANDLERS = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "invoice.paid": _first_invoice_paid,
    "customer.subscription.deleted": _subscription_deleted,
}


# The purchase -------------------------------------------------------------------------------------


def _purchase(connection: Connection, event: dict, *, external_id: Any, customer_id: Any, email: Any, name: Any,
              amount: Any, currency: Any, paid_at: Any, ids: list[Any], metadata: Any = None) -> Result:  # fmt: skip
    event_id = event["id"]
    mapped = object_at(connection.mapping, "prices")
    offering = next((mapped[i] for i in ids if isinstance(i, str) and i in mapped), None)
    if offering is None:
        seen = ", ".join(i for i in ids if isinstance(i, str)) or "none in the event"
        return ignored(
            f"No price, product or payment link of this payment is mapped to an offering ({seen}).", event_id
        )
    customer_id = customer_id or email  # a guest checkout has no Stripe customer, only an email
    if not isinstance(external_id, str) or not isinstance(customer_id, str):
        return Result(Outcome.REJECTED, "The event names no subscription or session, or no customer.", event_id)
    body = {
        "external_id": external_id,
        # Without an email in the event, a stored one stays.
        "customer": {"external_id": customer_id, "name": name or email or customer_id}
        | ({"email": email} if email else {}),
        "offering": offering,
        "purchased_at": iso_time(paid_at),
        "amount": _amount(amount, currency),
        "currency": (currency or "").upper(),
        # The checkout's or subscription's metadata may carry what the customer expects (README).
        "success_criteria": recording.criteria(dig(metadata, "success_criteria")),
    }
    return recording.record(connection, "purchase", body, event_id)


def _line_item_ids(items: Any) -> list[Any]:
    """Price and product ids of the line items, in the shapes of Stripe's older and newer API versions."""
    ids = []
    for item in items if isinstance(items, list) else ():
        ids += [dig(item, "price", "id"), dig(item, "price", "product")]
        ids += [dig(item, "pricing", "price_details", "price"), dig(item, "pricing", "price_details", "product")]
    return ids


def _amount(minor: Any, currency: Any) -> str | None:
    """Stripe's integer in the currency's smallest unit as an amount. A three-decimal currency's last digit
    is always 0 at Stripe, so it fits PoV's two decimals; anything else is left for the cleaner to refuse."""
    if isinstance(minor, bool) or not isinstance(minor, int) or not isinstance(currency, str):
        return None
    code = currency.upper()
    places = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    amount = Decimal(minor).scaleb(-places)
    return str(amount.quantize(CENT) if places == 3 and amount == amount.quantize(CENT) else amount)
