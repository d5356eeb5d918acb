"""Stripe's webhook events, built and signed with the `stripe` package, posted to a connection."""

import json
import time
from decimal import Decimal

import pytest
import stripe

from engagement.models import Engagement, Event, Purchase
from tenants.scoping import tenant_scope
from tests.intake.conftest import STRIPE_SECRET, log, post, stored

pytestmark = pytest.mark.django_db

PRICE = "price_1Onboarding"
LINK = "plink_1Onboarding"


@pytest.fixture
def connection(connect):
    return connect("stripe", {"prices": {PRICE: "software", "prod_Other": "software", LINK: "software"}},
                   secret=STRIPE_SECRET)  # fmt: skip


def event(kind, obj, *, event_id="evt_1", created=None):
    return {"id": event_id, "object": "event", "type": kind, "created": created or int(time.time()) - 60,
            "data": {"object": obj}}  # fmt: skip


def checkout(session_id="cs_1", *, mode="payment", link=LINK, amount=125000, currency="usd", customer="cus_A"):
    """A checkout session as Stripe's event carries it: no line items, the payment link it came from."""
    return {
        "id": session_id, "object": "checkout.session", "mode": mode, "payment_status": "paid",
        "customer": customer, "customer_details": {"email": "ada@buyer.test", "name": "Ada Buyer"},
        "amount_total": amount, "currency": currency, "payment_link": link,
    }  # fmt: skip


def first_invoice(subscription="sub_1", *, reason="subscription_create"):
    return {
        "id": "in_1", "object": "invoice", "billing_reason": reason, "subscription": subscription,
        "customer": "cus_B", "customer_email": "bo@buyer.test", "customer_name": "Bo Buyer", "amount_paid": 9900,
        "currency": "eur", "status_transitions": {"paid_at": int(time.time()) - 120},
        "lines": {"data": [{"price": {"id": "price_unmapped", "product": "prod_Other"}}]},
    }  # fmt: skip


def send(connection, body, *, secret=STRIPE_SECRET, timestamp=None, header=None):
    payload = json.dumps(body)
    header = header or stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return post(connection, payload, {"Stripe-Signature": header})


def test_a_paid_checkout_is_a_purchase_of_the_mapped_offering(tenant, connection):
    response = send(connection, event("checkout.session.completed", checkout()))

    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "accepted"
    with tenant_scope(tenant):
        purchase = Purchase.objects.select_related("customer", "offering").get()
        engagement = Engagement.objects.get()
        assert (purchase.external_id, purchase.offering.key) == ("cs_1", "software")
        assert (purchase.customer.external_id, purchase.customer.name) == ("cus_A", "Ada Buyer")
        assert purchase.customer.email == "ada@buyer.test"
        assert (purchase.amount, purchase.currency) == (Decimal("1250.00"), "USD")
        assert engagement.status == "on_track"
    assert log(connection) == [{"outcome": "accepted", "summary": "Recorded purchase cs_1 of software.",
                                "vendor_id": "evt_1"}]  # fmt: skip


def test_a_redelivered_event_records_nothing_twice(tenant, connection):
    body = event("checkout.session.completed", checkout())
    assert send(connection, body).status_code == 200
    before = stored(tenant)

    again = send(connection, body)

    assert again.status_code == 200
    assert again.json()["summary"].startswith("Already recorded")
    assert stored(tenant) == before
    assert len(before["purchases"]) == 1


def test_a_subscription_is_one_purchase_from_its_first_invoice(tenant, connection):
    send(connection, event("checkout.session.completed", checkout("cs_sub", mode="subscription"), event_id="evt_a"))
    send(connection, event("invoice.paid", first_invoice(), event_id="evt_b"))
    renewal = send(connection, event("invoice.paid", first_invoice(reason="subscription_cycle"), event_id="evt_c"))

    with tenant_scope(tenant):
        purchase = Purchase.objects.select_related("customer").get()
    assert (purchase.external_id, purchase.customer.external_id) == ("sub_1", "cus_B")
    assert (purchase.amount, purchase.currency) == (Decimal("99.00"), "EUR")  # mapped by its product
    assert renewal.json()["outcome"] == "ignored"
    assert [line["outcome"] for line in log(connection)] == ["ignored", "accepted", "ignored"]


def test_metadata_carries_what_the_customer_expects_into_the_purchase(tenant, connection):
    session = {**checkout(), "metadata": {"success_criteria": "Invoices out in one day; Team trained"}}
    invoice = first_invoice()
    invoice["parent"] = {"subscription_details": {"metadata": {"success_criteria": "Reports by Monday"}}}

    send(connection, event("checkout.session.completed", session, event_id="evt_a"))
    send(connection, event("invoice.paid", invoice, event_id="evt_b"))

    with tenant_scope(tenant):
        criteria = dict(Purchase.objects.values_list("external_id", "success_criteria"))
    assert criteria == {"cs_1": ["Invoices out in one day", "Team trained"], "sub_1": ["Reports by Monday"]}


def test_a_cancelled_subscription_is_lost_once(tenant, connection):
    send(connection, event("invoice.paid", first_invoice(), event_id="evt_b"))
    cancelled = {"id": "sub_1", "object": "subscription", "ended_at": int(time.time()) - 30,
                 "cancellation_details": {"reason": "cancellation_requested"}}  # fmt: skip
    body = event("customer.subscription.deleted", cancelled, event_id="evt_d")

    assert send(connection, body).json()["outcome"] == "accepted"
    assert send(connection, body).json()["outcome"] == "accepted"

    with tenant_scope(tenant):
        assert Engagement.objects.get().status == "lost"
        lost = Event.objects.get(type="lost")
    assert (lost.external_id, lost.source) == ("stripe:evt_d", "stripe")
    assert lost.reason == "Stripe subscription ended (cancellation requested)"


def test_a_subscription_pov_never_saw_is_ignored(tenant, connection):
    response = send(connection, event("customer.subscription.deleted", {"id": "sub_unknown"}))

    assert response.json()["outcome"] == "ignored"
    assert stored(tenant)["events"] == []


def test_amounts_in_currencies_without_cents_are_whole(tenant, connection):
    send(connection, event("checkout.session.completed", checkout(amount=5000, currency="jpy")))

    with tenant_scope(tenant):
        assert (Purchase.objects.get().amount, Purchase.objects.get().currency) == (Decimal("5000"), "JPY")


def test_an_unmapped_price_is_ignored_naming_the_ids_it_had(tenant, connection):
    response = send(connection, event("checkout.session.completed", checkout(link="plink_Nobody")))

    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert "plink_Nobody" in log(connection)[0]["summary"]
    assert stored(tenant)["purchases"] == []


def test_an_event_pov_does_not_use_is_ignored(connection):
    response = send(connection, event("charge.refunded", {"id": "ch_1"}))

    assert response.json()["outcome"] == "ignored"
    assert log(connection)[0]["summary"] == "PoV does not use charge.refunded events."


@pytest.mark.parametrize(
    "signed",
    [
        pytest.param({"secret": "whsec_someone_else"}, id="another secret"),
        pytest.param({"timestamp": int(time.time()) - 301}, id="older than 5 minutes"),
        pytest.param({"header": "t=1,v0=abc"}, id="no v1 signature"),
        pytest.param({"header": "garbage"}, id="unreadable header"),
    ],
)
def test_a_bad_signature_is_refused_and_stores_nothing(tenant, connection, signed):
    response = send(connection, event("checkout.session.completed", checkout()), **signed)

    assert response.status_code == 401
    assert "Stripe-Signature" in response.json()["detail"]
    assert stored(tenant)["purchases"] == []
    assert log(connection)[0]["outcome"] == "rejected"


def test_a_missing_signature_is_refused(tenant, connection):
    response = post(connection, json.dumps(event("checkout.session.completed", checkout())))

    assert response.status_code == 401
    assert stored(tenant)["purchases"] == []


def test_any_v1_value_may_match_while_a_secret_is_rolled(tenant, connection):
    """Stripe signs with the old and the new secret for a while: one header, two v1 values."""
    payload = json.dumps(event("checkout.session.completed", checkout()))
    now = int(time.time())
    old = stripe.WebhookSignature.generate_signature_header(payload, "whsec_old", timestamp=now)
    new = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET, timestamp=now)
    header = f"{old},v1={new.split('v1=')[1]}"

    response = post(connection, payload, {"Stripe-Signature": header})

    assert response.status_code == 200, response.content
    assert len(stored(tenant)["purchases"]) == 1


def test_another_companys_secret_does_not_open_this_connection(tenant, other_tenant, connection, actor):
    from intake import services

    with tenant_scope(other_tenant):
        services.connection_create(tenant=other_tenant, kind="stripe", name="Theirs", mapping={},
                                   secret="whsec_charlie", actor=actor)  # fmt: skip

    response = send(connection, event("checkout.session.completed", checkout()), secret="whsec_charlie")

    assert response.status_code == 401
    assert stored(tenant)["purchases"] == []


def test_the_address_under_another_company_is_not_found(tenant, other_tenant, connection):
    payload = json.dumps(event("checkout.session.completed", checkout()))
    header = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)
    from django.test import Client

    response = Client().post(f"/in/{other_tenant.slug}/{connection.pk}", payload, content_type="application/json",
                             HTTP_STRIPE_SIGNATURE=header)  # fmt: skip

    assert response.status_code == 404
    assert stored(tenant)["purchases"] == []


def test_a_switched_off_connection_refuses_so_stripe_retries(tenant, connection, actor):
    from intake import services

    with tenant_scope(tenant):
        services.connection_update(tenant=tenant, connection=connection, actor=actor, enabled=False)

    response = send(connection, event("checkout.session.completed", checkout()))

    assert response.status_code == 503
    assert stored(tenant)["purchases"] == []


def test_without_a_signing_secret_nothing_is_accepted(tenant, connect):
    connection = connect("stripe", {"prices": {PRICE: "software"}})

    response = send(connection, event("checkout.session.completed", checkout()))

    assert response.status_code == 401
    assert "no signing secret" in response.json()["detail"]
    assert stored(tenant)["purchases"] == []


def test_owner_rules_assign_what_stripe_brings(tenant, offering, connection, actor):
    from engagement import assignment
    from tests.factories import MemberFactory

    owner = MemberFactory(tenant=tenant, user__email="owner@acme.test", role="owner")
    with tenant_scope(tenant):
        assignment.rule_add(tenant=tenant, actor=actor, offering=offering, segment="", method="round_robin",
                            members=[owner])  # fmt: skip

    send(connection, event("checkout.session.completed", checkout()))

    with tenant_scope(tenant):
        assert Engagement.objects.get().owner_id == owner.id


def test_three_decimal_currencies_fit_two_decimals(tenant, connection):
    send(connection, event("checkout.session.completed", checkout(amount=12340, currency="kwd")))

    with tenant_scope(tenant):
        assert (Purchase.objects.get().amount, Purchase.objects.get().currency) == (Decimal("12.34"), "KWD")


def test_a_checkout_without_an_email_keeps_the_customers_stored_one(tenant, connection):
    send(connection, event("checkout.session.completed", checkout()))
    session = checkout("cs_2")
    session["customer_details"] = {"name": "Ada Buyer"}

    send(connection, event("checkout.session.completed", session, event_id="evt_2"))

    with tenant_scope(tenant):
        assert Purchase.objects.count() == 2
        assert Purchase.objects.select_related("customer").first().customer.email == "ada@buyer.test"


def test_a_free_checkout_is_a_purchase_too(tenant, connection):
    session = checkout(amount=0) | {"payment_status": "no_payment_required"}

    assert send(connection, event("checkout.session.completed", session)).json()["outcome"] == "accepted"


@pytest.mark.parametrize(
    ("body", "header"),
    [
        pytest.param("[" * 100_000 + "]" * 100_000, None, id="nesting deeper than the parser goes"),
        pytest.param(json.dumps({"id": "evt_1", "type": "x"}), None, id="no data.object"),
        pytest.param(json.dumps([1, 2]), None, id="not an object"),
        pytest.param(json.dumps({"type": "customer.subscription.deleted", "data": {"object": {}}}), None, id="no id"),
        pytest.param(
            json.dumps(event("customer.subscription.deleted", {"id": "sub_1", "ended_at": 10**20})),
            None,
            id="a time beyond any calendar",
        ),
        pytest.param(
            json.dumps(
                event("invoice.paid", {"billing_reason": "subscription_create", "lines": {"data": [1, "x", None]}})
            ),
            None,
            id="line items that are no objects",
        ),
        pytest.param("{}", "t=1,v1=é", id="a header that is not ASCII"),
        pytest.param(
            json.dumps(
                event("checkout.session.completed", checkout(link="plink_Nobody") | {"customer_details": "ada"})
            ),
            None,
            id="text where an object belongs",
        ),
    ],
)
def test_odd_input_gets_an_answer_not_an_error(tenant, connection, body, header):
    header = header or stripe.WebhookSignature.generate_signature_header(body, STRIPE_SECRET)

    response = post(connection, body, {"Stripe-Signature": header})

    assert response.status_code in (200, 400, 401), response.content
    assert stored(tenant)["purchases"] == []
    assert log(connection)[0]["outcome"] in ("ignored", "rejected")
