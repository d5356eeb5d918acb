"""The forecast of docs/metrics.md ("Forecast"), stored with the rollups: each open engagement's chance to reach
PoV by the target day, (F_pov(T) − F_pov(d)) / (1 − F_pov(d) − F_lost(d)), and its expected PoV day, against
the same computed from lifelines' AalenJohansenFitter curves; the at-risk flag and its one message per
transition."""

import itertools
import random
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from lifelines import AalenJohansenFitter

from engagement.models import Customer, Engagement, MilestoneReach, OutboxMessage, Purchase, Status
from metrics.forecast import AT_RISK, SIMILAR_AT_LEAST
from metrics.models import Forecast
from metrics.rollups import recompute_rollups
from tenants.scoping import tenant_scope
from tests.factories import TenantFactory, make_offering
from tests.metrics.aj_oracle import LOST, POV

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TARGET = 30
_slugs = itertools.count()


def build(tenant, offering, people):
    """people: [(clock day, outcome, furthest milestone order or -1)]; open ones are on_track, no pauses."""
    milestones = list(offering.milestones.order_by("order"))
    customers, purchases, engagements, reaches = [], [], [], []
    for n, (day, outcome, furthest) in enumerate(people):
        pos_at = NOW - (day + (0 if outcome == 0 else 1)) * DAY
        customers.append(Customer(tenant=tenant, external_id=f"c{n}", name=f"C{n}"))
        purchases.append(Purchase(tenant=tenant, external_id=f"p{n}", customer=customers[-1], offering=offering,
                                  purchased_at=pos_at))  # fmt: skip
        status = {POV: Status.REACHED, LOST: Status.LOST, 0: Status.ON_TRACK}[outcome]
        engagements.append(
            Engagement(tenant=tenant, purchase=purchases[-1], customer=customers[-1], offering=offering, pos_at=pos_at,
                       status=status, days_to_value=day if outcome == POV else None,
                       days_to_loss=day if outcome == LOST else None)
        )  # fmt: skip
        reaches += [
            MilestoneReach(tenant=tenant, engagement=engagements[-1], milestone=milestones[order],
                           reached_at=pos_at + DAY, clock_days=1.0)
            for order in range(furthest + 1)
        ]  # fmt: skip
    for model, objs in ((Customer, customers), (Purchase, purchases), (Engagement, engagements)):
        model.objects.bulk_create(objs)
    MilestoneReach.objects.bulk_create(reaches)
    return engagements


def lifelines_curves(people):
    """(F_pov, F_lost) as step functions of the day, and the days where either moves, from lifelines."""
    durations = [day for day, _, _ in people]
    outcomes = [outcome for _, outcome, _ in people]
    curves = []
    for outcome in (POV, LOST):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitter = AalenJohansenFitter(calculate_variance=False).fit(durations, outcomes, event_of_interest=outcome)
        curves.append(fitter.cumulative_density_.iloc[:, 0])
    days = sorted({d for d, o in zip(durations, outcomes, strict=True) if o})

    def step(curve):
        return lambda day: float(curve.loc[:day].iloc[-1]) if day >= curve.index[0] else 0.0

    return step(curves[0]), step(curves[1]), days


def expected_forecast(people, d):
    f_pov, f_lost, days = lifelines_curves(people)
    waiting = 1.0 - f_pov(d) - f_lost(d)
    reach = 0.0 if d > TARGET else (f_pov(TARGET) - f_pov(d)) / waiting
    expected = next((t for t in days if t >= d and (f_pov(t) - f_pov(d)) / waiting >= 0.5 - 1e-12), None)
    return reach, expected


def tie_free_people(rng, n, furthest=lambda rng: -1):
    """n customers on distinct days: about half reach PoV, a fifth are lost, the rest open (some past the target)."""
    days = rng.sample(range(1, 60 * 1000), n)
    people = []
    for k in days:
        roll = rng.random()
        outcome = POV if roll < 0.5 else LOST if roll < 0.7 else 0
        people.append((k / 1000 + 0.0001, outcome, furthest(rng)))
    return people


@pytest.fixture
def tenant(db):
    tenant = TenantFactory(slug=f"fc-{next(_slugs)}", at_risk_threshold=0.5)
    with tenant_scope(tenant):
        yield tenant


def forecasts_by_engagement():
    return {f.engagement_id: f for f in Forecast.objects.all()}


def test_each_open_engagement_gets_the_formula_on_its_offerings_curves(tenant):
    offering = make_offering(tenant, due_days=(5, TARGET))
    people = tie_free_people(random.Random(7), 240)
    engagements = build(tenant, offering, people)
    recompute_rollups(tenant, now=NOW)
    stored = forecasts_by_engagement()

    open_ones = [(e, p) for e, p in zip(engagements, people, strict=True) if p[1] == 0]
    assert len(stored) == len(open_ones) > 20
    assert any(p[0] > TARGET for _, p in open_ones) and any(p[0] < TARGET for _, p in open_ones)
    for engagement, (d, _, _) in open_ones:
        reach, expected = expected_forecast(people, d)
        forecast = stored[engagement.id]
        assert forecast.reach_by_target == pytest.approx(reach, abs=1e-9)
        if expected is None:
            assert forecast.expected_pov_day is None
        else:
            assert forecast.expected_pov_day == pytest.approx(expected, abs=1e-9)
        assert forecast.at_risk == (reach < 0.5)


def test_with_enough_customers_as_far_along_the_forecast_uses_theirs(tenant):
    offering = make_offering(tenant, due_days=(5, TARGET))
    rng = random.Random(11)
    # Those who reached the first milestone do much better than those who did not.
    days = [d for d, _, _ in tie_free_people(rng, SIMILAR_AT_LEAST + 90)]
    ahead = [(d, POV if rng.random() < 0.85 else LOST, 0) for d in days[: SIMILAR_AT_LEAST + 10]]
    behind = [(d, LOST if rng.random() < 0.8 else POV, -1) for d in days[SIMILAR_AT_LEAST + 10 :]]
    probe_ahead, probe_behind = (2.5005, 0, 0), (2.5006, 0, -1)
    people = ahead + behind + [probe_ahead, probe_behind]
    engagements = build(tenant, offering, people)
    recompute_rollups(tenant, now=NOW)
    stored = forecasts_by_engagement()

    similar = [p for p in people if p[2] >= 0]
    assert stored[engagements[-2].id].reach_by_target == pytest.approx(expected_forecast(similar, 2.5005)[0], abs=1e-9)
    # One that reached no milestone is forecast from the whole offering.
    assert stored[engagements[-1].id].reach_by_target == pytest.approx(expected_forecast(people, 2.5006)[0], abs=1e-9)
    assert stored[engagements[-2].id].reach_by_target > stored[engagements[-1].id].reach_by_target


def test_a_forecast_goes_away_when_the_engagement_ends(tenant):
    offering = make_offering(tenant, due_days=(5, TARGET))
    engagements = build(tenant, offering, tie_free_people(random.Random(3), 60))
    recompute_rollups(tenant, now=NOW)
    open_one = next(e for e in engagements if e.status == Status.ON_TRACK)
    Engagement.objects.filter(pk=open_one.pk).update(status=Status.LOST, days_to_loss=1.0)
    recompute_rollups(tenant, now=NOW)

    assert open_one.pk not in forecasts_by_engagement()


def at_risk_messages(engagement):
    return [m for m in OutboxMessage.objects.filter(kind=AT_RISK) if str(engagement.pk) in str(m.payload)]


def test_becoming_at_risk_is_published_once_per_transition(tenant):
    offering = make_offering(tenant, due_days=(5, TARGET))
    # Half of those like it reach PoV by day 20, so a customer open on day 10 has an even chance or better.
    people = [(float(d) + 0.5, POV, -1) for d in range(0, 20)] + [(float(d) + 0.25, LOST, -1) for d in range(0, 20)]
    engagements = build(tenant, offering, [*people, (10.1, 0, -1)])
    probe = engagements[-1]
    recompute_rollups(tenant, now=NOW)
    chance = Forecast.objects.get(pk=probe.pk).reach_by_target
    assert 0 < chance < 1

    tenant.at_risk_threshold = chance + 0.01
    tenant.save()
    recompute_rollups(tenant, now=NOW)
    recompute_rollups(tenant, now=NOW + timedelta(seconds=1))
    assert Forecast.objects.get(pk=probe.pk).at_risk
    assert len(at_risk_messages(probe)) == 1

    tenant.at_risk_threshold = chance - 0.01
    tenant.save()
    recompute_rollups(tenant, now=NOW + timedelta(seconds=2))
    assert not Forecast.objects.get(pk=probe.pk).at_risk
    assert len(at_risk_messages(probe)) == 1

    tenant.at_risk_threshold = chance + 0.01
    tenant.save()
    recompute_rollups(tenant, now=NOW + timedelta(seconds=3))
    assert len(at_risk_messages(probe)) == 2
