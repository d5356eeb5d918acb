"""GET /engagements/ (filters), GET /engagements/{id}/ (journey, timeline), PATCH (reassign as a handoff)."""

from datetime import timedelta

import pytest

from engagement.models import Note
from engagement.services import customer_upsert, event_record, offering_save, purchase_record
from metrics.rollups import recompute_rollups
from tenants.scoping import tenant_scope
from tests.api.conftest import JOURNEY, ago, count, error_of, z
from tests.api.test_purchases import ENGAGEMENT_KEYS

LISTED_KEYS = ENGAGEMENT_KEYS | {"forecast"}
DETAIL_KEYS = LISTED_KEYS | {"journey", "timeline"}


@pytest.fixture
def engagements(acme, software, members, actor):
    """One engagement per status, external ids named after it:
    P-reached (40 days ago, owner@, enterprise), P-paused (25, smb), P-stalled (10, training, second@, smb),
    P-lost (5, enterprise), P-on_track (2 hours, sales rep sales@, smb)."""
    with tenant_scope(acme):
        training = offering_save(
            tenant=acme, key="training", name="Training", actor=actor,
            milestones=[{"key": "intro", "name": "Intro", "due_day": 1}, {"key": "done", "name": "Done", "due_day": 5}],
        )[0]  # fmt: skip
        enterprise = customer_upsert(tenant=acme, external_id="C-E", name="Big", segment="enterprise", actor=actor)[0]
        small = customer_upsert(tenant=acme, external_id="C-S", name="Small", segment="smb", actor=actor)[0]
        specs = [
            ("reached", enterprise, software, 40, members["owner@acme.test"], None,
             [("milestone", "kickoff", 39), ("milestone", "onboarded", 35), ("milestone", "live", 30)]),
            ("paused", small, software, 25, None, None, [("milestone", "kickoff", 24), ("paused", None, 23)]),
            ("stalled", small, training, 10, members["second@acme.test"], None, []),
            ("lost", enterprise, software, 5, None, None, [("lost", None, 4)]),
            ("on_track", small, software, 2 / 24, None, members["sales@acme.test"], []),
        ]  # fmt: skip
        ids = {}
        for status, customer, offering, days, owner, sales_rep, events in specs:
            purchase = purchase_record(
                tenant=acme, external_id=f"P-{status}", customer=customer, offering=offering, purchased_at=ago(days),
                owner=owner, sales_rep=sales_rep, actor=actor,
            )[0]  # fmt: skip
            for type_, milestone, days_ago in events:
                event_record(tenant=acme, engagement=purchase.engagement, type=type_, milestone=milestone,
                             occurred_at=ago(days_ago), actor=actor)  # fmt: skip
            ids[status] = str(purchase.engagement.id)
        return ids


def _purchases(response):
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"results", "next"}
    return sorted(e["purchase"]["external_id"].removeprefix("P-") for e in body["results"])


def test_list_has_every_engagement_with_the_derived_fields(api, engagements):
    response = api.get("engagements/")
    assert _purchases(response) == sorted(engagements)
    rows = response.json()["results"]
    assert all(set(row) == LISTED_KEYS for row in rows)
    assert {row["purchase"]["external_id"]: row["status"] for row in rows} == {f"P-{s}": s for s in engagements}
    # Newest purchase first.
    assert [row["purchase"]["external_id"] for row in rows] == [
        "P-on_track", "P-lost", "P-stalled", "P-paused", "P-reached",
    ]  # fmt: skip
    reached = next(row for row in rows if row["status"] == "reached")
    assert (reached["days_to_value"], reached["pov_at"], reached["owner"]) == (10.0, z(ago(30)), "owner@acme.test")


def test_open_engagements_carry_their_forecast_and_filter_on_at_risk(acme, api, engagements):
    with tenant_scope(acme):
        recompute_rollups(acme)
    rows = {row["status"]: row for row in api.get("engagements/").json()["results"]}

    assert rows["reached"]["forecast"] is None and rows["lost"]["forecast"] is None
    # Of the software customers, the one who reached PoV took 10 days; the target is day 14.
    assert set(rows["on_track"]["forecast"]) == {"reach_by_target", "expected_pov_day", "at_risk"}
    # The stalled training customer is past its 5-day target: no chance left, at risk.
    assert rows["stalled"]["forecast"] == {"reach_by_target": 0.0, "expected_pov_day": None, "at_risk": True}
    at_risk = {row["status"] for row in api.get("engagements/", {"at_risk": "true"}).json()["results"]}
    not_at_risk = {row["status"] for row in api.get("engagements/", {"at_risk": "false"}).json()["results"]}
    assert "stalled" in at_risk and at_risk.isdisjoint(not_at_risk)
    assert at_risk | not_at_risk == set(engagements)
    detail = api.get(f"engagements/{engagements['stalled']}/").json()
    assert detail["forecast"]["at_risk"] is True


def test_status_filter(api, engagements):
    found = {status: _purchases(api.get("engagements/", {"status": status})) for status in engagements}
    assert found == {status: [status] for status in engagements}


FILTER_CASES = [
    ({"offering": "training"}, ["stalled"]),
    ({"offering": "software"}, ["lost", "on_track", "paused", "reached"]),
    ({"offering": "hardware"}, []),
    ({"owner": "owner@acme.test"}, ["reached"]),
    ({"owner": "SECOND@acme.test"}, ["stalled"]),
    ({"owner": "nobody@acme.test"}, []),
    ({"sales_rep": "sales@acme.test"}, ["on_track"]),
    ({"sales_rep": "owner@acme.test"}, []),
    ({"segment": "smb"}, ["on_track", "paused", "stalled"]),
    ({"segment": "enterprise"}, ["lost", "reached"]),
    ({"segment": "public"}, []),
    ({"segment": "smb", "offering": "software"}, ["on_track", "paused"]),
    ({"status": "reached", "owner": "second@acme.test"}, []),
]


def test_filters_narrow(api, engagements):
    # One fixture for every case: each filter must narrow the five engagements to exactly these.
    found = [(params, _purchases(api.get("engagements/", params))) for params, _ in FILTER_CASES]
    assert found == FILTER_CASES


def _local_date(acme, days):
    return ago(days).astimezone(acme.tzinfo).date().isoformat()


def test_purchase_date_filters_narrow_in_the_tenant_time_zone(acme, api, engagements):
    assert _purchases(api.get("engagements/", {"purchased_from": _local_date(acme, 20)})) == [
        "lost", "on_track", "stalled",
    ]  # fmt: skip
    assert _purchases(api.get("engagements/", {"purchased_to": _local_date(acme, 20)})) == ["paused", "reached"]
    window = {"purchased_from": _local_date(acme, 12), "purchased_to": _local_date(acme, 7)}
    assert _purchases(api.get("engagements/", window)) == ["stalled"]
    # purchased_to is inclusive: the day of a purchase includes it.
    assert _purchases(api.get("engagements/", {"purchased_to": _local_date(acme, 10)})) == [
        "paused", "reached", "stalled",
    ]  # fmt: skip


BAD_FILTERS = [
    ({"status": "bogus"}, "status"),
    ({"purchased_from": "notadate"}, "purchased_from"),
    ({"purchased_to": "2026-13-01"}, "purchased_to"),
    ({"purchased_from": "2026-05-02", "purchased_to": "2026-05-01"}, "purchased_to"),
    ({"at_risk": "maybe"}, "at_risk"),
]


def test_bad_filter_value_is_400_naming_the_parameter(api, engagements):
    for params, field in BAD_FILTERS:
        error = error_of(api.get("engagements/", params), 400, "invalid")
        assert set(error["fields"]) == {field}, params
        assert error["message"].startswith(f"{field}: "), params


def test_bad_filter_message_quotes_the_value(api, engagements):
    error = error_of(api.get("engagements/", {"status": "bogus", "purchased_from": "notadate"}), 400, "invalid")
    assert error["fields"] == {
        "status": ["'bogus' is not one of: on_track, stalled, paused, reached, lost."],
        "purchased_from": ["'notadate' is not a date (YYYY-MM-DD)."],
    }


def test_list_pages_with_a_cursor(api, engagements):
    first = api.get("engagements/", {"limit": 3}).json()
    assert [e["purchase"]["external_id"] for e in first["results"]] == ["P-on_track", "P-lost", "P-stalled"]
    second = api.get(first["next"]).json()
    assert [e["purchase"]["external_id"] for e in second["results"]] == ["P-paused", "P-reached"]
    assert second["next"] is None


def test_filters_survive_paging(api, engagements):
    first = api.get("engagements/", {"segment": "smb", "limit": 2}).json()
    second = api.get(first["next"]).json()
    ids = [e["purchase"]["external_id"] for e in first["results"] + second["results"]]
    assert ids == ["P-on_track", "P-stalled", "P-paused"]


# Detail ------------------------------------------------------------------------------------------------


def test_detail_has_the_journey_and_the_timeline(api, engagements):
    response = api.get(f"engagements/{engagements['reached']}/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == DETAIL_KEYS
    assert body["status"] == "reached"
    bought = ago(40)
    assert body["journey"] == [
        {"key": m["key"], "name": m["name"], "due_at": z(bought + timedelta(days=m["due_day"])),
         "reached_at": z(ago(days)), "clock_days": 40.0 - days, "overdue": False}
        for m, days in zip(JOURNEY, (39, 35, 30), strict=True)
    ]  # fmt: skip
    assert [(t["kind"], t["type"], t["milestone"], t["at"]) for t in body["timeline"]] == [
        ("event", "milestone", "kickoff", z(ago(39))),
        ("event", "milestone", "onboarded", z(ago(35))),
        ("event", "milestone", "live", z(ago(30))),
    ]
    keys = {"at", "kind", "type", "milestone", "score", "criteria_met", "text", "by"}
    assert all(set(t) == keys for t in body["timeline"])
    assert body["timeline"][0]["by"] == "tests"


def test_detail_marks_overdue_milestones(api, engagements):
    journey = api.get(f"engagements/{engagements['stalled']}/").json()["journey"]
    assert [(m["key"], m["reached_at"], m["overdue"]) for m in journey] == [("intro", None, True), ("done", None, True)]


def test_unknown_engagement_is_404(api, engagements):
    for engagement_id in ("00000000-0000-4000-8000-000000000000", "not-a-uuid", "P-reached"):
        error_of(api.get(f"engagements/{engagement_id}/"), 404, "not_found")
        error_of(api.patch(f"engagements/{engagement_id}/", {"owner": None}), 404, "not_found")
    assert api.get(f"engagements/{engagements['reached']}/").json()["owner"] == "owner@acme.test"


# PATCH: reassignment as a handoff ----------------------------------------------------------------------


def test_patch_reassigns_the_owner_as_a_handoff_in_the_timeline(acme, api, acme_write_key, engagements):
    url = f"engagements/{engagements['reached']}/"
    response = api.patch(url, {"owner": "second@acme.test", "note": "Alex is on leave"})
    assert response.status_code == 200
    assert set(response.json()) == LISTED_KEYS
    assert (response.json()["owner"], response.json()["sales_rep"]) == ("second@acme.test", None)
    timeline = api.get(url).json()["timeline"]
    assert timeline[-1] == {
        "at": timeline[-1]["at"],
        "kind": "note",
        "type": "handoff",
        "milestone": None,
        "score": None,
        "criteria_met": None,
        "text": "Owner: owner@acme.test → second@acme.test\nAlex is on leave",
        "by": f"api key {acme_write_key[0].prefix}",
    }
    assert api.get("engagements/", {"owner": "second@acme.test"}).json()["results"][0]["id"] in (
        engagements["reached"], engagements["stalled"],
    )  # fmt: skip
    assert _purchases(api.get("engagements/", {"owner": "second@acme.test"})) == ["reached", "stalled"]


def test_patch_sales_rep_and_owner_together(api, engagements):
    url = f"engagements/{engagements['lost']}/"
    body = api.patch(url, {"owner": "owner@acme.test", "sales_rep": "sales@acme.test"}).json()
    assert (body["owner"], body["sales_rep"]) == ("owner@acme.test", "sales@acme.test")
    assert api.get(url).json()["timeline"][-1]["text"] == (
        "Owner: nobody → owner@acme.test\nSales rep: nobody → sales@acme.test"
    )


def test_patch_null_unassigns(acme, api, engagements):
    url = f"engagements/{engagements['reached']}/"
    response = api.patch(url, {"owner": None})
    assert response.status_code == 200
    assert response.json()["owner"] is None
    assert api.get(url).json()["timeline"][-1]["text"] == "Owner: owner@acme.test → nobody"
    assert _purchases(api.get("engagements/", {"owner": "owner@acme.test"})) == []


def test_patch_without_a_change_adds_no_handoff(acme, api, engagements):
    url = f"engagements/{engagements['reached']}/"
    response = api.patch(url, {"owner": "owner@acme.test"})
    assert (response.status_code, response.json()["owner"]) == (200, "owner@acme.test")
    assert count(acme, Note) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"owner": "nobody@acme.test"}, "owner"),
        ({"owner": "owner@charlie.test"}, "owner"),
        ({"sales_rep": "nobody@acme.test"}, "sales_rep"),
        ({"owner": "not-an-email"}, "owner"),
        ({"status": "reached"}, "status"),
    ],
)
def test_patch_with_an_unknown_member_or_field_is_400_and_changes_nothing(acme, api, engagements, body, field):
    url = f"engagements/{engagements['reached']}/"
    error = error_of(api.patch(url, body), 400, "invalid")
    assert set(error["fields"]) == {field}
    assert api.get(url).json()["owner"] == "owner@acme.test"
    assert count(acme, Note) == 0


def test_unknown_member_message(api, engagements):
    error = error_of(api.patch(f"engagements/{engagements['reached']}/", {"owner": "x@acme.test"}), 400, "invalid")
    assert error["fields"] == {"owner": ["'x@acme.test' is not a member of this company."]}


def test_engagements_cannot_be_created_or_deleted(api, engagements):
    error_of(api.post("engagements/", {}), 405, "method_not_allowed")
    response = api.client.delete(api.url(f"engagements/{engagements['lost']}/"), HTTP_AUTHORIZATION=api.authorization)
    error_of(response, 405, "method_not_allowed")


def test_date_filters_use_the_tenant_time_zone_not_utc(acme, api, software, actor):
    # 23:30 UTC on 14 January is 00:30 on 15 January in Berlin (acme's time zone).
    from datetime import UTC, datetime

    with tenant_scope(acme):
        ada = customer_upsert(tenant=acme, external_id="C-1", name="Ada", actor=actor)[0]
        purchase_record(tenant=acme, external_id="P-late", customer=ada, offering=software, actor=actor,
                        purchased_at=datetime(2026, 1, 14, 23, 30, tzinfo=UTC))  # fmt: skip
    assert acme.time_zone == "Europe/Berlin"
    assert _purchases(api.get("engagements/", {"purchased_from": "2026-01-15"})) == ["late"]
    assert _purchases(api.get("engagements/", {"purchased_to": "2026-01-14"})) == []
    assert _purchases(api.get("engagements/", {"purchased_from": "2026-01-15", "purchased_to": "2026-01-15"})) == [
        "late"
    ]


def test_a_tampered_cursor_is_404_json(api, engagements):
    error_of(api.get("engagements/", {"cursor": "garbage"}), 404, "not_found")
