"""A purchase's success criteria (what the customer expects to get): set at the sale by the API, a batch or
an import, shown with the engagement, changed on the engagement (API or page) with a note on its timeline;
a replay repeats them or leaves them out; bad lists are refused naming the item."""

import pytest

from engagement.models import Event, Note, Purchase
from tenants.actors import Actor
from tenants.models import AuditEntry
from tenants.scoping import tenant_scope
from tests.api.conftest import ago, error_of, iso
from tests.factories import TenantFactory
from tests.web.conftest import build_world
from tests.web.test_imports import _create, _run, _start

PROMISED = ["Invoices out in one day", "Team of five trained"]


def _purchase(**changes):
    body = {
        "external_id": "P-7", "customer": {"external_id": "C-7", "name": "Ada"}, "offering": "software",
        "purchased_at": iso(ago(3)), "success_criteria": PROMISED,
    }  # fmt: skip
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def _stored(tenant, external_id="P-7"):
    with tenant_scope(tenant):
        return Purchase.objects.get(external_id=external_id).success_criteria


def test_a_purchase_keeps_what_the_customer_expects_and_shows_it_with_its_engagement(acme, api, software):
    sent = ["  Invoices out   in one day ", "", "team of five TRAINED", "Team of five trained", "Reports by Monday"]
    response = api.post("purchases/", _purchase(success_criteria=sent))

    assert response.status_code == 201
    # Trimmed, blank ones dropped, the same criterion (whatever its case) kept once.
    kept = ["Invoices out in one day", "team of five TRAINED", "Reports by Monday"]
    assert response.json()["success_criteria"] == kept
    assert response.json()["engagement"]["success_criteria"] == kept
    engagement_id = response.json()["engagement"]["id"]
    assert api.get(f"engagements/{engagement_id}/").json()["success_criteria"] == kept
    assert api.get("engagements/").json()["results"][0]["success_criteria"] == kept
    # An event's answer carries them too (the engagement read by the event's own locked lookup).
    event = api.post("events/", {"type": "paused", "purchase": "P-7", "occurred_at": iso(ago(1))})
    assert event.status_code == 201 and event.json()["engagement"]["success_criteria"] == kept
    assert _stored(acme) == kept


def test_a_replay_repeats_them_or_leaves_them_out_and_other_ones_are_a_conflict(acme, api, software):
    assert api.post("purchases/", _purchase()).status_code == 201

    assert api.post("purchases/", _purchase()).status_code == 200
    assert api.post("purchases/", _purchase(success_criteria=...)).status_code == 200
    assert api.post("purchases/", _purchase(success_criteria=[])).status_code == 200
    # The same criteria in another order or letter case are the same.
    assert api.post("purchases/", _purchase(success_criteria=["team of five trained", PROMISED[0]])).status_code == 200
    error = error_of(api.post("purchases/", _purchase(success_criteria=["Something else"])), 409, "conflict")
    assert "success_criteria" in error["message"] and "success_criteria" in error["fields"]
    assert _stored(acme) == PROMISED


@pytest.mark.parametrize(
    ("criteria", "field", "words"),
    [
        ("Invoices out in one day", "success_criteria", "list of short texts"),
        ([1, 2], "success_criteria.0", "as text"),
        (["ok", "x" * 201], "success_criteria.1", "200 characters at most"),
        ([f"Outcome {n}" for n in range(11)], "success_criteria", "at most 10"),
        # A huge list is refused as soon as it holds one criterion too many, not read to its end.
        (["x"] * 50_000 + [f"Outcome {n}" for n in range(20_000)], "success_criteria", "at most 10"),
    ],
)
def test_a_bad_list_is_refused_naming_the_item(acme, api, software, criteria, field, words):
    error = error_of(api.post("purchases/", _purchase(success_criteria=criteria)), 400)
    assert words in " ".join(error["fields"][field])
    with tenant_scope(acme):
        assert not Purchase.objects.exists()


def test_a_batch_stores_them_and_refuses_a_replay_with_other_ones(acme, api, software):
    items = [
        {"kind": "purchase", "data": _purchase()},
        {"kind": "purchase", "data": _purchase(external_id="P-8", success_criteria=["x" * 300])},
    ]
    results = api.post("batch/", {"items": items}).json()["results"]
    assert [r["status"] for r in results] == [201, 400]
    assert "200 characters at most" in str(results[1]["error"])
    assert _stored(acme) == PROMISED

    again = [{"kind": "purchase", "data": _purchase(success_criteria=criteria)} for criteria in (PROMISED, ["No"])]
    results = api.post("batch/", {"items": again}).json()["results"]
    assert [r["status"] for r in results] == [200, 409]


def test_the_owner_changes_them_by_api_with_a_note_on_the_timeline(acme, api, api_read, software):
    engagement_id = api.post("purchases/", _purchase(success_criteria=...)).json()["engagement"]["id"]

    before = api.get(f"engagements/{engagement_id}/").json()["updated_at"]
    response = api.patch(f"engagements/{engagement_id}/", {"success_criteria": [*PROMISED, "  ", PROMISED[0]]})
    assert response.status_code == 200 and response.json()["success_criteria"] == PROMISED  # as a purchase's
    assert response.json()["updated_at"] > before
    # The same list again changes nothing and notes nothing.
    api.patch(f"engagements/{engagement_id}/", {"success_criteria": PROMISED})
    with tenant_scope(acme):
        notes = list(Note.objects.filter(engagement_id=engagement_id).values_list("body", flat=True))
        assert notes == ["Success criteria:\n- Invoices out in one day\n- Team of five trained"]
        assert AuditEntry.objects.filter(action="engagement.criteria_set").count() == 1
    error = error_of(api.patch(f"engagements/{engagement_id}/", {"success_criteria": "one"}), 400)
    assert "list of short texts" in error["fields"]["success_criteria"][0]
    eleven = [f"Outcome {n}" for n in range(11)]
    error = error_of(api.patch(f"engagements/{engagement_id}/", {"success_criteria": eleven}), 400)
    assert error["fields"]["success_criteria"] == ["Give at most 10 criteria."]
    error = error_of(api.patch(f"engagements/{engagement_id}/", {"success_criteria": ["ok", 5]}), 400)
    assert error["fields"]["success_criteria.1"] == ["Give each criterion as text."]
    error_of(api_read.patch(f"engagements/{engagement_id}/", {"success_criteria": []}), 403)
    assert _stored(acme) == PROMISED


def test_an_import_reads_them_one_a_line_or_separated_by_semicolons(db):
    world = build_world(TenantFactory(slug="imp"), Actor.system("tests"))
    raw = (
        b"Order ID,Customer ID,Company,Offering,Purchase date,Success criteria\n"
        b'IMP-1,IC-1,Ada Ltd,imp-software,2026-11-02 09:30,"Invoices out in one day; Team trained"\n'
        b'IMP-2,IC-2,Bob Ltd,imp-software,2026-11-03,"Reports by Monday\nNo more spreadsheets"\n'
    )
    run = _create(world, raw)
    assert run.mapping["Success criteria"] == "success_criteria"
    run = _run(world, _start(world, run))

    assert (run.created, run.rejected) == (2, 0)
    assert _stored(world.tenant, "IMP-1") == ["Invoices out in one day", "Team trained"]
    assert _stored(world.tenant, "IMP-2") == ["Reports by Monday", "No more spreadsheets"]


# Answers: a satisfaction event says which were met ------------------------------------------------------


def test_a_satisfaction_event_records_which_criteria_were_met(acme, api, software):
    engagement_id = api.post("purchases/", _purchase()).json()["engagement"]["id"]
    answers = {"Invoices out in one day": True, " Team of five  trained": False}

    response = api.post("events/", {"type": "satisfaction", "purchase": "P-7", "score": 4,
                                    "occurred_at": iso(ago(1)), "criteria_met": answers})  # fmt: skip

    assert response.status_code == 201
    kept = {"Invoices out in one day": True, "Team of five trained": False}
    assert response.json()["criteria_met"] == kept
    [satisfaction] = [t for t in api.get(f"engagements/{engagement_id}/").json()["timeline"] if t["score"]]
    assert satisfaction["criteria_met"] == kept
    batch = {
        "kind": "event",
        "data": {
            "type": "satisfaction",
            "purchase": "P-7",
            "score": 5,
            "occurred_at": iso(ago(0)),
            "criteria_met": {"Team of five trained": True},
        },
    }
    assert api.post("batch/", {"items": [batch]}).json()["results"][0]["status"] == 201
    with tenant_scope(acme):
        satisfactions = Event.objects.filter(type="satisfaction").order_by("occurred_at")
        stored = list(satisfactions.values_list("criteria_met", flat=True))
    assert stored == [kept, {"Team of five trained": True}]
    # No answers at all is none, not an empty one.
    empty = {"type": "satisfaction", "purchase": "P-7", "score": 3, "occurred_at": iso(ago(0)), "criteria_met": {}}
    assert api.post("events/", empty).json()["criteria_met"] is None


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ({"type": "paused", "criteria_met": {"Invoices out in one day": True}}, "Only satisfaction events"),
        ({"type": "satisfaction", "score": 4, "criteria_met": {"Invoices out in one day": "yes"}}, "true or false"),
        ({"type": "satisfaction", "score": 4, "criteria_met": ["Invoices out in one day"]}, "true or false"),
        ({"type": "satisfaction", "score": 4, "criteria_met": {"x" * 201: True}}, "up to 200 characters"),
        ({"type": "satisfaction", "score": 4, "criteria_met": {"Team": True, " team ": False}}, "answered twice"),
    ],
)
def test_answers_that_are_not_yes_or_no_per_criterion_are_refused(acme, api, software, event, words):
    api.post("purchases/", _purchase())
    error = error_of(api.post("events/", {"purchase": "P-7", "occurred_at": iso(ago(1)), **event}), 400)
    assert words in " ".join(error["fields"]["criteria_met"])
    with tenant_scope(acme):
        assert not Event.objects.exists()
