"""POST /batch/: items in order, a result per item, valid items kept when others fail."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from engagement.models import Customer, Engagement, Event, Purchase
from engagement.services import customer_upsert, offering_save, purchase_record
from tenants.scoping import tenant_scope
from tests.api.conftest import JOURNEY, ago, count, error_of, iso, z


def customer(ext, name="Someone", **extra):
    return {"kind": "customer", "data": {"external_id": ext, "name": name, **extra}}


def purchase(ext, customer_ref, days=3, **extra):
    data = {"external_id": ext, "customer": customer_ref, "offering": "software", "purchased_at": iso(ago(days))}
    return {"kind": "purchase", "data": {**data, **extra}}


def event(purchase_ref, days, milestone="kickoff", **extra):
    data = {"type": "milestone", "purchase": purchase_ref, "milestone": milestone, "occurred_at": iso(ago(days))}
    data.update(extra)
    return {"kind": "event", "data": {k: v for k, v in data.items() if v is not ...}}


def run(client, items):
    response = client.post("batch/", {"items": items})
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"results"}
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    for r in results:
        assert "error" in r or "id" in r, r
        if "error" in r:
            assert set(r) == {"index", "status", "error"}
            assert set(r["error"]) == {"code", "message", "fields"}
    return results


def test_items_are_processed_in_order(acme, api, software):
    items = [
        customer("C-10"),  # 0
        purchase("P-10", "C-10"),  # 1: the customer of an earlier item
        event("P-11", 1),  # 2: the purchase of a LATER item: not there yet
        purchase("P-11", {"external_id": "C-11", "name": "Inline"}),  # 3
        event("P-10", 2, external_id="BE-1"),  # 4
        purchase("P-12", "C-12"),  # 5: the customer of a later item
        customer("C-12"),  # 6
    ]
    results = run(api, items)
    assert [r["status"] for r in results] == [201, 201, 404, 201, 201, 404, 201]
    with tenant_scope(acme):
        engagements = {e.purchase.external_id: str(e.id) for e in Engagement.objects.select_related("purchase")}
        event_id = str(Event.objects.get(external_id="BE-1").id)
    assert results[0] == {"index": 0, "status": 201, "id": "C-10"}
    assert results[1] == {"index": 1, "status": 201, "id": "P-10", "engagement": engagements["P-10"]}
    missing = "No purchase 'P-11'."
    error = {"code": "not_found", "message": missing, "fields": {"purchase": [missing]}}
    assert results[2] == {"index": 2, "status": 404, "error": error}
    assert results[3] == {"index": 3, "status": 201, "id": "P-11", "engagement": engagements["P-11"]}
    assert results[4] == {"index": 4, "status": 201, "id": event_id}
    assert results[5]["error"]["fields"] == {"customer": ["No customer 'C-12'."]}
    assert results[6] == {"index": 6, "status": 201, "id": "C-12"}
    # Valid items persisted, failed ones did not.
    with tenant_scope(acme):
        assert sorted(Customer.objects.values_list("external_id", flat=True)) == ["C-10", "C-11", "C-12"]
        assert sorted(Purchase.objects.values_list("external_id", flat=True)) == ["P-10", "P-11"]
        assert Event.objects.count() == 1


def test_invalid_items_fail_alone(acme, api, acme_purchase):
    items = [
        customer("C-7"),
        {"kind": "refund", "data": {}},
        {"kind": "customer"},
        "not an object",
        {"kind": "customer", "data": {"external_id": "C-2", "name": "N"}, "extra": 1},
        customer("C-3", name=""),
        customer("C-4", colour="red"),
        purchase("P-5", "C-7", purchased_at="2026-01-01T10:00:00"),
        event("P-1", 1, milestone="nope"),
        purchase("P-2", "C-7"),
        event("P-1", 1, milestone="onboarded"),
    ]
    results = run(api, items)
    assert [r["status"] for r in results] == [201, 400, 400, 400, 400, 400, 400, 400, 400, 201, 201]
    assert [set(r["error"]["fields"]) for r in results[1:9]] == [
        {"kind"}, {"data"}, {"kind"}, {"kind"}, {"name"}, {"colour"}, {"purchased_at"}, {"milestone"},
    ]  # fmt: skip
    assert all(r["error"]["code"] == "invalid" for r in results[1:9])
    assert results[7]["error"]["fields"]["purchased_at"] == [
        "Give a time zone offset (e.g. 2026-05-01T09:00:00+02:00 or ...Z); naive times are ambiguous."
    ]
    assert results[8]["error"]["fields"]["milestone"] == ["'nope' is not a milestone of this offering."]
    with tenant_scope(acme):
        assert sorted(Customer.objects.values_list("external_id", flat=True)) == ["C-1", "C-7"]
        assert sorted(Purchase.objects.values_list("external_id", flat=True)) == ["P-1", "P-2"]
        assert Event.objects.count() == 2


def test_duplicate_customer_is_201_then_200_and_the_last_values_win(acme, api):
    results = run(api, [customer("C-1", name="First"), customer("C-1", name="Second", segment="smb")])
    assert [(r["status"], r["id"]) for r in results] == [(201, "C-1"), (200, "C-1")]
    with tenant_scope(acme):
        stored = Customer.objects.get()
    assert (stored.name, stored.segment) == ("Second", "smb")


def test_existing_customer_is_200(acme, api, acme_purchase):
    assert [r["status"] for r in run(api, [customer("C-1", name="Ada")])] == [200]


def test_duplicate_event_external_id_is_201_then_200(acme, api, software):
    items = [purchase("P-1", {"external_id": "C-1", "name": "A"}), event("P-1", 2, external_id="X"),
             event("P-1", 2, external_id="X")]  # fmt: skip
    results = run(api, items)
    assert [r["status"] for r in results] == [201, 201, 200]
    assert results[1]["id"] == results[2]["id"]
    with tenant_scope(acme):
        assert [str(i) for i in Event.objects.values_list("id", flat=True)] == [results[1]["id"]]


def test_event_already_stored_is_200_with_its_id(acme, api, acme_purchase):
    results = run(api, [event("P-1", 19, external_id="E-1")])
    with tenant_scope(acme):
        stored = Event.objects.get(external_id="E-1")
    assert results == [{"index": 0, "status": 200, "id": str(stored.id)}]
    assert count(acme, Event) == 1


def test_duplicate_purchase_same_values_200_other_values_409(acme, api, software):
    items = [
        purchase("P-1", {"external_id": "C-1", "name": "A"}, amount="10.00", currency="EUR"),
        purchase("P-1", "C-1", amount="10.00", currency="EUR"),
        purchase("P-1", "C-1", amount="12.00", currency="EUR"),
    ]
    results = run(api, items)
    assert [r["status"] for r in results] == [201, 200, 409]
    assert results[1]["engagement"] == results[0]["engagement"]
    assert results[2]["error"] == {
        "code": "conflict",
        "message": "Purchase 'P-1' already exists with other values for: amount.",
        "fields": {"amount": ["Differs from the stored purchase."]},
    }
    with tenant_scope(acme):
        assert list(Purchase.objects.values_list("amount", flat=True)) == [10]


def test_stored_purchase_replayed_200_or_409(acme, api, acme_purchase):
    items = [customer("C-1", name="Ada"), purchase("P-1", "C-1", days=20), purchase("P-1", "C-1", days=19)]
    results = run(api, items)
    assert [r["status"] for r in results] == [200, 200, 409]
    assert results[1]["engagement"] == str(acme_purchase.engagement.id)
    assert set(results[2]["error"]["fields"]) == {"purchased_at"}


@pytest.mark.parametrize("ref", ["P-1", "P-2"])
def test_purchase_of_a_stored_customer_by_reference(acme, api, acme_purchase, ref):
    # P-1 is stored (replay: 200); P-2 is new (201). Both name the stored customer C-1 by its external_id.
    results = run(api, [purchase(ref, "C-1", days=20)])
    assert results[0]["status"] == (200 if ref == "P-1" else 201), results
    assert count(acme, Purchase) == (1 if ref == "P-1" else 2)


@pytest.mark.parametrize(
    ("item", "status"),
    [
        (purchase("P-9", {"external_id": "C-new", "name": "New"}, offering="hardware"), 404),
        (purchase("P-9", {"external_id": "C-new", "name": "New"}, owner="nobody@acme.test"), 400),
        (purchase("P-9", {"external_id": "C-new", "name": "New"}, amount="5.00"), 400),
        (purchase("P-1", {"external_id": "C-1", "name": "Renamed"}, days=5), 409),
    ],
    ids=["unknown-offering", "unknown-owner", "amount-without-currency", "conflicting-replay"],
)
def test_a_failed_purchase_item_writes_no_customer(acme, api, acme_purchase, item, status):
    assert run(api, [item])[0]["status"] == status
    with tenant_scope(acme):
        assert list(Customer.objects.values_list("external_id", "name")) == [("C-1", "Ada")]


def test_a_purchase_item_that_failed_is_no_original_for_a_later_one(acme, api, software):
    items = [purchase("P-3", "C-404"), purchase("P-3", {"external_id": "C-4", "name": "Inline"}, days=1)]
    assert [r["status"] for r in run(api, items)] == [404, 201]
    assert count(acme, Purchase) == 1


def test_a_failed_purchase_item_creates_no_customer_for_later_items(acme, api, software):
    items = [purchase("P-5", {"external_id": "C-5", "name": "I"}, offering="hardware"), purchase("P-6", "C-5")]
    assert [r["status"] for r in run(api, items)] == [404, 404]
    assert count(acme, Customer) == 0


def test_a_purchase_item_waiting_for_a_later_customer_is_no_original(acme, api, software):
    items = [purchase("P-7", "C-7"), customer("C-7"), purchase("P-7", "C-7")]
    assert [r["status"] for r in run(api, items)] == [404, 201, 201]


def test_events_update_the_engagement_projection(acme, api, software):
    items = [
        purchase("P-1", {"external_id": "C-1", "name": "A"}, days=20),
        event("P-1", 19, "kickoff"),
        event("P-1", 15, "onboarded"),
        event("P-1", 8, "live"),
    ]
    results = run(api, items)
    assert [r["status"] for r in results] == [201, 201, 201, 201]
    detail = api.get(f"engagements/{results[0]['engagement']}/").json()
    assert (detail["status"], detail["pov_at"], detail["days_to_value"]) == ("reached", z(ago(8)), 12.0)
    assert [m["reached_at"] for m in detail["journey"]] == [z(ago(19)), z(ago(15)), z(ago(8))]
    assert [t["milestone"] for t in detail["timeline"]] == ["kickoff", "onboarded", "live"]
    with tenant_scope(acme):
        assert Engagement.objects.get().status == "reached"


def test_events_on_a_stored_engagement_update_it(api, acme_purchase):
    results = run(api, [event("P-1", 15, "onboarded"), event("P-1", 10, "live")])
    assert [r["status"] for r in results] == [201, 201]
    detail = api.get(f"engagements/{acme_purchase.engagement.id}/").json()
    assert (detail["status"], detail["days_to_value"]) == ("reached", 10.0)


def test_paused_in_a_batch_pauses(api, acme_purchase):
    run(api, [event("P-1", 5, type="paused", milestone=...)])
    assert api.get(f"engagements/{acme_purchase.engagement.id}/").json()["status"] == "paused"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"items": [], "mode": "fast"}, {"mode"}),
        ({"items": {"kind": "customer"}}, {"items"}),
        ({"items": "C-1"}, {"items"}),
        ({}, {"items"}),
        ({"items": None}, {"items"}),
    ],
)
def test_bad_batch_envelope_is_400(acme, api, body, fields):
    error = error_of(api.post("batch/", body), 400, "invalid")
    assert set(error["fields"]) == fields
    assert count(acme, Customer) == 0


def test_empty_batch_is_200_with_no_results(api):
    assert run(api, []) == []


# The same inputs through the batch and the single endpoints -----------------------------------------


def _world(tenant, actor):
    with tenant_scope(tenant):
        software = offering_save(tenant=tenant, key="software", name="Software", milestones=JOURNEY, actor=actor)[0]
        ada = customer_upsert(tenant=tenant, external_id="C-1", name="Ada", actor=actor)[0]
        purchase_record(tenant=tenant, external_id="P-1", customer=ada, offering=software, purchased_at=ago(20),
                        amount=10, currency="EUR", actor=actor)  # fmt: skip


SINGLE = {"customer": "customers/", "purchase": "purchases/", "event": "events/"}


def _sequence():
    future = iso(timezone.now() + timedelta(minutes=10))
    return [
        customer("C-1", name="Ada"),  # 200: stored, same values
        customer("C-1", name="Ada L."),  # 200: updated
        customer("C-2", name="Grace"),  # 201
        customer("C-3"),  # 201
        customer("C-9", name=""),  # 400
        customer("C-9", nickname="x"),  # 400 unknown field
        customer("C-9", email="not-an-email"),  # 400
        purchase("P-2", "C-2", days=5),  # 201
        purchase("P-2", "C-2", days=5),  # 200: replay
        purchase("P-2", "C-2", days=4),  # 409
        purchase("P-1", "C-1", days=20, amount="10.00", currency="EUR"),  # 200: stored
        purchase("P-1", "C-1", days=20),  # 409: amount missing
        purchase("P-3", "C-404"),  # 404 customer
        purchase("P-3", "C-3", offering="hardware"),  # 404 offering
        purchase("P-5", {"external_id": "C-4", "name": "Inline"}, days=1),  # 201
        purchase("P-4", "C-3", purchased_at="2026-01-01T10:00:00"),  # 400 naive
        purchase("P-4", "C-3", purchased_at=future),  # 400 future
        purchase("P-4", "C-3", owner="nobody@acme.test"),  # 400 not a member
        purchase("P-4", "C-3", amount="5.00"),  # 400 currency missing
        purchase("P-4", "C-3", amount="5.001", currency="EUR"),  # 400 three decimals
        purchase("P-4", "C-3", currency="EURO"),  # 400
        event("P-2", 4, external_id="X-1"),  # 201
        event("P-2", 4, external_id="X-1"),  # 200
        event("P-404", 1),  # 404
        event("P-2", 6),  # 400 before the purchase
        event("P-2", 0, occurred_at=future),  # 400 future
        event("P-2", 1, milestone="launch"),  # 400 unknown milestone
        event("P-2", 1, type="satisfaction", milestone=..., score=0),  # 400
        event("P-2", 1, type="satisfaction", milestone=..., score=6),  # 400
        event("P-2", 1, type="satisfaction", milestone=..., score=5),  # 201
        event("P-2", 1, type="satisfaction", milestone=...),  # 400 no score
        event("P-2", 1, score=3),  # 400 score on a milestone
        event("P-2", 1, type="lost", milestone="kickoff"),  # 400
        event("P-2", 1, type="won", milestone=...),  # 400
        event("P-2", 1, milestone=...),  # 400 milestone missing
        event("P-1", 10, "onboarded", occurred_at="2026-01-01T10:00:00"),  # 400 naive
        event("P-1", 10, "onboarded", channel="email"),  # 400 unknown field
        event("P-1", 10, "onboarded"),  # 201
        event("P-5", 0, type="paused", milestone=...),  # 201
    ]


def _outcome(status, error):
    return (status, sorted(error["fields"]) if error else None)


def test_batch_results_equal_the_single_endpoints(acme, charlie, api, charlie_api, actor):
    _world(acme, actor)
    _world(charlie, actor)
    sequence = _sequence()
    batch = [_outcome(r["status"], r.get("error")) for r in run(api, sequence)]
    single = []
    for item in sequence:
        response = charlie_api.post(SINGLE[item["kind"]], item["data"])
        single.append(_outcome(response.status_code, response.json().get("error")))
    mismatches = [(i, sequence[i], b, s) for i, (b, s) in enumerate(zip(batch, single, strict=True)) if b != s]
    assert mismatches == []
    assert [s for s, _ in batch] == [
        200, 200, 201, 201, 400, 400, 400,
        201, 200, 409, 200, 409, 404, 404, 201, 400, 400, 400, 400, 400, 400,
        201, 200, 404, 400, 400, 400, 400, 400, 201, 400, 400, 400, 400, 400, 400, 400, 201, 201,
    ]  # fmt: skip
    for model in (Customer, Purchase, Engagement, Event):
        assert count(acme, model) == count(charlie, model), model.__name__
    with tenant_scope(acme):
        acme_status = dict(Engagement.objects.values_list("purchase__external_id", "status"))
    with tenant_scope(charlie):
        assert dict(Engagement.objects.values_list("purchase__external_id", "status")) == acme_status


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(event("P-1", 1, type="satisfaction", milestone="", score=4), id="satisfaction-blank-milestone"),
        pytest.param(event("P-1", 1, comment=None), id="null-comment"),
        pytest.param(event("P-1", 1, type="lost", milestone=None), id="null-milestone"),
        pytest.param(event("P-1", 1, external_id=""), id="blank-event-id"),
        pytest.param(event("P-1", 1, milestone=" onboarded "), id="padded-milestone"),
        pytest.param(event("P-1", 1, occurred_at=1763632800), id="epoch-timestamp"),
        pytest.param(customer("C-5", segment=None), id="null-segment"),
        pytest.param(customer("C-5", email=None), id="null-email"),
        pytest.param(customer("C-5", attributes=None), id="null-attributes"),
        pytest.param(customer("C-5", name="  "), id="blank-name"),
        pytest.param(customer("C-5", email="a@b"), id="email-without-domain-dot"),
        pytest.param(purchase("P-5", "C-1", currency=None), id="null-currency"),
        pytest.param(purchase("P-5", "C-1", owner=""), id="blank-owner"),
        pytest.param(purchase("P-5", "C-1", amount="NaN", currency="EUR"), id="nan-amount"),
        pytest.param(purchase("P-5", "C-1", amount=True, currency="EUR"), id="boolean-amount"),
        pytest.param(event("P-1", 1, type="satisfaction", milestone=..., score="5"), id="score-string"),
        pytest.param(event("P-1", 1, type="satisfaction", milestone=..., score=5.0), id="score-float"),
        pytest.param(purchase("P-5", "C-1", amount="", currency="EUR"), id="blank-amount"),
        pytest.param(purchase("P-5", " C-1 "), id="padded-customer-reference"),
    ],
)
def test_batch_answers_what_the_single_endpoint_answers(acme, charlie, api, charlie_api, actor, item):
    _world(acme, actor)
    _world(charlie, actor)
    response = charlie_api.post(SINGLE[item["kind"]], item["data"])
    single = (response.status_code, sorted(response.json()["error"]["fields"]) if response.status_code >= 400 else [])
    result = run(api, [item])[0]
    assert (result["status"], sorted(result["error"]["fields"]) if "error" in result else []) == single


def test_result_ids_name_what_was_written(acme, api, software):
    results = run(api, [purchase("P-1", {"external_id": "C-1", "name": "A"}), event("P-1", 1)])
    uuid.UUID(results[0]["engagement"])
    with tenant_scope(acme):
        assert str(Event.objects.get().id) == results[1]["id"]
        assert str(Engagement.objects.get().id) == results[0]["engagement"]


def test_the_one_at_a_time_fallback_gives_the_same_results(acme, charlie, api, charlie_api, actor, monkeypatch):
    # When the set-based write meets a concurrent writer (a unique violation) the batch is replayed one item at
    # a time through the single-item services; the results must not depend on which path ran.
    from django.db import IntegrityError

    from engagement import batch as batch_module

    _world(acme, actor)
    _world(charlie, actor)
    sequence = _sequence()
    expected = [_outcome(r["status"], r.get("error")) for r in run(api, sequence)]

    def collide(batch):
        raise IntegrityError("simulated concurrent writer")

    monkeypatch.setattr(batch_module, "_write", collide)
    fallback = [_outcome(r["status"], r.get("error")) for r in run(charlie_api, sequence)]
    mismatches = [(i, sequence[i], e, f) for i, (e, f) in enumerate(zip(expected, fallback, strict=True)) if e != f]
    assert mismatches == []
    for model in (Customer, Purchase, Engagement, Event):
        assert count(acme, model) == count(charlie, model), model.__name__
