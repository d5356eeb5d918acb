"""The curves of docs/metrics.md end to end through `metrics.queries.summary`: the Aalen–Johansen incidence of
PoV and of loss with their 95% intervals, against lifelines' AalenJohansenFitter to 1e-9 on tie-free data
and against a plain-Python estimator (tests/metrics/aj_oracle.py) with ties; the quantiles and the share by
the target day. Engagement rows get their projection fields directly, so each carries a known outcome and
clock day."""

import itertools
import math
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from lifelines import AalenJohansenFitter

from engagement.filters import EngagementFilter
from engagement.models import Customer, Engagement, Purchase, Status
from metrics.queries import summary
from tenants.scoping import tenant_scope
from tests.factories import TenantFactory, make_offering
from tests.metrics import aj_oracle
from tests.metrics.aj_oracle import LOST, POV

TOL = 1e-9
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
OPEN_KINDS = (Status.ON_TRACK, Status.STALLED, Status.PAUSED)
_slugs = itertools.count()


def engagement_row(tenant, offering, n, duration, outcome):
    """An unsaved (customer, purchase, engagement) ending in `outcome` on clock day `duration`; open ones
    rotate through the open statuses and spend time in closed and open pauses, so the clock counts."""
    customer = Customer(tenant=tenant, external_id=f"c{n}", name=f"C{n}")
    if outcome == POV:
        status, fields = Status.REACHED, {"pos_at": NOW - (duration + 2) * DAY, "days_to_value": duration}
    elif outcome == LOST:
        status, fields = Status.LOST, {"pos_at": NOW - (duration + 1) * DAY, "days_to_loss": duration}
    else:
        status = OPEN_KINDS[n % len(OPEN_KINDS)]
        closed, open_ = (n % 3, 0) if status != Status.PAUSED else (n % 2, 1 + n % 2)
        fields = {"pos_at": NOW - (duration + closed + open_) * DAY, "paused_days": float(closed),
                  "paused_since": NOW - open_ * DAY if open_ else None}  # fmt: skip
    purchase = Purchase(tenant=tenant, external_id=f"p{n}", customer=customer, offering=offering,
                        purchased_at=fields["pos_at"])  # fmt: skip
    return customer, purchase, Engagement(tenant=tenant, purchase=purchase, customer=customer, offering=offering,
                                          status=status, **fields)  # fmt: skip


def summary_over(durations, outcomes, target):
    tenant = TenantFactory(slug=f"aj-{next(_slugs)}", time_zone="America/New_York")
    with tenant_scope(tenant):
        offering = make_offering(tenant, due_days=(target,))
        built = [engagement_row(tenant, offering, n, d, o) for n, (d, o) in enumerate(zip(durations, outcomes))]
        for model, objs in zip((Customer, Purchase, Engagement), zip(*built, strict=True), strict=True):
            model.objects.bulk_create(objs)
        return summary(EngagementFilter(), tenant, now=NOW)


def points(curve):
    return [(p["day"], p["share"], p["low"], p["high"]) for p in curve]


def assert_same_points(ours, reference):
    assert [p[0] for p in ours] == pytest.approx([p[0] for p in reference], abs=1e-6)
    for (_, share, low, high), (_, ref_share, ref_low, ref_high) in zip(ours, reference, strict=True):
        assert share == pytest.approx(ref_share, abs=TOL)
        assert (low is None, high is None) == (ref_low is None, ref_high is None)
        if low is not None:
            assert (low, high) == (pytest.approx(ref_low, abs=TOL), pytest.approx(ref_high, abs=TOL))


def lifelines_points(durations, outcomes, outcome, days):
    """lifelines' incidence and interval at `days` (its interval columns sorted: it names them the other way)."""
    if outcome not in outcomes:
        return [(day, 0.0, None, None) for day in days]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = AalenJohansenFitter(calculate_variance=True).fit(durations, outcomes, event_of_interest=outcome)
    result = []
    for day in days:
        share = float(fitter.cumulative_density_.loc[day].iloc[0])
        bounds = sorted(float(x) for x in fitter.confidence_interval_.loc[day])
        result.append((day, share, *((None, None) if any(math.isnan(b) for b in bounds) else bounds)))
    return result


def check_against_oracle(durations, outcomes, target):
    result = summary_over(durations, outcomes, target)
    reached, lost = aj_oracle.incidence(durations, outcomes, POV), aj_oracle.incidence(durations, outcomes, LOST)
    assert_same_points(points(result["reached_curve"]), reached)
    assert_same_points(points(result["lost_curve"]), lost)
    for name, share in (("days_to_value_p50", 0.5), ("days_to_value_p75", 0.75), ("days_to_value_p90", 0.9)):
        expected = aj_oracle.first_day_reaching(reached, share)
        assert result[name] == (None if expected is None else pytest.approx(expected, abs=1e-6)), name
    share, low, high = aj_oracle.at(reached, target)
    assert result["reached_by_target"]["share"] == pytest.approx(share, abs=TOL)
    assert (result["reached_by_target"]["low"] is None) == (low is None)
    if low is not None:
        assert result["reached_by_target"]["low"] == pytest.approx(low, abs=TOL)
        assert result["reached_by_target"]["high"] == pytest.approx(high, abs=TOL)
    return result


# (clock days, outcomes, target day): each names the edge it pins; ties of every kind included.
CASES = {
    "both_outcomes_with_ties": ([2, 2, 2, 5, 5, 9, 12, 12], [1, 2, 0, 1, 1, 2, 0, 1], 7),
    "pov_and_open_on_one_day": ([1, 4, 4, 4, 6], [1, 1, 0, 0, 1], 4),
    "all_open": ([3, 8, 8, 20], [0, 0, 0, 0], 14),
    "all_lost": ([3, 8, 8, 20], [2, 2, 2, 2], 14),
    "no_one_open": ([1, 3, 3, 7, 10, 11], [1, 2, 1, 1, 2, 1], 10),
    "single_customer_reaching": ([6], [1], 14),
    "single_customer_lost": ([6], [2], 14),
    "single_customer_open": ([6], [0], 14),
    "everyone_on_one_day": ([5, 5, 5, 5], [1, 2, 1, 1], 5),
    "half_exactly": ([1, 2, 3, 4], [1, 1, 0, 0], 2),
    "half_never": ([1, 10, 10, 10, 10], [1, 0, 0, 2, 0], 14),
    "target_before_the_first_day": ([8, 9], [1, 2], 7),
    "fractional_days": ([0.25, 1.5, 1.5, 2.75, 3.0001, 30.5], [1, 0, 2, 1, 0, 1], 3),
}


@pytest.mark.parametrize(("durations", "outcomes", "target"), CASES.values(), ids=CASES.keys())
def test_curves_match_the_estimator_on_edge_cases(db, durations, outcomes, target):
    check_against_oracle([float(d) for d in durations], outcomes, target)


def test_a_company_without_engagements_has_no_curves(scoped):
    result = summary(EngagementFilter(), scoped, now=NOW)
    assert (result["reached_curve"], result["lost_curve"], result["days_to_value_p50"]) == ([], [], None)


def test_the_lost_share_is_a_competing_outcome_not_censoring(db):
    # Half are lost early: Kaplan–Meier, censoring them, would claim every customer eventually reaches PoV.
    result = summary_over([1.0, 2.0, 3.0, 4.0], [LOST, LOST, POV, POV], 10)
    assert result["reached_curve"][-1]["share"] == pytest.approx(0.5)
    assert result["lost_curve"][-1]["share"] == pytest.approx(0.5)
    assert result["days_to_value_p50"] == pytest.approx(4.0) and result["days_to_value_p75"] is None


# Sixty-fourths of a day are exact floats and whole microseconds, so durations compare exactly everywhere.
distinct_days = st.lists(st.integers(1, 200 * 64), min_size=1, max_size=25, unique=True).map(
    lambda ks: [k / 64 for k in ks]
)


@given(days=distinct_days, data=st.data(), target=st.integers(1, 60))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_curves_match_lifelines_on_tie_free_engagements(db, days, data, target):
    outcomes = data.draw(st.lists(st.sampled_from([0, POV, LOST]), min_size=len(days), max_size=len(days)))
    note(f"days={days} outcomes={outcomes}")
    result = check_against_oracle(days, outcomes, target)
    for name, outcome in (("reached_curve", POV), ("lost_curve", LOST)):
        ours = points(result[name])
        assert_same_points(ours, lifelines_points(days, outcomes, outcome, [p[0] for p in ours]))


@given(
    subjects=st.lists(st.tuples(st.integers(0, 15), st.sampled_from([0, POV, LOST])), min_size=1, max_size=30),
    target=st.integers(1, 20),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_curves_match_the_estimator_with_ties(db, subjects, target):
    durations, outcomes = zip(*subjects, strict=True)
    check_against_oracle([float(d) for d in durations], list(outcomes), target)


def test_a_long_curve_keeps_exact_points_close_together(db):
    days = [1 + n * 0.5 for n in range(700)]
    outcomes = [POV if n % 7 != 3 else (LOST if n % 2 else 0) for n in range(700)]
    result = summary_over(days, outcomes, 30)
    exact = {p[0]: p for p in aj_oracle.incidence(days, outcomes, POV)}
    kept = points(result["reached_curve"])
    assert len(kept) < 550
    for day, share, low, high in kept:
        assert share == pytest.approx(exact[day][1], abs=TOL) and low == pytest.approx(exact[day][2], abs=TOL)
    assert kept[-1][0] == pytest.approx(max(exact))
    ordered = sorted(exact.values())
    for day, share, *_ in ordered:
        before = max(s for d, s, *_ in kept if d <= day)
        assert share - before < 1 / 500 + TOL
