"""Metrics and alert endpoints: numbers over a small known record, filters, and tenant isolation."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from engagement import outbox
from engagement.services import customer_upsert, event_record, purchase_record
from metrics.alerts import stalled_scan
from metrics.models import Alert
from metrics.rollups import recompute_rollups
from tenants.scoping import tenant_scope
from tests.api.conftest import ago, error_of


@pytest.fixture
def record(acme, software, acme_purchase, actor):
    """P-1 stalled (kickoff only), P-2 reached PoV in exactly 5 days, P-3 lost after 2 days."""
    with tenant_scope(acme):
        smb = customer_upsert(tenant=acme, external_id="C-2", name="Bo", segment="smb", actor=actor)[0]
        reached = purchase_record(tenant=acme, external_id="P-2", customer=smb, offering=software,
                                  purchased_at=ago(30), actor=actor)[0]  # fmt: skip
        event_record(tenant=acme, engagement=reached.engagement, type="milestone", milestone="live",
                     occurred_at=ago(25), actor=actor)  # fmt: skip
        lost = purchase_record(tenant=acme, external_id="P-3", customer=smb, offering=software,
                               purchased_at=ago(10), actor=actor)[0]  # fmt: skip
        event_record(tenant=acme, engagement=lost.engagement, type="lost", reason="Cancelled",
                     occurred_at=ago(8), actor=actor)  # fmt: skip
    return acme


def test_summary_counts_rates_and_the_competing_curves(api, record):
    response = api.get("metrics/summary/")
    assert response.status_code == 200, response.content
    body = response.json()
    counts = {k: body[k] for k in ("purchases", "reached", "lost", "stalled", "on_track", "paused", "unowned")}
    assert counts == {"purchases": 3, "reached": 1, "lost": 1, "stalled": 1, "on_track": 0, "paused": 0, "unowned": 3}
    assert body["pov_rate"] == pytest.approx(1 / 3)
    assert body["median_days_among_reached"] == pytest.approx(5.0)
    # P-3 is lost on day 2, a third of the buyers; P-2 reaches PoV on day 5, when two of three are waiting:
    # a third of all buyers, not the half a curve censoring the loss would claim. P-1 is still open.
    assert [(p["day"], p["share"]) for p in body["reached_curve"]] == [
        (2.0, 0.0),
        (pytest.approx(5.0), pytest.approx(1 / 3)),
    ]
    assert [(p["day"], p["share"]) for p in body["lost_curve"]] == [
        (2.0, pytest.approx(1 / 3)),
        (pytest.approx(5.0), pytest.approx(1 / 3)),
    ]
    assert body["days_to_value_p50"] is None  # a third so far: not yet half
    assert body["target_days"] == 14
    assert body["reached_by_target"]["share"] == pytest.approx(1 / 3)
    assert body["computed_at"]


def test_summary_filters_narrow_and_bad_values_are_named(api, record):
    assert api.get("metrics/summary/", {"segment": "smb"}).json()["purchases"] == 2
    assert api.get("metrics/summary/", {"offering": "nothing"}).json()["purchases"] == 0
    assert api.get("metrics/summary/", {"offering": "nothing"}).json()["pov_rate"] is None
    assert "purchased_from" in error_of(api.get("metrics/summary/", {"purchased_from": "soon"}), 400)["fields"]


def test_cohorts_funnel_and_scoreboards(api, record):
    cohorts = api.get("metrics/cohorts/").json()["results"]
    assert sum(c["purchases"] for c in cohorts) == 3
    assert sum(c["reached"] for c in cohorts) == 1
    funnel = api.get("metrics/funnel/", {"offering": "software"}).json()
    assert funnel["purchases"] == 3
    assert [(m["milestone"], m["reached"]) for m in funnel["milestones"]] == [
        ("kickoff", 1), ("onboarded", 0), ("live", 1),
    ]  # fmt: skip
    assert funnel["milestones"][2]["median_clock_days"] == pytest.approx(5.0)
    owners = api.get("metrics/owners/").json()["results"]
    assert [(o["owner"], o["purchases"], o["rankable"]) for o in owners] == [(None, 3, False)]  # three: too few to rank
    assert owners[0]["reached_by_target"]["share"] == pytest.approx(1 / 3)
    assert api.get("metrics/sales-reps/").json()["results"][0]["sales_rep"] is None


def test_funnel_needs_a_known_offering(api, record):
    assert "offering" in error_of(api.get("metrics/funnel/"), 400)["fields"]
    assert "offering" in error_of(api.get("metrics/funnel/", {"offering": "nope"}), 404)["fields"]


def test_another_tenant_sees_none_of_the_numbers(charlie_api, record, charlie_data):
    assert charlie_api.get("metrics/summary/").json()["purchases"] == 1
    error_of(charlie_api.get("metrics/funnel/", {"offering": "software"}), 404)
    assert charlie_api.get("metrics/owners/").json()["results"][0]["purchases"] == 1


def _open_alert(tenant):
    with tenant_scope(tenant):
        stalled_scan(tenant)
        return Alert.objects.get()


def test_the_stalled_scan_opens_one_alert_listed_most_overdue_first(api, record):
    alert = _open_alert(record)
    with tenant_scope(record):
        stalled_scan(record)  # twice: still one alert
        assert Alert.objects.count() == 1
    results = api.get("alerts/").json()["results"]
    assert [(r["id"], r["purchase"], r["step"], r["state"]) for r in results] == [
        (str(alert.id), "P-1", "onboarded", "open")
    ]
    assert results[0]["days_overdue"] > 0
    assert api.get("alerts/", {"state": "resolved"}).json()["results"] == []
    assert "state" in error_of(api.get("alerts/", {"state": "bogus"}), 400)["fields"]


def test_acknowledge_and_resolve_need_a_write_key_and_the_right_tenant(api, api_read, charlie_api, record, members):
    alert = _open_alert(record)
    path = f"alerts/{alert.id}/"
    error_of(api_read.post(path + "acknowledge/"), 403)
    error_of(charlie_api.post(path + "acknowledge/"), 404)
    error_of(charlie_api.post(path + "resolve/"), 404)
    acknowledged = api.post(path + "acknowledge/", {"assignee": "owner@acme.test"})
    assert acknowledged.status_code == 200, acknowledged.content
    assert (acknowledged.json()["state"], acknowledged.json()["assignee"]) == ("acknowledged", "owner@acme.test")
    assert "assignee" in error_of(api.post(path + "acknowledge/", {"assignee": "owner@charlie.test"}), 400)["fields"]
    resolved = api.post(path + "resolve/").json()
    assert (resolved["state"], resolved["resolution"]) == ("resolved", "manual")
    assert [a["id"] for a in api.get("alerts/", {"state": "resolved"}).json()["results"]] == [str(alert.id)]
    assert charlie_api.get("alerts/").json()["results"] == []


def test_reaching_the_milestone_resolves_the_alert_through_the_outbox(api, record, acme_purchase, actor):
    alert = _open_alert(record)
    with tenant_scope(record):
        event_record(tenant=record, engagement=acme_purchase.engagement, type="milestone", milestone="onboarded",
                     occurred_at=ago(1), actor=actor)  # fmt: skip
        outbox.drain(record)
        alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", "reached")


def test_metrics_are_read_from_the_stored_rollups_once_computed(api, record):
    computed_at = timezone.now() - timedelta(seconds=30)
    with tenant_scope(record):
        recompute_rollups(record, now=computed_at)
    stored = api.get("metrics/summary/").json()
    assert parse_datetime(stored["computed_at"]) == computed_at
    assert (stored["purchases"], stored["reached"], stored["lost"]) == (3, 1, 1)
    by_segment = api.get("metrics/summary/?segment=smb").json()
    assert (parse_datetime(by_segment["computed_at"]), by_segment["purchases"]) == (computed_at, 2)
    # No rollup holds a segment within a purchase period: computed live, now.
    live = api.get("metrics/summary/?segment=smb&purchased_from=2000-01-01").json()
    assert parse_datetime(live["computed_at"]) > computed_at and live["purchases"] == 2


def test_the_trend_has_one_point_per_day_and_names_filters_it_cannot_serve(api, record):
    now = timezone.now()
    with tenant_scope(record):
        for days_back in (2, 1, 0):
            recompute_rollups(record, now=now - timedelta(days=days_back))
    points = api.get("metrics/trend/?days=2").json()["results"]
    assert [p["purchases"] for p in points] == [3, 3]
    assert points[0]["day"] < points[1]["day"]
    assert len(api.get("metrics/trend/?offering=software").json()["results"]) == 3
    response = api.get("metrics/trend/?offering=software&segment=smb")
    assert "at most one" in error_of(response, 400)["fields"]["filters"][0]
    response = api.get("metrics/trend/?days=0")
    assert "days" in error_of(response, 400)["fields"]


def test_another_tenant_gets_no_trend_of_ours(charlie_api, record):
    with tenant_scope(record):
        recompute_rollups(record)
    assert charlie_api.get("metrics/trend/").json()["results"] == []
