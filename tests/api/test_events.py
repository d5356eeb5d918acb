"""POST /events/: 201 with the engagement after the event; a duplicate external_id is 200."""

from datetime import timedelta

import pytest
from django.utils import timezone

from engagement import outbox
from engagement.cleaners import when
from engagement.models import Event, OutboxMessage
from engagement.services import offering_save
from tenants.scoping import tenant_scope
from tests.api.conftest import JOURNEY, ago, count, error_of, iso, z

EVENT_KEYS = {
    "id", "type", "occurred_at", "milestone", "score", "comment", "reason", "external_id", "source", "recorded_by",
    "criteria_met", "engagement",
}  # fmt: skip


def _event(**fields):
    body = {"type": "milestone", "purchase": "P-1", "milestone": "onboarded", "occurred_at": iso(ago(18))}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def test_milestone_event_is_201_with_the_engagement_after_it(acme, api, acme_write_key, acme_purchase):
    response = api.post("events/", _event(external_id="E-2", comment="Training done"))
    assert response.status_code == 201
    body = response.json()
    assert set(body) == EVENT_KEYS
    with tenant_scope(acme):
        stored = Event.objects.get(external_id="E-2")
    engagement = body.pop("engagement")
    assert body == {
        "id": str(stored.id),
        "type": "milestone",
        "occurred_at": z(ago(18)),
        "milestone": "onboarded",
        "score": None,
        "comment": "Training done",
        "reason": "",
        "criteria_met": None,
        "external_id": "E-2",
        "source": "api",
        "recorded_by": f"api key {acme_write_key[0].prefix}",
    }
    assert engagement["id"] == str(acme_purchase.engagement.id)
    assert engagement["next_milestone"] == "live"
    assert engagement["next_due_at"] == z(ago(20) + timedelta(days=14))
    # Live was due on day 14 (6 days ago); with 3 grace days the customer is stalled.
    assert engagement["status"] == "stalled"


def test_pov_milestone_reaches_pov(api, acme_purchase):
    engagement = api.post("events/", _event(milestone="live", occurred_at=iso(ago(8)))).json()["engagement"]
    assert engagement["status"] == "reached"
    assert engagement["pov_at"] == z(ago(8))
    assert engagement["days_to_value"] == 12.0
    assert engagement["calendar_days_to_value"] == 12.0
    assert engagement["next_milestone"] is None
    assert engagement["next_due_at"] is None


def test_an_event_after_a_journey_edit_follows_the_new_journey(acme, api, acme_purchase, software, actor):
    # The first event loads the journey into this process's cache of journeys.
    assert api.post("events/", _event(milestone="kickoff", occurred_at=iso(ago(19)))).status_code == 201
    edited = [*JOURNEY[:2], {"key": "trained", "name": "Trained", "due_day": 10}, {**JOURNEY[2], "due_day": 30}]
    with tenant_scope(acme):
        offering_save(tenant=acme, key="software", name="Software", milestones=edited, actor=actor)
    engagement = api.post("events/", _event(milestone="onboarded")).json()["engagement"]
    assert engagement["next_milestone"] == "trained"
    assert engagement["next_due_at"] == z(ago(20) + timedelta(days=10))
    engagement = api.post("events/", _event(milestone="trained", occurred_at=iso(ago(15)))).json()["engagement"]
    assert engagement["next_milestone"] == "live"
    assert engagement["next_due_at"] == z(ago(20) + timedelta(days=30))


def test_duplicate_external_id_is_200_with_the_stored_event(acme, api, acme_purchase):
    first = api.post("events/", _event(external_id="E-2"))
    second = api.post("events/", _event(external_id="E-2"))
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert count(acme, Event, external_id="E-2") == 1
    assert count(acme, Event) == 2  # the fixture's kickoff and this one


def test_duplicate_of_the_fixture_event_is_200_and_changes_nothing(acme, api, acme_purchase):
    response = api.post("events/", _event(milestone="kickoff", occurred_at=iso(ago(19)), external_id="E-1"))
    assert response.status_code == 200
    assert response.json()["external_id"] == "E-1"
    assert count(acme, Event) == 1


def test_events_without_external_id_are_each_recorded(acme, api, acme_purchase):
    statuses = [api.post("events/", _event()).status_code for _ in range(2)]
    assert statuses == [201, 201]
    assert count(acme, Event) == 3


def test_lost_pause_and_resume(api, acme_purchase):
    paused = api.post("events/", _event(type="paused", milestone=..., occurred_at=iso(ago(10)), reason="Holiday"))
    assert paused.status_code == 201
    assert paused.json()["engagement"]["status"] == "paused"
    assert paused.json()["engagement"]["paused_since"] == z(ago(10))
    resumed = api.post("events/", _event(type="resumed", milestone=..., occurred_at=iso(ago(5))))
    assert resumed.json()["engagement"]["paused_since"] is None
    assert resumed.json()["engagement"]["status"] in ("on_track", "stalled")
    lost = api.post("events/", _event(type="lost", milestone=..., occurred_at=iso(ago(1)), reason="Budget"))
    assert lost.status_code == 201
    assert (lost.json()["reason"], lost.json()["engagement"]["status"]) == ("Budget", "lost")
    assert lost.json()["engagement"]["lost_at"] == z(ago(1))


def test_reopened_takes_a_loss_back_and_tells_the_webhooks(acme, api, acme_purchase):
    api.post("events/", _event(type="lost", milestone=..., occurred_at=iso(ago(3)), reason="Budget"))
    reopened = api.post("events/", _event(type="reopened", milestone=..., occurred_at=iso(ago(1)), reason="Back"))
    assert reopened.status_code == 201
    engagement = reopened.json()["engagement"]
    assert (engagement["status"], engagement["lost_at"]) == ("stalled", None)
    with tenant_scope(acme):
        told = [m.payload for m in OutboxMessage.objects.filter(kind=outbox.REOPENED)]
        assert list(Event.objects.filter(type__in=["lost", "reopened"]).values_list("type", flat=True)) == [
            "lost", "reopened"
        ]  # fmt: skip
    assert told == [{"engagements": [engagement["id"]], "from": "lost", "to": "stalled"}]


def test_satisfaction_event_carries_the_score(api, acme_purchase):
    response = api.post("events/", _event(type="satisfaction", milestone=..., score=5, occurred_at=iso(ago(2))))
    assert response.status_code == 201
    assert (response.json()["type"], response.json()["score"], response.json()["milestone"]) == (
        "satisfaction", 5, None,
    )  # fmt: skip


def test_event_a_few_minutes_ahead_is_accepted(api, acme_purchase):
    soon = timezone.now() + timedelta(minutes=3)
    assert api.post("events/", _event(occurred_at=iso(soon))).status_code == 201


def test_event_more_than_five_minutes_ahead_is_400(acme, api, acme_purchase):
    later = timezone.now() + timedelta(minutes=6)
    error = error_of(api.post("events/", _event(occurred_at=iso(later))), 400, "invalid")
    assert error["fields"] == {"occurred_at": [f"{when(later)} is more than 5 minutes in the future."]}
    assert count(acme, Event) == 1


def test_event_before_the_purchase_is_400(acme, api, acme_purchase):
    before = ago(21)
    error = error_of(api.post("events/", _event(occurred_at=iso(before))), 400, "invalid")
    bought = acme_purchase.purchased_at.astimezone(before.tzinfo)  # said in the zone the time was sent in
    assert error["fields"] == {"occurred_at": [f"{when(before)} is before the purchase ({when(bought)})."]}
    assert "before the purchase" in error["message"]
    assert count(acme, Event) == 1


def test_unknown_milestone_is_400_listing_the_known_ones(api, acme_purchase):
    error = error_of(api.post("events/", _event(milestone="launch")), 400, "invalid")
    assert error["fields"] == {
        "milestone": ["'launch' is not a milestone of this offering (known: kickoff, onboarded, live)."]
    }


def test_unknown_purchase_is_404(acme, api, acme_purchase):
    error = error_of(api.post("events/", _event(purchase="P-404")), 404, "not_found")
    assert error["fields"] == {"purchase": ["No purchase 'P-404'."]}
    assert count(acme, Event) == 1


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"occurred_at": "2026-01-15T09:00:00"}, {"occurred_at"}),
        ({"occurred_at": "soon"}, {"occurred_at"}),
        ({"occurred_at": ...}, {"occurred_at"}),
        ({"type": "won"}, {"type"}),
        ({"type": ...}, {"type"}),
        ({"purchase": ...}, {"purchase"}),
        ({"milestone": ...}, {"milestone"}),
        ({"type": "satisfaction", "milestone": ..., "score": 0}, {"score"}),
        ({"type": "satisfaction", "milestone": ..., "score": 6}, {"score"}),
        ({"type": "satisfaction", "milestone": ..., "score": 4.5}, {"score"}),
        ({"type": "satisfaction", "milestone": ...}, {"score"}),
        ({"score": 3}, {"score"}),
        ({"type": "lost", "milestone": "kickoff"}, {"milestone"}),
        ({"channel": "email"}, {"channel"}),
        ({"comment": "c" * 4001}, {"comment"}),
    ],
)
def test_invalid_event_is_400_naming_the_field(acme, api, acme_purchase, changes, fields):
    error = error_of(api.post("events/", _event(**changes)), 400, "invalid")
    assert set(error["fields"]) == fields
    assert count(acme, Event) == 1


def test_naive_occurred_at_message_says_so(api, acme_purchase):
    error = error_of(api.post("events/", _event(occurred_at="2026-01-15T09:00:00")), 400, "invalid")
    assert error["fields"]["occurred_at"] == [
        "Give a time zone offset (e.g. 2026-05-01T09:00:00+02:00 or ...Z); naive times are ambiguous."
    ]


def test_events_has_no_list(api):
    error_of(api.get("events/"), 405, "method_not_allowed")


def test_event_at_the_instant_of_purchase_is_accepted(api, acme_purchase):
    response = api.post("events/", _event(occurred_at=iso(acme_purchase.purchased_at)))
    assert response.status_code == 201
