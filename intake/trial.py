"""The "Send a test" button: a sample of what the vendor sends, signed with the connection's own secret,
through the same checks and handlers as a real arrival, in a transaction that is then rolled back. The
log shows what a real one would have done; nothing of it is stored."""

import base64
import json
import time

import stripe
from django.db import transaction
from hubspot.utils.signature import Signature

from intake import from_hubspot, from_segment, from_stripe, services
from intake.models import Connection, Kind, Outcome
from intake.recording import Refused, Result

TEST_URI = "https://pov.test/in"  # a HubSpot signature covers the URI; the test signs and checks the same one


class _RolledBack(Exception):
    def __init__(self, result: Result):
        self.result = result


def send_test(connection: Connection) -> Result:
    try:
        with transaction.atomic():
            raise _RolledBack(_run(connection))
    except _RolledBack as done:
        result = done.result
    except Refused as exc:
        result = Result(Outcome.REJECTED, exc.message)
    summary = f"Test (nothing stored): {result.summary}"
    services.arrival_log(tenant=connection.tenant, connection=connection, outcome=result.outcome, summary=summary,
                         vendor_id="test")  # fmt: skip
    return Result(result.outcome, summary, "test")


def _run(connection: Connection) -> Result:
    if not connection.enabled:
        raise Refused("This connection is switched off: a real arrival would be refused.")
    if connection.kind == Kind.STRIPE:
        body = json.dumps(_stripe_sample(connection))
        header = (
            stripe.WebhookSignature.generate_signature_header(body, connection.secret) if connection.secret else None
        )
        return from_stripe.handle(connection, from_stripe.verified_event(connection, body.encode(), header))
    if connection.kind == Kind.HUBSPOT:
        body, timestamp = json.dumps(_hubspot_sample(connection)), str(int(time.time() * 1000))
        signature = (
            Signature.get_signature(connection.secret, body, "v3", TEST_URI, "POST", timestamp)
            if connection.secret
            else ""
        )
        headers = {from_hubspot.SIGNATURE: signature, from_hubspot.TIMESTAMP: timestamp}
        return from_hubspot.handle(connection, from_hubspot.verified_deal(connection, body.encode(), headers, TEST_URI))
    authorization = "Basic " + base64.b64encode(f"{connection.secret}:".encode()).decode()
    data = from_segment.verified_body(connection, json.dumps(_segment_sample(connection)).encode(), authorization)
    return from_segment.handle(connection, "batch", data)


def _stripe_sample(connection: Connection) -> dict:
    """What Stripe sends for the first mapped id: a paid checkout of a payment link (checkout events carry
    no line items), or else a subscription's first paid invoice of that price or product."""
    mapped = list(connection.mapping.get("prices", {})) or ["price_test"]
    link = next((key for key in mapped if key.startswith("plink_")), None)
    customer = {"customer": "cus_test_pov", "currency": "usd"}
    if link:
        details = {"email": "test@example.com", "name": "Test customer"}
        obj = {"id": "cs_test_pov", "mode": "payment", "payment_status": "paid", "payment_link": link,
               "customer_details": details, "amount_total": 10000}  # fmt: skip
        kind = "checkout.session.completed"
    else:
        obj = {"id": "in_test_pov", "billing_reason": "subscription_create", "subscription": "sub_test_pov",
               "customer_email": "test@example.com", "customer_name": "Test customer", "amount_paid": 10000,
               "lines": {"data": [{"price": {"id": mapped[0], "product": mapped[0]}}]}}  # fmt: skip
        kind = "invoice.paid"
    return {"id": "evt_test_pov", "type": kind, "created": int(time.time()), "data": {"object": obj | customer}}


def _hubspot_sample(connection: Connection) -> dict:
    return {
        "hs_object_id": "test-deal", "dealstage": connection.mapping.get("won_stage", ""), "amount": "100",
        "closedate": str(int(time.time() * 1000)),
        "deal_currency_code": "USD", "company_id": "test-company", "company_name": "Test company",
    }  # fmt: skip


def _segment_sample(connection: Connection) -> dict:
    traits = {"name": "Test customer", "company": {"id": "test-customer", "name": "Test customer"}}
    identify = {"type": "identify", "messageId": "test-identify", "userId": "test-customer", "traits": traits}
    tracks = [
        {
            "type": "track",
            "event": name,
            "messageId": f"test-{i}",
            "userId": "test-customer",
            "context": {"traits": traits},
        }
        for i, name in enumerate(connection.mapping.get("events", {}))
    ]
    return {"batch": [identify, *tracks]}
