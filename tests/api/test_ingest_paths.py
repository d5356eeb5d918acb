"""The fast ingestion paths (set-based SQL for POST /batch/, one locked read for POST /events/) keep the
promises of docs/metrics.md and the API: the stored projection and milestone reaches equal a rebuild from the
events, events at the same instant count in the order they were sent, a duplicate external_id is stored
once even when two requests race, and the statements a call runs do not grow with its items."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from engagement.models import Customer, Engagement, Event, MilestoneReach
from engagement.projection import Projection
from engagement.projections import rebuild_all
from engagement.services import offering_save
from tenants.scoping import tenant_scope
from tests.api.conftest import Api, ago, iso
from tests.conftest import run_concurrently


def _purchase(ext, days, offering="software"):
    data = {"external_id": ext, "customer": {"external_id": f"C-{ext}", "name": ext}, "offering": offering,
            "purchased_at": iso(ago(days))}  # fmt: skip
    return {"kind": "purchase", "data": data}


def _event(purchase, at, type_="milestone", **extra):
    return {"kind": "event", "data": {"type": type_, "purchase": purchase, "occurred_at": iso(at), **extra}}


def _batch(api, items):
    response = api.post("batch/", {"items": items})
    assert response.status_code == 200, response.content
    return [r["status"] for r in response.json()["results"]]


def _snapshot(tenant):
    with tenant_scope(tenant):
        projections = sorted(Engagement.objects.values_list("id", *Projection.FIELDS))
        reaches = sorted(
            MilestoneReach.objects.values_list("engagement_id", "milestone_id", "reached_at", "clock_days")
        )
    return projections, reaches


@pytest.fixture
def surveyed(acme, actor):
    """An offering whose PoV also needs a satisfaction score of 4 or more."""
    milestones = [{"key": "start", "name": "Start", "due_day": 3}, {"key": "done", "name": "Done", "due_day": 10}]
    with tenant_scope(acme):
        return offering_save(tenant=acme, key="surveyed", name="Surveyed", milestones=milestones, actor=actor,
                             requires_satisfaction=True)[0]  # fmt: skip


def test_a_batch_leaves_what_a_rebuild_from_the_events_leaves(acme, api, software, surveyed):
    items = [_purchase(f"P-{i}", 30 - i, "surveyed" if i % 3 == 0 else "software") for i in range(9)]
    assert _batch(api, items) == [201] * 9
    events = []
    for i in range(9):
        ref, start = f"P-{i}", ago(30 - i)
        if i % 3 == 0:
            events += [_event(ref, start + timedelta(days=2), milestone="done"),
                       _event(ref, start + timedelta(days=1), milestone="start"),
                       _event(ref, start + timedelta(days=4), "satisfaction", score=4 + i % 2)]  # fmt: skip
        else:
            events += [_event(ref, start + timedelta(days=5), milestone="onboarded"),
                       _event(ref, start + timedelta(days=1), "paused"),
                       _event(ref, start + timedelta(days=3), "resumed"),
                       _event(ref, start + timedelta(days=2), milestone="kickoff")]  # fmt: skip
        if i == 4:
            events.append(_event(ref, start + timedelta(days=9), milestone="live"))
        if i == 5:
            events.append(_event(ref, start + timedelta(days=6), "lost", reason="Budget"))
    assert set(_batch(api, events)) == {201}
    # A second batch moves reaches earlier on engagements that already have some, and a pause before
    # P-2's reaches moves their value-clock days.
    earlier = [_event("P-1", ago(29) + timedelta(hours=1), milestone="onboarded"),
               _event("P-4", ago(26) + timedelta(hours=2), milestone="live"),
               _event("P-2", ago(28) + timedelta(hours=3), "paused"),
               _event("P-2", ago(28) + timedelta(hours=20), "resumed")]  # fmt: skip
    with tenant_scope(acme):
        before = dict(MilestoneReach.objects.filter(engagement__purchase__external_id="P-2")
                      .values_list("milestone__key", "clock_days"))  # fmt: skip
    assert _batch(api, earlier) == [201] * 4
    with tenant_scope(acme):
        after = dict(MilestoneReach.objects.filter(engagement__purchase__external_id="P-2")
                     .values_list("milestone__key", "clock_days"))  # fmt: skip
    assert set(after) == {"kickoff", "onboarded"}
    assert all(after[key] < before[key] for key in after), (before, after)
    stored = _snapshot(acme)
    with tenant_scope(acme):
        rebuilt = rebuild_all(acme, Engagement.objects.all())
    assert rebuilt.changed == 0
    assert _snapshot(acme) == stored
    statuses = {s for _, s, *_ in stored[0]}
    assert {"reached", "lost"} <= statuses, statuses
    assert len(stored[1]) > 9


@pytest.mark.parametrize(("order", "paused"), [(("paused", "resumed"), False), (("resumed", "paused"), True)])
def test_events_at_one_instant_count_in_the_order_they_were_sent(acme, api, software, order, paused):
    assert _batch(api, [_purchase("P-1", 4)]) == [201]
    at = ago(2)
    assert _batch(api, [_event("P-1", at, order[0]), _event("P-1", at, order[1])]) == [201, 201]
    with tenant_scope(acme):
        engagement = Engagement.objects.get()
    assert (engagement.status == "paused") is paused
    with tenant_scope(acme):
        assert rebuild_all(acme, Engagement.objects.all()).changed == 0


def _statements(captured):
    """The statements that do work, without the savepoints the test's own transaction adds."""
    return [q["sql"] for q in captured if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def test_a_batch_runs_the_same_statements_for_5_or_50_events(acme, api, software):
    assert set(_batch(api, [_purchase(f"P-{i}", 20) for i in range(50)])) == {201}
    counts = []
    for size, first in ((5, 0), (50, 0)):
        items = [_event(f"P-{(first + i) % 50}", ago(19 - i * 0.1), milestone="kickoff") for i in range(size)]
        with CaptureQueriesContext(connection) as captured:
            assert set(_batch(api, items)) == {201}
        counts.append(len(_statements(captured)))
    assert counts[0] == counts[1], counts
    # The API key; the engagements locked by purchase; the journeys; stored external ids (none here: skipped);
    # the events inserted; their engagements' events read; changed projections saved; reaches synced; the
    # outbox row.
    assert counts[0] <= 8, counts


def test_a_single_event_runs_a_fixed_handful_of_statements(acme, api, acme_purchase):
    body = {"type": "milestone", "purchase": "P-1", "milestone": "onboarded", "occurred_at": iso(ago(15))}
    assert api.post("events/", {**body, "external_id": "warm"}).status_code == 201  # records the key's first use
    with CaptureQueriesContext(connection) as captured:
        response = api.post("events/", {**body, "external_id": "E-9"})
    assert response.status_code == 201
    assert response.json()["engagement"]["next_milestone"] == "live"
    statements = _statements(captured)
    # The API key; the engagement with what the response shows, locked, found by its purchase; its journey;
    # the event (ON CONFLICT DO NOTHING); the engagement's events; its projection; its reaches; the outbox row.
    assert len(statements) <= 8, statements


@pytest.mark.django_db(transaction=True)
def test_a_batch_stores_the_same_with_parameters_bound_on_the_client(acme, api, software):
    """DATABASE_PREPARED_STATEMENTS=0 (behind a transaction pooler): the row arrays are quoted on the client."""
    options = connection.settings_dict["OPTIONS"]
    connection.close()
    connection.settings_dict["OPTIONS"] = {**options, "server_side_binding": False, "prepare_threshold": None}
    try:
        assert _batch(api, [_purchase(f"P-{i}", 20) for i in range(3)]) == [201] * 3
        events = [_event("P-0", ago(19), milestone="kickoff"), _event("P-1", ago(18), "paused"),
                  _event("P-1", ago(17), "resumed"), _event("P-1", ago(16), milestone="kickoff"),
                  _event("P-2", ago(15), "satisfaction", score=5, external_id="S-1")]  # fmt: skip
        assert _batch(api, events) == [201] * 5
        assert _batch(api, [_event("P-2", ago(15), "satisfaction", score=5, external_id="S-1")]) == [200]
        stored = _snapshot(acme)
        with tenant_scope(acme):
            assert rebuild_all(acme, Engagement.objects.all()).changed == 0
            assert Event.objects.count() == 5
        assert _snapshot(acme) == stored
        assert len(stored[1]) == 2
    finally:
        connection.close()
        connection.settings_dict["OPTIONS"] = options


@pytest.mark.django_db(transaction=True)
def test_two_requests_racing_with_one_external_id_store_one_event(acme, acme_write_key, acme_purchase):
    body = {"type": "milestone", "purchase": "P-1", "milestone": "onboarded", "occurred_at": iso(ago(15)),
            "external_id": "RACE-1"}  # fmt: skip

    def post():
        response = Api(acme_write_key[1]).post("events/", body)
        return response.status_code, response.json()["id"]

    results = run_concurrently(post)
    assert sorted(status for status, _ in results) == [200, 201]
    assert len({event_id for _, event_id in results}) == 1
    with tenant_scope(acme):
        assert Event.objects.filter(external_id="RACE-1").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_batches_sharing_customers_in_opposite_orders_both_store_them(acme, acme_write_key):
    """As two chunks of an import at once: each upserts the customers in the same order, so one waits for
    the other instead of the two deadlocking."""
    names = [f"SHARED-{n:03}" for n in range(400)]
    orders = iter([names, names[::-1]])

    def post():
        items = [{"kind": "customer", "data": {"external_id": ext, "name": ext}} for ext in next(orders)]
        response = Api(acme_write_key[1]).post("batch/", {"items": items})
        return response.status_code, {r["status"] for r in response.json()["results"]}

    results = run_concurrently(post)
    assert [status for status, _ in results] == [200, 200], results
    with tenant_scope(acme):
        assert Customer.objects.filter(external_id__startswith="SHARED-").count() == 400
