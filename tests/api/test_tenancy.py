"""The "charlie" tests: acme's objects do not exist for charlie's key (DESIGN.md tenancy rules)."""

import pytest

from engagement.models import Customer, Engagement, Event, Note, Offering, Purchase
from tenants.scoping import tenant_scope
from tests.api.conftest import JOURNEY, ago, count, error_of, iso

MODELS = (Customer, Offering, Purchase, Engagement, Event, Note)


def _rows(tenant):
    return {model.__name__: count(tenant, model) for model in MODELS}


@pytest.fixture
def both(acme, charlie, acme_purchase, charlie_data, members):
    """acme and charlie with one purchase each; the row counts of both before the test."""
    return {"acme": _rows(acme), "charlie": _rows(charlie)}


def _unchanged(acme, charlie, both):
    assert _rows(acme) == both["acme"]
    assert _rows(charlie) == both["charlie"]


def test_acme_detail_endpoints_are_404_for_charlie(acme, charlie, api, charlie_api, charlie_read_api, both,
                                                   acme_purchase):  # fmt: skip
    engagement_url = f"engagements/{acme_purchase.engagement.id}/"
    for client in (charlie_api, charlie_read_api):
        for path in ("customers/C-1/", "offerings/software/", engagement_url):
            error = error_of(client.get(path), 404, "not_found")
            assert error["message"] == "Not found."
    error_of(charlie_api.patch(engagement_url, {"owner": None}), 404, "not_found")
    error_of(charlie_api.patch(engagement_url, {"owner": "owner@charlie.test"}), 404, "not_found")
    _unchanged(acme, charlie, both)
    # The same requests with acme's key find them: the 404 is about the tenant, not the path.
    for path in ("customers/C-1/", "offerings/software/", engagement_url):
        assert api.get(path).status_code == 200, path


def test_the_404_for_another_tenants_object_equals_the_404_for_an_absent_one(charlie_api, both, acme_purchase):
    theirs = charlie_api.get(f"engagements/{acme_purchase.engagement.id}/")
    absent = charlie_api.get("engagements/00000000-0000-4000-8000-000000000000/")
    assert (theirs.status_code, theirs.json()) == (absent.status_code, absent.json())
    assert charlie_api.get("customers/C-1/").json() == charlie_api.get("customers/C-404/").json()


def test_charlie_cannot_record_events_on_acme_purchases(acme, charlie, charlie_api, both):
    body = {"type": "milestone", "purchase": "P-1", "milestone": "onboarded", "occurred_at": iso(ago(1)),
            "external_id": "E-charlie"}  # fmt: skip
    error = error_of(charlie_api.post("events/", body), 404, "not_found")
    assert error["fields"] == {"purchase": ["No purchase 'P-1'."]}
    # A duplicate of acme's event id is no duplicate for charlie either: still 404, nothing returned from acme.
    error_of(charlie_api.post("events/", {**body, "milestone": "kickoff", "external_id": "E-1"}), 404, "not_found")
    _unchanged(acme, charlie, both)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customer": "C-1"}, "customer"),
        ({"offering": "software"}, "offering"),
        ({"customer": {"external_id": "C-new", "name": "New"}, "offering": "software"}, "offering"),
    ],
)
def test_charlie_cannot_buy_with_acme_customers_or_offerings(acme, charlie, charlie_api, both, changes, field):
    body = {"external_id": "CH-P-2", "customer": "CH-1", "offering": "consulting", "purchased_at": iso(ago(1)),
            **changes}  # fmt: skip
    error = error_of(charlie_api.post("purchases/", body), 404, "not_found")
    assert set(error["fields"]) == {field}
    _unchanged(acme, charlie, both)


def test_charlie_cannot_assign_acme_members(acme, charlie, charlie_api, both, charlie_data):
    url = f"engagements/{charlie_data.engagement.id}/"
    error = error_of(charlie_api.patch(url, {"owner": "owner@acme.test"}), 400, "invalid")
    assert error["fields"] == {"owner": ["'owner@acme.test' is not a member of this company."]}
    body = {"external_id": "CH-P-2", "customer": "CH-1", "offering": "consulting", "purchased_at": iso(ago(1)),
            "sales_rep": "sales@acme.test"}  # fmt: skip
    error_of(charlie_api.post("purchases/", body), 400, "invalid")
    _unchanged(acme, charlie, both)


def test_lists_for_charlie_hold_none_of_acme_rows(charlie_api, charlie_read_api, api, both):
    for client in (charlie_api, charlie_read_api):
        assert [c["external_id"] for c in client.get("customers/").json()["results"]] == ["CH-1"]
        assert [o["key"] for o in client.get("offerings/").json()["results"]] == ["consulting"]
        rows = client.get("engagements/").json()["results"]
        assert [e["purchase"]["external_id"] for e in rows] == ["CH-P-1"]
        # Filters naming acme's values match nothing rather than leaking.
        for params in ({"offering": "software"}, {"owner": "owner@acme.test"}, {"segment": "enterprise"}):
            assert client.get("engagements/", params).json()["results"] == [], params
        assert client.get("customers/", {"search": "Ada"}).json()["results"] == []
    # And acme's lists hold none of charlie's.
    assert [c["external_id"] for c in api.get("customers/").json()["results"]] == ["C-1"]
    assert [e["purchase"]["external_id"] for e in api.get("engagements/").json()["results"]] == ["P-1"]


def test_same_external_ids_in_two_tenants_are_independent(acme, charlie, api, charlie_api, both):
    # charlie creates its own C-1, software and P-1: 201 each, acme's rows untouched.
    assert charlie_api.post("customers/", {"external_id": "C-1", "name": "Charlie's Ada"}).status_code == 201
    offering = {"key": "software", "name": "CH", "milestones": JOURNEY[:1]}
    assert charlie_api.put("offerings/software/", offering).status_code == 201
    body = {"external_id": "P-1", "customer": "C-1", "offering": "software", "purchased_at": iso(ago(2))}
    assert charlie_api.post("purchases/", body).status_code == 201
    assert api.get("customers/C-1/").json()["name"] == "Ada"
    assert len(api.get("offerings/software/").json()["milestones"]) == 3
    with tenant_scope(acme):
        assert Purchase.objects.get(external_id="P-1").purchased_at == ago(20)
    assert _rows(acme) == both["acme"]


def test_charlie_batch_naming_acme_objects_gets_404_per_item(acme, charlie, charlie_api, both):
    items = [
        {"kind": "event", "data": {"type": "milestone", "purchase": "P-1", "milestone": "onboarded",
                                   "occurred_at": iso(ago(1))}},
        {"kind": "purchase", "data": {"external_id": "CH-P-9", "customer": "C-1", "offering": "consulting",
                                      "purchased_at": iso(ago(1))}},
        {"kind": "purchase", "data": {"external_id": "CH-P-9", "customer": "CH-1", "offering": "software",
                                      "purchased_at": iso(ago(1))}},
    ]  # fmt: skip
    response = charlie_api.post("batch/", {"items": items})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["index"], r["status"], r["error"]["code"]) for r in results] == [
        (0, 404, "not_found"), (1, 404, "not_found"), (2, 404, "not_found"),
    ]  # fmt: skip
    assert [set(r["error"]["fields"]) for r in results] == [{"purchase"}, {"customer"}, {"offering"}]
    _unchanged(acme, charlie, both)
