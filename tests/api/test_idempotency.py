"""Idempotency-Key on POSTs: a replay returns the stored response, another body is 422, keys are per tenant."""

import json
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone

from engagement.models import Customer, Engagement, Event, Offering, Purchase
from tenants.idempotency import purge_expired, request_hash
from tenants.models import IdempotencyKey
from tenants.scoping import tenant_scope
from tests.api.conftest import JOURNEY, Api, ago, count, error_of, iso

ADA = {"external_id": "C-1", "name": "Ada"}


def key(value):
    return {"Idempotency-Key": value}


def test_replay_returns_the_stored_response_and_does_not_run_again(acme, api):
    first = api.post("customers/", ADA, headers=key("k-1"))
    assert first.status_code == 201
    assert not first.has_header("Idempotent-Replayed")
    # The customer changes in between; a replay answers what the first request answered and changes nothing.
    assert api.post("customers/", {"external_id": "C-1", "name": "Renamed"}).status_code == 200
    replay = api.post("customers/", ADA, headers=key("k-1"))
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    with tenant_scope(acme):
        assert Customer.objects.get().name == "Renamed"
        stored = IdempotencyKey.objects.get()
    assert (stored.key, stored.status_code, stored.completed_at is not None) == ("k-1", 201, True)


def test_purchase_replay_is_201_with_one_row(acme, api, software):
    body = {"external_id": "P-1", "customer": {"external_id": "C-1", "name": "Ada"}, "offering": "software",
            "purchased_at": iso(ago(2)), "amount": "99.90", "currency": "EUR"}  # fmt: skip
    first = api.post("purchases/", body, headers=key("buy-1"))
    replay = api.post("purchases/", body, headers=key("buy-1"))
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert count(acme, Purchase) == count(acme, Engagement) == 1
    # Without the key the same body is the contract's 200 replay, not a stored response.
    plain = api.post("purchases/", body)
    assert plain.status_code == 200
    assert not plain.has_header("Idempotent-Replayed")


def test_event_without_external_id_is_recorded_once_per_key(acme, api, acme_purchase):
    body = {"type": "milestone", "purchase": "P-1", "milestone": "onboarded", "occurred_at": iso(ago(10))}
    responses = [api.post("events/", body, headers=key("ev-1")) for _ in range(3)]
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert [r.has_header("Idempotent-Replayed") for r in responses] == [False, True, True]
    assert responses[2].json() == responses[0].json()
    assert count(acme, Event) == 2  # the fixture's kickoff and one onboarded


def test_offering_replay_is_the_201_not_a_409(acme, api):
    body = {"key": "software", "name": "Software", "milestones": JOURNEY}
    first = api.post("offerings/", body, headers=key("off-1"))
    replay = api.post("offerings/", body, headers=key("off-1"))
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json() == first.json()
    error_of(api.post("offerings/", body), 409, "conflict")
    assert count(acme, Offering) == 1


def test_batch_replay_returns_the_same_results_and_writes_nothing(acme, api, acme_purchase):
    body = {"items": [
        {"kind": "customer", "data": {"external_id": "C-2", "name": "Grace"}},
        {"kind": "event", "data": {"type": "paused", "purchase": "P-1", "occurred_at": iso(ago(3))}},
    ]}  # fmt: skip
    first = api.post("batch/", body, headers=key("batch-1"))
    replay = api.post("batch/", body, headers=key("batch-1"))
    assert (first.status_code, replay.status_code) == (200, 200)
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert [r["status"] for r in first.json()["results"]] == [201, 201]
    assert count(acme, Event) == 2
    assert count(acme, Customer) == 2


def test_same_key_with_another_body_is_422(acme, api):
    assert api.post("customers/", ADA, headers=key("k-1")).status_code == 201
    error = error_of(api.post("customers/", {**ADA, "name": "Eve"}, headers=key("k-1")), 422, "idempotency_key_reused")
    assert error["message"] == "This Idempotency-Key was used with another request body."
    with tenant_scope(acme):
        assert Customer.objects.get().name == "Ada"


def test_same_key_and_body_on_another_endpoint_is_422(acme, api, software):
    assert api.post("customers/", ADA, headers=key("k-1")).status_code == 201
    error_of(api.post("offerings/", ADA, headers=key("k-1")), 422, "idempotency_key_reused")


@pytest.mark.parametrize("value", ["x" * 256, "", "   "])
def test_key_too_long_or_blank_is_400(acme, api, value):
    error = error_of(api.post("customers/", ADA, headers=key(value)), 400, "invalid")
    assert error["fields"] == {"Idempotency-Key": ["Use 1 to 255 characters."]}
    assert count(acme, Customer) == 0


def test_key_of_255_characters_is_fine(api):
    assert api.post("customers/", ADA, headers=key("k" * 255)).status_code == 201
    assert api.post("customers/", ADA, headers=key("k" * 255))["Idempotent-Replayed"] == "true"


def test_keys_are_per_tenant(acme, charlie, api, charlie_api):
    assert api.post("customers/", ADA, headers=key("shared")).status_code == 201
    # charlie's request with the same key and body is charlie's own first request, not acme's replay...
    theirs = charlie_api.post("customers/", ADA, headers=key("shared"))
    assert theirs.status_code == 201
    assert not theirs.has_header("Idempotent-Replayed")
    # ...and a key charlie used first is free for acme with another body (no 422).
    assert charlie_api.post("customers/", {"external_id": "C-2", "name": "Bo"}, headers=key("k-2")).status_code == 201
    assert api.post("customers/", {"external_id": "C-3", "name": "Cy"}, headers=key("k-2")).status_code == 201
    assert count(acme, Customer) == count(charlie, Customer) == 2
    for tenant in (acme, charlie):
        with tenant_scope(tenant):
            assert sorted(IdempotencyKey.objects.values_list("key", flat=True)) == ["k-2", "shared"]


def test_a_failed_request_is_not_stored(acme, api):
    error_of(api.post("customers/", {"external_id": "C-1"}, headers=key("k-1")), 400, "invalid")
    # The corrected body may use the same key: nothing was stored for the failure.
    response = api.post("customers/", ADA, headers=key("k-1"))
    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")


def test_a_404_is_not_stored_either(acme, api, software):
    body = {"external_id": "P-1", "customer": "C-1", "offering": "software", "purchased_at": iso(ago(1))}
    error_of(api.post("purchases/", body, headers=key("k-1")), 404, "not_found")
    api.post("customers/", ADA)
    assert api.post("purchases/", body, headers=key("k-1")).status_code == 201


def test_get_ignores_the_header(api):
    api.post("customers/", ADA)
    response = api.get("customers/C-1/", headers=key("k-1"))
    assert response.status_code == 200
    assert not response.has_header("Idempotent-Replayed")


def _claim(tenant, body, path="/api/v1/customers/", **fields):
    fingerprint = request_hash(SimpleNamespace(method="POST", path=path, body=json.dumps(body).encode()))
    with tenant_scope(tenant):
        claim = IdempotencyKey.objects.create(tenant=tenant, key="k-1", request_hash=fingerprint)
        IdempotencyKey.objects.filter(pk=claim.pk).update(**fields)


def test_a_request_still_in_flight_is_409(acme, api):
    _claim(acme, ADA)
    error = error_of(api.post("customers/", ADA, headers=key("k-1")), 409, "conflict")
    assert error["message"] == "A request with this Idempotency-Key is still in progress; retry shortly."
    assert count(acme, Customer) == 0


def test_an_abandoned_claim_is_taken_over(acme, api):
    _claim(acme, ADA, created_at=timezone.now() - timedelta(minutes=6))
    assert api.post("customers/", ADA, headers=key("k-1")).status_code == 201
    assert count(acme, Customer) == 1


def test_a_key_older_than_24_hours_may_be_used_again(acme, api):
    _claim(acme, {"other": "body"}, created_at=timezone.now() - timedelta(hours=25), completed_at=timezone.now(),
           status_code=201, response_body={})  # fmt: skip
    response = api.post("customers/", ADA, headers=key("k-1"))
    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")


def test_purge_deletes_the_keys_past_24_hours_of_its_tenant_only(acme, charlie):
    def keys(tenant, *ages):
        with tenant_scope(tenant):
            for n, hours in enumerate(ages):
                stored = IdempotencyKey.objects.create(tenant=tenant, key=f"k-{n}", request_hash="h")
                IdempotencyKey.objects.filter(pk=stored.pk).update(created_at=timezone.now() - timedelta(hours=hours))

    keys(acme, 25, 23)
    keys(charlie, 25)
    with tenant_scope(acme):
        assert purge_expired() == 1
        assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["k-1"]
    with tenant_scope(charlie):
        assert IdempotencyKey.objects.count() == 1


# Concurrency (PostgreSQL: SQLite serializes writers) --------------------------------------------------


def _race(raw_key, path, bodies, headers=None):
    """POST each body from its own thread and client, released together; returns the responses."""
    barrier = threading.Barrier(len(bodies))
    responses = [None] * len(bodies)

    def send(index, body):
        try:
            client = Api(raw_key)
            barrier.wait(timeout=10)
            responses[index] = client.post(path, body, headers=headers)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i, body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(r is not None for r in responses), responses
    return responses


PURCHASE = {"external_id": "P-9", "customer": {"external_id": "C-9", "name": "Racer"}, "offering": "software",
            "purchased_at": iso(ago(1))}  # fmt: skip


def test_concurrent_duplicates_with_one_key_make_one_row(transactional_db, acme, acme_write_key, software):
    for attempt in range(3):
        body = {**PURCHASE, "external_id": f"P-{attempt}"}
        responses = _race(acme_write_key[1], "purchases/", [body, body], headers=key(f"race-{attempt}"))
        outcomes = sorted((r.status_code, r.has_header("Idempotent-Replayed")) for r in responses)
        assert outcomes in ([(201, False), (201, True)], [(201, False), (409, False)]), outcomes
        winner = next(r for r in responses if not r.has_header("Idempotent-Replayed") and r.status_code == 201)
        loser = next(r for r in responses if r is not winner)
        if loser.status_code == 201:
            assert loser.json() == winner.json()
        else:
            assert error_of(loser, 409, "conflict")["message"].endswith("still in progress; retry shortly.")
    assert count(acme, Purchase, external_id__in=["P-0", "P-1", "P-2"]) == 3
    assert count(acme, Engagement) == 3
    assert count(acme, Customer) == 1


def test_concurrent_duplicate_purchases_without_a_key_make_one_row(transactional_db, acme, acme_write_key, software):
    responses = _race(acme_write_key[1], "purchases/", [PURCHASE, PURCHASE])
    assert sorted(r.status_code for r in responses) == [200, 201]
    assert responses[0].json() == responses[1].json()
    assert count(acme, Purchase) == count(acme, Engagement) == count(acme, Customer) == 1


def test_concurrent_duplicate_events_make_one_row(transactional_db, acme, acme_write_key, acme_purchase):
    body = {"type": "milestone", "purchase": "P-1", "milestone": "onboarded", "occurred_at": iso(ago(10)),
            "external_id": "E-race"}  # fmt: skip
    responses = _race(acme_write_key[1], "events/", [body, body])
    assert sorted(r.status_code for r in responses) == [200, 201]
    assert responses[0].json()["id"] == responses[1].json()["id"]
    assert count(acme, Event, external_id="E-race") == 1
