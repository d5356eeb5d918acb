"""GET/POST /offerings/, GET/PUT /offerings/{key}/: offerings with their journeys."""

import pytest

from engagement.models import Engagement, Milestone, Offering
from tenants.scoping import tenant_scope
from tests.api.conftest import JOURNEY, count, error_of

OFFERING_KEYS = {
    "key",
    "name",
    "requires_satisfaction",
    "satisfaction_threshold",
    "confirm_value",
    "target_days",
    "milestones",
}


def _milestones_out(journey):
    last = len(journey) - 1
    return [
        {"key": m["key"], "name": m["name"], "order": i, "due_day": m["due_day"], "is_pov": i == last}
        for i, m in enumerate(journey)
    ]


def test_post_creates_201_with_the_journey(acme, api):
    response = api.post("offerings/", {"key": "software", "name": "Software", "milestones": JOURNEY})
    assert response.status_code == 201
    assert response.json() == {
        "key": "software",
        "name": "Software",
        "requires_satisfaction": False,
        "satisfaction_threshold": 4,
        "confirm_value": False,
        "target_days": 14,
        "milestones": _milestones_out(JOURNEY),
    }
    with tenant_scope(acme):
        assert list(Milestone.objects.order_by("order").values_list("key", "is_pov")) == [
            ("kickoff", False), ("onboarded", False), ("live", True),
        ]  # fmt: skip


def test_post_with_satisfaction_settings(api):
    body = {"key": "coaching", "name": "Coaching", "requires_satisfaction": True, "satisfaction_threshold": 5,
            "milestones": [{"key": "call", "name": "First call", "due_day": 10}]}  # fmt: skip
    response = api.post("offerings/", body)
    assert response.status_code == 201
    out = response.json()
    assert (out["requires_satisfaction"], out["satisfaction_threshold"], out["target_days"]) == (True, 5, 10)


def test_post_an_existing_key_is_409_and_changes_nothing(acme, api, software):
    response = api.post("offerings/", {"key": "software", "name": "Other", "milestones": JOURNEY[:1]})
    error = error_of(response, 409, "conflict")
    assert error["message"] == (
        "The key 'software' is taken by the journey 'Software'; edit that one or choose another key."
    )
    with tenant_scope(acme):
        assert Offering.objects.get().name == "Software"
        assert Milestone.objects.count() == 3


def test_put_replaces_the_offering_200(acme, api, software):
    journey = [
        {"key": "kickoff", "name": "Kick-off call", "due_day": 3},
        {"key": "training", "name": "Training", "due_day": 5},
        {"key": "onboarded", "name": "Onboarded", "due_day": 9},
        {"key": "live", "name": "Live", "due_day": 21},
    ]
    body = {"key": "software", "name": "Software 2", "requires_satisfaction": True, "milestones": journey}
    response = api.put("offerings/software/", body)
    assert response.status_code == 200
    assert response.json() == {
        "key": "software",
        "name": "Software 2",
        "requires_satisfaction": True,
        "satisfaction_threshold": 4,
        "confirm_value": False,
        "target_days": 21,
        "milestones": _milestones_out(journey),
    }
    assert api.get("offerings/software/").json() == response.json()
    assert count(acme, Offering) == 1


def test_put_may_drop_milestones_without_events(acme, api, software):
    response = api.put("offerings/software/", {"key": "software", "name": "Software", "milestones": JOURNEY[1:]})
    assert response.status_code == 200
    assert [m["key"] for m in response.json()["milestones"]] == ["onboarded", "live"]
    assert count(acme, Milestone) == 2


def test_put_refuses_to_drop_a_milestone_with_events_409(acme, api, acme_purchase):
    response = api.put("offerings/software/", {"key": "software", "name": "Software", "milestones": JOURNEY[1:]})
    error = error_of(response, 409, "conflict")
    assert error["fields"] == {"milestones": ["kickoff"]}
    assert "kickoff" in error["message"]
    assert count(acme, Milestone) == 3


def test_put_moves_due_days_of_existing_engagements(acme, api, acme_purchase):
    # P-1 was bought 20 days ago and reached kickoff: onboarded is due on day 7, long past.
    assert api.get(f"engagements/{acme_purchase.engagement.id}/").json()["status"] == "stalled"
    journey = [{**m, "due_day": m["due_day"] + 30} for m in JOURNEY]
    assert (
        api.put("offerings/software/", {"key": "software", "name": "Software", "milestones": journey}).status_code
        == 200
    )
    assert api.get(f"engagements/{acme_purchase.engagement.id}/").json()["status"] == "on_track"
    with tenant_scope(acme):
        assert Engagement.objects.get().status == "on_track"


def test_put_a_new_key_creates_201(acme, api):
    response = api.put("offerings/training/", {"key": "training", "name": "Training", "milestones": JOURNEY})
    assert response.status_code == 201
    assert response.json()["key"] == "training"
    assert count(acme, Offering) == 1


def test_put_with_another_key_in_the_body_is_400(acme, api, software):
    error = error_of(
        api.put("offerings/software/", {"key": "other", "name": "X", "milestones": JOURNEY}), 400, "invalid"
    )
    assert error["fields"] == {"key": ["The body's key 'other' differs from the URL's 'software'."]}
    assert count(acme, Offering) == 1
    with tenant_scope(acme):
        assert not Offering.objects.filter(key="other").exists()


def test_get_list_and_detail(api, software):
    api.post("offerings/", {"key": "academy", "name": "Academy", "milestones": JOURNEY[:1]})
    listing = api.get("offerings/")
    assert listing.status_code == 200
    body = listing.json()
    assert set(body) == {"results", "next"}
    assert [o["key"] for o in body["results"]] == ["academy", "software"]
    assert all(set(o) == OFFERING_KEYS for o in body["results"])
    detail = api.get("offerings/software/")
    assert detail.status_code == 200
    assert detail.json()["milestones"] == _milestones_out(JOURNEY)


def test_unknown_offering_is_404(api, software):
    error_of(api.get("offerings/hardware/"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"key": "x", "name": "X", "milestones": []}, {"milestones"}),
        ({"key": "x", "name": "X"}, {"milestones"}),
        ({"key": "x", "milestones": JOURNEY}, {"name"}),
        ({"key": "bad key!", "name": "X", "milestones": JOURNEY}, {"key"}),
        ({"key": "x", "name": "X", "milestones": [{"key": "a b", "name": "A", "due_day": 1}]}, {"milestones.0.key"}),
        (
            {"key": "x", "name": "X", "milestones": [{"key": "a", "name": "A", "due_day": 1},
                                                     {"key": "a", "name": "B", "due_day": 2}]},
            {"milestones.1.key"},
        ),
        (
            {"key": "x", "name": "X", "milestones": [{"key": "a", "name": "A", "due_day": 5},
                                                     {"key": "b", "name": "B", "due_day": 2}]},
            {"milestones.1.due_day"},
        ),
        ({"key": "x", "name": "X", "milestones": [{"key": "a", "name": "A", "due_day": -1}]}, {"milestones.0.due_day"}),
        ({"key": "x", "name": "X", "milestones": [{"key": "a", "name": "A"}]}, {"milestones.0.due_day"}),
        ({"key": "x", "name": "X", "milestones": [{"key": "a", "name": "A", "due_day": 1, "extra": 1}]},
         {"milestones.0.extra"}),
        ({"key": "x", "name": "X", "satisfaction_threshold": 6, "milestones": JOURNEY}, {"satisfaction_threshold"}),
        ({"key": "x", "name": "X", "satisfaction_threshold": 0, "milestones": JOURNEY}, {"satisfaction_threshold"}),
        ({"key": "x", "name": "X", "colour": "red", "milestones": JOURNEY}, {"colour"}),
        (
            {"key": "x", "name": "X", "milestones": [{"key": "satisfaction", "name": "S", "due_day": 1}]},
            {"milestones.0.key"},
        ),
    ],
)  # fmt: skip
def test_invalid_offering_is_400_naming_the_field(acme, api, body, fields):
    error = error_of(api.post("offerings/", body), 400, "invalid")
    assert set(error["fields"]) == fields
    assert count(acme, Offering) == 0
