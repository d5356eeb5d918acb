"""POST /purchases/: the point of sale opens an engagement; a replay is 200, a different body 409."""

from datetime import timedelta

import pytest
from django.utils import timezone

from engagement.cleaners import when
from engagement.models import Customer, Engagement, Purchase
from tenants.scoping import tenant_scope
from tests.api.conftest import ago, count, error_of, iso

PURCHASE_KEYS = {
    "external_id", "customer", "offering", "purchased_at", "amount", "currency", "success_criteria", "engagement"
}  # fmt: skip
ENGAGEMENT_KEYS = {
    "id", "status", "purchase", "customer", "offering", "success_criteria", "owner", "sales_rep", "pos_at",
    "next_milestone",
    "next_due_at", "pov_at", "days_to_value", "calendar_days_to_value", "lost_at", "churned_at", "paused_since",
    "updated_at",
}  # fmt: skip
BOUGHT = ago(3)


def _body(**changes):
    body = {
        "external_id": "P-2",
        "customer": {"external_id": "C-2", "name": "Grace", "segment": "smb"},
        "offering": "software",
        "purchased_at": iso(BOUGHT),
        "amount": "1200.50",
        "currency": "EUR",
        "owner": "owner@acme.test",
        "sales_rep": "sales@acme.test",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.fixture
def setup(software, members):
    return software


def test_post_creates_201_with_the_engagement(acme, api, setup):
    response = api.post("purchases/", _body())
    assert response.status_code == 201
    body = response.json()
    assert set(body) == PURCHASE_KEYS
    assert set(body["engagement"]) == ENGAGEMENT_KEYS
    engagement = body.pop("engagement")
    assert body == {
        "external_id": "P-2",
        "customer": "C-2",
        "offering": "software",
        "purchased_at": iso(BOUGHT).replace("+00:00", "Z"),
        "amount": "1200.50",
        "currency": "EUR",
        "success_criteria": [],
    }
    with tenant_scope(acme):
        stored = Engagement.objects.get()
    assert engagement["id"] == str(stored.id)
    assert engagement["purchase"] == {
        "external_id": "P-2", "purchased_at": body["purchased_at"], "amount": "1200.50", "currency": "EUR",
    }  # fmt: skip
    assert engagement["customer"] == {"external_id": "C-2", "name": "Grace", "segment": "smb"}
    assert (engagement["offering"], engagement["owner"], engagement["sales_rep"]) == (
        "software", "owner@acme.test", "sales@acme.test",
    )  # fmt: skip
    assert engagement["status"] == "on_track"
    assert engagement["next_milestone"] == "kickoff"
    assert engagement["pos_at"] == body["purchased_at"]
    assert engagement["next_due_at"] == iso(BOUGHT + timedelta(days=2)).replace("+00:00", "Z")
    for derived in ("pov_at", "days_to_value", "calendar_days_to_value", "lost_at", "churned_at", "paused_since"):
        assert engagement[derived] is None, derived
    with tenant_scope(acme):
        assert Customer.objects.get().name == "Grace"


def test_minimal_purchase_of_an_existing_customer(acme, api, setup, acme_purchase):
    body = {"external_id": "P-2", "customer": "C-1", "offering": "software", "purchased_at": iso(ago(1))}
    response = api.post("purchases/", body)
    assert response.status_code == 201
    out = response.json()
    assert (out["customer"], out["amount"], out["currency"]) == ("C-1", None, None)
    assert (out["engagement"]["owner"], out["engagement"]["sales_rep"]) == (None, None)
    assert count(acme, Customer) == 1


def test_offset_is_kept_as_the_same_instant(api, setup):
    out = api.post("purchases/", _body(purchased_at="2026-01-15T09:00:00+02:00")).json()
    assert out["purchased_at"] == "2026-01-15T07:00:00Z"


def test_same_external_id_and_body_is_200_with_the_same_object(acme, api, setup):
    first = api.post("purchases/", _body())
    second = api.post("purchases/", _body())
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json()
    assert count(acme, Purchase) == count(acme, Engagement) == 1


def test_replay_by_customer_reference_is_200(api, setup):
    assert api.post("purchases/", _body()).status_code == 201
    assert api.post("purchases/", _body(customer="C-2")).status_code == 200


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": "1300.00"}, "amount"),
        ({"amount": ..., "currency": ...}, "amount"),
        ({"currency": "USD"}, "currency"),
        ({"offering": "training"}, "offering"),
        ({"customer": {"external_id": "C-3", "name": "Alan"}}, "customer"),
        ({"purchased_at": iso(BOUGHT + timedelta(hours=1))}, "purchased_at"),
        ({"owner": "second@acme.test"}, "owner"),
        ({"sales_rep": "second@acme.test"}, "sales_rep"),
    ],
)
def test_same_external_id_with_another_value_is_409_naming_it(acme, api, setup, actor, changes, field):
    api.post("offerings/", {"key": "training", "name": "Training", "milestones": [
        {"key": "intro", "name": "Intro", "due_day": 1}]})  # fmt: skip
    first = api.post("purchases/", _body())
    assert first.status_code == 201
    error = error_of(api.post("purchases/", _body(**changes)), 409, "conflict")
    if field == "amount" and "currency" not in changes:
        assert error["fields"] == {"amount": ["Differs from the stored purchase."]}
    elif field == "amount":
        assert set(error["fields"]) == {"amount", "currency"}
    else:
        assert error["fields"] == {field: ["Differs from the stored purchase."]}
    assert error["message"].startswith("Purchase 'P-2' already exists with other values for: ")
    assert count(acme, Purchase) == 1
    assert api.get(f"engagements/{first.json()['engagement']['id']}/").json()["owner"] == "owner@acme.test"


def test_conflicting_replay_does_not_touch_the_inline_customer(acme, api, setup):
    assert api.post("purchases/", _body()).status_code == 201
    conflicting = _body(amount="1.00", customer={"external_id": "C-2", "name": "Renamed"})
    error_of(api.post("purchases/", conflicting), 409, "conflict")
    with tenant_scope(acme):
        assert Customer.objects.get(external_id="C-2").name == "Grace"


def test_unknown_customer_reference_is_404(acme, api, setup):
    error = error_of(api.post("purchases/", _body(customer="C-404")), 404, "not_found")
    assert error["fields"] == {"customer": ["No customer 'C-404'; send the customer as an object to create it."]}
    assert count(acme, Purchase) == 0


def test_unknown_offering_is_404_and_the_inline_customer_is_not_created(acme, api, setup):
    error = error_of(api.post("purchases/", _body(offering="hardware")), 404, "not_found")
    assert error["fields"] == {"offering": ["No offering 'hardware'."]}
    assert count(acme, Purchase) == 0
    assert count(acme, Customer) == 0


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"purchased_at": "2026-01-15T09:00:00"}, {"purchased_at"}),
        ({"purchased_at": "yesterday"}, {"purchased_at"}),
        ({"purchased_at": ...}, {"purchased_at"}),
        ({"external_id": ...}, {"external_id"}),
        ({"offering": ...}, {"offering"}),
        ({"customer": ...}, {"customer"}),
        ({"customer": 42}, {"customer"}),
        ({"customer": {"external_id": "C-2"}}, {"customer.name"}),
        ({"customer": {"external_id": "C-2", "name": "G", "vip": True}}, {"customer.vip"}),
        ({"currency": ...}, {"currency"}),
        ({"currency": "EURO"}, {"currency"}),
        ({"currency": "E1R"}, {"currency"}),
        ({"amount": "12.345"}, {"amount"}),
        ({"amount": "lots"}, {"amount"}),
        ({"owner": "nobody@acme.test"}, {"owner"}),
        ({"owner": "owner@charlie.test"}, {"owner"}),
        ({"sales_rep": "not-an-email"}, {"sales_rep"}),
        ({"discount": 10, "note": "x"}, {"discount", "note"}),
    ],
)
def test_invalid_purchase_is_400_naming_the_field(acme, api, setup, changes, fields):
    error = error_of(api.post("purchases/", _body(**changes)), 400, "invalid")
    assert set(error["fields"]) == fields
    assert count(acme, Purchase) == 0
    assert count(acme, Customer) == 0


def test_naive_timestamp_message_says_so(api, setup):
    error = error_of(api.post("purchases/", _body(purchased_at="2026-01-15T09:00:00")), 400, "invalid")
    assert error["fields"]["purchased_at"] == [
        "Give a time zone offset (e.g. 2026-05-01T09:00:00+02:00 or ...Z); naive times are ambiguous."
    ]


def test_purchase_in_the_future_is_400(acme, api, setup):
    later = timezone.now() + timedelta(minutes=10)
    error = error_of(api.post("purchases/", _body(purchased_at=iso(later))), 400, "invalid")
    assert error["fields"] == {"purchased_at": [f"{when(later)} is more than 5 minutes in the future."]}
    assert count(acme, Purchase) == 0


def test_purchase_a_few_minutes_ahead_is_accepted(api, setup):
    # Clocks of CRM and billing systems drift; up to 5 minutes ahead is tolerated.
    assert api.post("purchases/", _body(purchased_at=iso(timezone.now() + timedelta(minutes=3)))).status_code == 201


def test_owner_email_matches_case_insensitively(api, setup):
    out = api.post("purchases/", _body(owner="OWNER@Acme.Test")).json()
    assert out["engagement"]["owner"] == "owner@acme.test"


def test_purchases_has_no_list_or_detail(api, setup):
    error_of(api.get("purchases/"), 405, "method_not_allowed")
    error_of(api.get("purchases/P-2/"), 404, "not_found")


@pytest.mark.parametrize(
    "changes",
    [
        {"purchased_at": BOUGHT.astimezone(timezone.get_fixed_timezone(120)).isoformat()},
        {"amount": "1200.5"},
        {"amount": 1200.50},
        {"currency": "eur"},
        {"owner": ..., "sales_rep": ...},
        {"customer": "C-2"},
    ],
    ids=["same-instant-other-offset", "amount-one-decimal", "amount-number", "currency-lowercase", "no-owner",
         "customer-by-reference"],
)  # fmt: skip
def test_equal_values_written_differently_are_a_200_replay(acme, api, setup, changes):
    first = api.post("purchases/", _body())
    replay = api.post("purchases/", _body(**changes))
    assert (first.status_code, replay.status_code) == (201, 200), replay.content
    assert replay.json() == first.json()
    assert count(acme, Purchase) == 1
