"""docs/metrics.md end to end: a few thousand purchases with PoV, losses and open ones, loaded through the batch
API, give through the metrics API and on the overview the curves, intervals and quantiles lifelines'
AalenJohansenFitter computes from the same events; every open engagement's forecast on the engagements API
is the formula on those curves; and the backtest prints its table."""

import io
import math
import random
import re
import warnings
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from lifelines import AalenJohansenFitter

from metrics.rollups import recompute_rollups
from tenants.scoping import tenant_scope
from tests.api.conftest import NOW, iso
from tests.factories import MemberFactory

PURCHASES = 2400
TARGET = 14  # the software journey's PoV milestone is due on day 14
TOL = 1e-9
POV, LOST = 1, 2


def history(rng):
    """[(purchase id, purchased_at, outcome, occurred_at or None)], every instant distinct to the microsecond."""
    rows = []
    for n in range(PURCHASES):
        bought = NOW - timedelta(days=1, microseconds=rng.randrange(59 * 86_400_000_000))
        waited = (NOW - timedelta(minutes=10) - bought) / timedelta(days=1)
        roll = rng.random()
        outcome = POV if roll < 0.55 else LOST if roll < 0.75 else 0
        at = bought + timedelta(microseconds=rng.randrange(int(waited * 86_400_000_000))) if outcome else None
        rows.append((f"P-{n}", bought, outcome, at))
    return rows


def batch_items(rows):
    items = []
    for ref, bought, outcome, at in rows:
        customer = {"external_id": f"C-{ref}", "name": f"Customer {ref}"}
        items.append({"kind": "purchase", "data": {"external_id": ref, "customer": customer, "offering": "software",
                                                   "purchased_at": iso(bought)}})  # fmt: skip
        if outcome == POV:
            event = {"type": "milestone", "milestone": "live"}
        elif outcome == LOST:
            event = {"type": "lost", "reason": "Chose a competitor"}
        else:
            continue
        items.append({"kind": "event", "data": {**event, "purchase": ref, "occurred_at": iso(at)}})
    return items


def load(api, items):
    for start in range(0, len(items), 1000):
        response = api.post("batch/", {"items": items[start : start + 1000]})
        assert response.status_code == 200, response.content[:500]
        assert {r["status"] for r in response.json()["results"]} == {201}


def fitted(rows, computed_at):
    """lifelines' fits of PoV and of loss, on the clock days of the same events (open ones at computed_at)."""
    durations = [((at or computed_at) - bought) / timedelta(days=1) for _, bought, _, at in rows]
    outcomes = [outcome for _, _, outcome, _ in rows]
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for outcome in (POV, LOST):
            fits[outcome] = AalenJohansenFitter(calculate_variance=True).fit(
                durations, outcomes, event_of_interest=outcome
            )
    return fits, durations


def at_day(fitter, day):
    """(share, low, high) of lifelines' step function at `day` (the last day on or before it)."""
    index = fitter.cumulative_density_.index
    position = index.searchsorted(day + 1e-9, side="right") - 1
    if position < 0:
        return 0.0, None, None
    share = float(fitter.cumulative_density_.iloc[position, 0])
    bounds = sorted(float(x) for x in fitter.confidence_interval_.iloc[position])
    return (share, None, None) if any(math.isnan(b) for b in bounds) else (share, *bounds)


def first_day(fitter, share):
    curve = fitter.cumulative_density_.iloc[:, 0]
    reached = curve[curve >= share - 1e-12]
    return float(reached.index[0]) if len(reached) else None


def assert_curve(points, fitter):
    assert len(points) > 100
    for point in points:
        share, low, high = at_day(fitter, point["day"])
        assert point["share"] == pytest.approx(share, abs=TOL), point
        assert (point["low"] is None) == (low is None), point
        if low is not None:
            assert (point["low"], point["high"]) == (pytest.approx(low, abs=TOL), pytest.approx(high, abs=TOL))


@pytest.mark.django_db
def test_a_batch_loaded_history_gives_lifelines_curves_forecasts_and_a_backtest(acme, api, software, login):
    rows = history(random.Random(19))
    load(api, batch_items(rows))
    with tenant_scope(acme):
        recompute_rollups(acme)

    summary = api.get("metrics/summary/").json()
    computed_at = datetime.fromisoformat(summary["computed_at"].replace("Z", "+00:00"))
    fits, durations = fitted(rows, computed_at)
    assert summary["purchases"] == PURCHASES
    assert_curve(summary["reached_curve"], fits[POV])
    assert_curve(summary["lost_curve"], fits[LOST])
    for name, share in (("days_to_value_p50", 0.5), ("days_to_value_p75", 0.75), ("days_to_value_p90", 0.9)):
        expected = first_day(fits[POV], share)
        assert summary[name] == (None if expected is None else pytest.approx(expected, abs=1e-6)), name
    share, low, high = at_day(fits[POV], TARGET)
    assert summary["reached_by_target"] == {
        "share": pytest.approx(share, abs=TOL), "low": pytest.approx(low, abs=TOL), "high": pytest.approx(high, abs=TOL)
    }  # fmt: skip

    # The overview shows the same figures.
    client = login(MemberFactory(tenant=acme, role="admin"))
    page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", client.get(f"/t/{acme.slug}/").content.decode()))
    assert f"day {summary['days_to_value_p50']:.0f} half of all buyers reach PoV by" in page
    assert f"{round(share * 100)} % by the target day ({round(low * 100)}–{round(high * 100)} %)" in page

    # Every open engagement's forecast is the formula on lifelines' curves.
    clock = {ref: day for (ref, *_), day in zip(rows, durations, strict=True)}
    forecasts = {}
    for status in ("on_track", "stalled"):
        page_url = f"engagements/?status={status}"
        while page_url:
            body = api.get(page_url).json()
            forecasts |= {e["purchase"]["external_id"]: e["forecast"] for e in body["results"]}
            page_url = body["next"]
    assert len(forecasts) == sum(1 for *_, outcome, _ in rows if outcome == 0)
    for ref, forecast in forecasts.items():
        d = clock[ref]
        pov_now, lost_now = at_day(fits[POV], d)[0], at_day(fits[LOST], d)[0]
        expected = 0.0 if d > TARGET else (at_day(fits[POV], TARGET)[0] - pov_now) / (1 - pov_now - lost_now)
        assert forecast["reach_by_target"] == pytest.approx(expected, abs=TOL), ref
        assert forecast["at_risk"] == (expected < 0.5)

    out = io.StringIO()
    as_of = (NOW - timedelta(days=20)).date().isoformat()
    call_command("backtest", "--as-of", as_of, "--tenant", acme.slug, stdout=out)
    printed = out.getvalue()
    assert "open engagements forecast" in printed and "Brier score 0." in printed and "90–100 %" in printed
