"""HubSpot's "Send a webhook" workflow action, signed (v3) with `hubspot-api-client`'s own signature code."""

import json
import time
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from hubspot.utils.signature import Signature

from engagement.models import Engagement, Event, Purchase
from tenants.scoping import tenant_scope
from tests.factories import MemberFactory
from tests.intake.conftest import HUBSPOT_SECRET, address, log, stored

pytestmark = pytest.mark.django_db

MAPPING = {"won_stage": "closedwon", "lost_stage": "closedlost", "offering": "software"}


@pytest.fixture
def connection(connect):
    return connect("hubspot", MAPPING, secret=HUBSPOT_SECRET)


def deal(stage="closedwon", **extra):
    return {
        "hs_object_id": "9001", "dealstage": stage, "amount": "4800.50", "deal_currency_code": "EUR",
        "closedate": "2026-12-01T10:00:00Z", "company_id": "HS-CO-77", "company_name": "Globex",
        "owner_email": "rep@acme.test", **extra,
    }  # fmt: skip


def send(connection, body, *, secret=HUBSPOT_SECRET, timestamp=None, uri=None):
    payload = json.dumps(body)
    timestamp = str(timestamp if timestamp is not None else int(time.time() * 1000))
    uri = uri or f"{settings.SITE_URL}{address(connection)}"  # the address PoV shows, which HubSpot signs
    signature = Signature.get_signature(secret, payload, "v3", uri, "POST", timestamp)
    return Client().post(address(connection), payload, content_type="application/json",
                         HTTP_X_HUBSPOT_SIGNATURE_V3=signature, HTTP_X_HUBSPOT_REQUEST_TIMESTAMP=timestamp)  # fmt: skip


@pytest.fixture
def rep(tenant):
    return MemberFactory(tenant=tenant, user__email="rep@acme.test", role="sales")


def test_a_won_deal_is_a_purchase_with_its_company_and_rep(tenant, connection, rep):
    response = send(connection, deal())

    assert response.status_code == 200, response.content
    with tenant_scope(tenant):
        purchase = Purchase.objects.select_related("customer", "offering").get()
        engagement = Engagement.objects.select_related("sales_rep__user").get()
    assert (purchase.external_id, purchase.offering.key) == ("9001", "software")
    assert (purchase.customer.external_id, purchase.customer.name) == ("HS-CO-77", "Globex")
    assert (purchase.amount, purchase.currency) == (Decimal("4800.50"), "EUR")
    assert purchase.purchased_at.isoformat() == "2026-12-01T10:00:00+00:00"
    assert engagement.sales_rep.user.email == "rep@acme.test"


def test_a_deal_property_carries_what_the_customer_expects(tenant, connection, rep):
    response = send(connection, deal(pov_success_criteria="Invoices out in one day\nTeam trained"))

    assert response.json()["outcome"] == "accepted"
    with tenant_scope(tenant):
        assert Purchase.objects.get().success_criteria == ["Invoices out in one day", "Team trained"]


def test_a_resent_deal_records_nothing_twice(tenant, connection, rep):
    send(connection, deal())
    before = stored(tenant)

    again = send(connection, deal())

    assert again.json()["outcome"] == "accepted"
    assert stored(tenant) == before


def test_hubspots_object_payload_with_millisecond_dates_is_read(tenant, connection, rep):
    body = {"objectId": 9002, "properties": {
        "dealstage": {"value": "closedwon"}, "amount": {"value": "100"}, "deal_currency_code": {"value": "USD"},
        "closedate": {"value": "1764583200000"}, "company_name": {"value": "Initech"},
    }}  # fmt: skip

    assert send(connection, body).json()["outcome"] == "accepted"

    with tenant_scope(tenant):
        purchase = Purchase.objects.select_related("customer").get()
    assert (purchase.external_id, purchase.customer.external_id) == ("9002", "Initech")
    assert purchase.purchased_at.isoformat() == "2025-12-01T10:00:00+00:00"


def test_a_rep_who_is_not_a_member_is_left_empty_and_said_so(tenant, connection):
    response = send(connection, deal())

    assert response.json()["outcome"] == "accepted"
    assert "Sales rep left empty" in response.json()["summary"]
    with tenant_scope(tenant):
        assert Engagement.objects.get().sales_rep is None


def test_a_deal_lost_after_its_purchase_is_lost(tenant, connection, rep):
    send(connection, deal())

    lost = send(connection, deal("closedlost", closed_lost_reason="Went with a competitor"))
    send(connection, deal("closedlost", closed_lost_reason="Went with a competitor"))

    assert lost.json()["outcome"] == "accepted"
    with tenant_scope(tenant):
        assert Engagement.objects.get().status == "lost"
        event = Event.objects.get(type="lost")
    assert (event.reason, event.source) == ("Went with a competitor", "hubspot")


def test_a_deal_lost_before_it_was_won_records_nothing(tenant, connection):
    response = send(connection, deal("closedlost"))

    assert response.json()["outcome"] == "ignored"
    assert stored(tenant) == {"purchases": [], "engagements": [], "events": []}


def test_another_stage_is_ignored(tenant, connection):
    response = send(connection, deal("appointmentscheduled"))

    assert response.json()["outcome"] == "ignored"
    assert "appointmentscheduled" in log(connection)[0]["summary"]
    assert stored(tenant)["purchases"] == []


@pytest.mark.parametrize(
    "signed",
    [
        pytest.param({"secret": "someone-elses-secret"}, id="another secret"),
        pytest.param({"timestamp": int((time.time() - 301) * 1000)}, id="older than 5 minutes"),
        pytest.param({"uri": "http://127.0.0.1:8000/in/acme/elsewhere"}, id="signed for another address"),
    ],
)
def test_a_bad_signature_is_refused_and_stores_nothing(tenant, connection, signed):
    response = send(connection, deal(), **signed)

    assert response.status_code == 401
    assert "X-HubSpot" in response.json()["detail"]
    assert stored(tenant)["purchases"] == []
    assert log(connection)[0]["outcome"] == "rejected"


def test_an_unsigned_request_is_refused(tenant, connection):
    response = Client().post(address(connection), json.dumps(deal()), content_type="application/json")

    assert response.status_code == 401
    assert stored(tenant)["purchases"] == []


def test_a_deal_without_a_company_is_rejected_saying_what_to_add(tenant, connection):
    body = {k: v for k, v in deal().items() if k not in ("company_id", "company_name")}

    response = send(connection, body)

    assert response.json()["outcome"] == "rejected"
    assert "company_id" in response.json()["summary"]
    assert stored(tenant)["purchases"] == []


def test_a_deal_without_a_close_date_is_rejected_naming_it(tenant, connection):
    body = {k: v for k, v in deal().items() if k != "closedate"}

    response = send(connection, body)

    assert response.json()["outcome"] == "rejected"
    assert "purchased_at" in response.json()["summary"]
    assert stored(tenant)["purchases"] == []


def test_a_timestamp_ahead_of_the_clock_is_refused(tenant, connection):
    response = send(connection, deal(), timestamp=int((time.time() + 600) * 1000))

    assert response.status_code == 401
    assert stored(tenant)["purchases"] == []


def test_a_signature_that_is_not_ascii_is_refused(tenant, connection):
    payload = json.dumps(deal())
    headers = {"HTTP_X_HUBSPOT_SIGNATURE_V3": "é", "HTTP_X_HUBSPOT_REQUEST_TIMESTAMP": str(int(time.time() * 1000))}
    response = Client().post(address(connection), payload, content_type="application/json", **headers)

    assert response.status_code == 401


def test_criteria_that_do_not_fit_are_cut_to_fit_and_the_deal_is_kept(tenant, connection, rep):
    written = ";".join([f"Outcome {n}" for n in range(12)] + ["x" * 250])
    response = send(connection, deal(pov_success_criteria=written))

    assert response.json()["outcome"] == "accepted"
    with tenant_scope(tenant):
        assert Purchase.objects.get().success_criteria == [f"Outcome {n}" for n in range(10)]
    response = send(connection, deal(hs_object_id="9002", pov_success_criteria="x" * 250))
    with tenant_scope(tenant):
        assert Purchase.objects.get(external_id="9002").success_criteria == ["x" * 200]
