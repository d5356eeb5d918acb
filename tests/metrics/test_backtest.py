"""The backtest of docs/metrics.md ("Backtest"): forecasts made from what was known on a past day, scored
against what happened since.

The history is generated with known constant hazards per offering (PoV and loss competing, exponential),
so the truth is known: an engagement still open on clock day d reaches PoV by the target T with probability
h_pov / h · (1 − exp(−h · (T − d))), h = h_pov + h_lost. Purchases come steadily for a year (the curves
are fitted on them) and in a burst per offering shortly before the backtest's day, so that thousands of
forecasts share a decile.
"""

import io
import json
import math
import random
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.core.management import CommandError, call_command

from engagement.models import Customer, Engagement, Event, EventType, Purchase, Status
from metrics import backtest
from metrics.models import BacktestRun
from tenants.scoping import tenant_scope
from tests.factories import TenantFactory, make_offering

AS_OF = date(2025, 3, 1)
AS_OF_END = datetime.combine(AS_OF + timedelta(days=1), time(), tzinfo=UTC)
NOW = AS_OF_END + timedelta(days=200)
# key: (PoV hazard per day, loss hazard per day, target day, days before AS_OF of the burst)
OFFERINGS = {"fast": (0.05, 0.01, 30, 5), "slow": (0.01, 0.004, 60, 20), "late": (0.02, 0.02, 40, 25)}
STEADY, BURST = 5000, 2500


def truth(offering, d):
    h_pov, h_lost, target, _ = OFFERINGS[offering]
    h = h_pov + h_lost
    return 0.0 if d > target else h_pov / h * (1 - math.exp(-h * (target - d)))


def history(tenant, rng):
    """Engagements with outcomes drawn from the hazards, seen as they stand at NOW."""
    customers, purchases, engagements = [], [], []
    for key, (h_pov, h_lost, target, burst) in OFFERINGS.items():
        offering = make_offering(tenant, key=key, due_days=(target,))
        steady = [AS_OF_END - timedelta(days=rng.uniform(0, 365)) for _ in range(STEADY)]
        bursts = [AS_OF_END - timedelta(days=burst + rng.uniform(0, 0.5)) for _ in range(BURST)]
        for pos_at in steady + bursts:
            n = len(engagements)
            t_pov, t_lost = rng.expovariate(h_pov), rng.expovariate(h_lost)
            day = min(t_pov, t_lost)
            ended = pos_at + timedelta(days=day) <= NOW
            status = (Status.REACHED if t_pov < t_lost else Status.LOST) if ended else Status.ON_TRACK
            customers.append(Customer(tenant=tenant, external_id=f"c{n}", name=f"C{n}"))
            purchases.append(Purchase(tenant=tenant, external_id=f"p{n}", customer=customers[-1], offering=offering,
                                      purchased_at=pos_at))  # fmt: skip
            engagements.append(
                Engagement(
                    tenant=tenant, purchase=purchases[-1], customer=customers[-1], offering=offering, pos_at=pos_at,
                    status=status,
                    pov_at=pos_at + timedelta(days=day) if status == Status.REACHED else None,
                    days_to_value=day if status == Status.REACHED else None,
                    lost_at=pos_at + timedelta(days=day) if status == Status.LOST else None,
                    days_to_loss=day if status == Status.LOST else None,
                )
            )  # fmt: skip
    for model, objs in ((Customer, customers), (Purchase, purchases), (Engagement, engagements)):
        model.objects.bulk_create(objs, batch_size=2000)


@pytest.mark.django_db
def test_the_forecasts_come_true_as_often_as_they_say_and_near_the_truth():
    tenant = TenantFactory(slug="backtest-known-hazards", time_zone="UTC")
    with tenant_scope(tenant):
        history(tenant, random.Random(2025))
        result = backtest.run(tenant, AS_OF, NOW)
    crowded = [row for row in result.calibration if row["count"] >= 500]

    # The bursts' forecasts sit in deciles of their own, beside the trivial "past the target, 0 %" one.
    assert len([row for row in crowded if row["predicted"] > 0.1]) >= 3, result.calibration
    for row in crowded:
        assert abs(row["predicted"] - row["observed"]) < 0.05, row
    # Each burst is open at the end of AS_OF on clock day burst..burst + 0.5: its decile is near the truth.
    for key, (_, _, _, burst) in OFFERINGS.items():
        expected = truth(key, burst + 0.25)
        near = [row for row in crowded if abs(row["predicted"] - expected) < 0.06]
        assert near, (key, expected, result.calibration)
    assert result.scored > 3 * BURST * 0.5
    assert result.brier < 0.25
    assert result.auc > 0.6


@pytest.mark.django_db
def test_the_clock_on_the_day_leaves_out_the_pauses_recorded_by_then():
    tenant = TenantFactory(slug="backtest-pauses", time_zone="UTC")
    with tenant_scope(tenant):
        offering = make_offering(tenant, key="o", due_days=(30,))
        pos_at = AS_OF_END - timedelta(days=20)
        customer = Customer.objects.create(tenant=tenant, external_id="c", name="C")
        purchase = Purchase.objects.create(tenant=tenant, external_id="p", customer=customer, offering=offering,
                                           purchased_at=pos_at)  # fmt: skip
        engagement = Engagement.objects.create(tenant=tenant, purchase=purchase, customer=customer, offering=offering,
                                               pos_at=pos_at, status=Status.ON_TRACK)  # fmt: skip
        # Paused from day 2 to day 5, and again from day 18 (still paused at the end of AS_OF); a pause after
        # AS_OF was not known then.
        for kind, day in (
            (EventType.PAUSED, 2),
            (EventType.RESUMED, 5),
            (EventType.PAUSED, 18),
            (EventType.PAUSED, 25),
        ):
            Event.objects.create(
                tenant=tenant, engagement=engagement, type=kind, occurred_at=pos_at + timedelta(days=day)
            )
        assert backtest.clocks_on(tenant, AS_OF) == {engagement.id: pytest.approx(20 - 3 - 2)}


def test_brier_and_auc_by_hand():
    pairs = [(0.9, 1), (0.8, 1), (0.8, 0), (0.1, 0)]
    assert backtest.brier(pairs) == pytest.approx((0.01 + 0.04 + 0.64 + 0.01) / 4)
    # Positives above negatives: (0.9 > 0.8), (0.9 > 0.1), (0.8 = 0.8 counts half), (0.8 > 0.1): 3.5 of 4.
    assert backtest.auc(pairs) == pytest.approx(3.5 / 4)
    assert backtest.auc([(0.5, 1)]) is None
    table = backtest.calibration(pairs)
    assert [row["count"] for row in table] == [0, 1, 0, 0, 0, 0, 0, 0, 2, 1]
    assert table[8]["observed"] == 0.5 and table[9]["predicted"] == 0.9
    assert table[0]["predicted"] is None


@pytest.mark.django_db
def test_the_command_prints_the_table_saves_json_and_a_run(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    tenant = TenantFactory(slug="backtest-cmd", time_zone="UTC")
    out = io.StringIO()
    call_command("backtest", "--as-of", "2025-03-01", "--tenant", tenant.slug, stdout=out)

    printed = out.getvalue()
    assert "Nothing to score yet" in printed and "90–100 %" in printed and "Brier score –" in printed
    saved = json.loads((tmp_path / "backtest" / "backtest-cmd-2025-03-01.json").read_text())
    assert saved["as_of"] == "2025-03-01" and len(saved["calibration"]) == 10
    with tenant_scope(tenant):
        assert BacktestRun.objects.get().scored == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "1 March"], "YYYY-MM-DD"),
        (["--as-of", "2999-01-01"], "a day before today"),
        (["--as-of", "2025-03-01", "--tenant", "nobody"], "No tenant"),
    ],
)
def test_the_command_says_what_is_wrong(args, message):
    TenantFactory(slug="backtest-bad", time_zone="UTC")
    with pytest.raises(CommandError, match=message):
        call_command("backtest", *args)
