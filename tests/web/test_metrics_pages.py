"""The honest figures on the pages (docs/metrics.md): the overview's curves, quantiles ("not yet" until half
of all buyers reached PoV), share by the target with its interval and the value backlog; each figure's
definition in place and on the help page; the fair team scoreboard and the last backtest for admins; the
forecast on the engagement list and page; the at-risk threshold in Settings."""

import html
import re
from datetime import date

import pytest

from engagement.models import Engagement, Purchase
from metrics.definitions import DEFINITIONS
from metrics.models import BacktestRun
from metrics.rollups import recompute_rollups
from tenants.scoping import tenant_scope
from tests.web.conftest import buy, reach
from tests.web.test_pages import customer_links, text


@pytest.fixture
def record(acme, actor):
    """acme's stalled customer (20 days in, nothing reached) plus: two who reached PoV on day 10, one bought
    yesterday, all of acme's software (target day 14), with amounts; then the rollups and forecasts."""
    tenant = acme.tenant
    with tenant_scope(tenant):
        for n, days_ago in enumerate((30, 25)):
            engagement = buy(tenant, acme.offering, actor, days_ago=days_ago, name=f"Reached {n}")
            for key in ("m1", "m2", "m3"):
                reach(tenant, engagement, key, actor, days_ago=days_ago - 10)
        buy(tenant, acme.offering, actor, days_ago=1, name="Fresh Co")
        Purchase.objects.update(amount=1200, currency="EUR")
        recompute_rollups(tenant)
    return acme


def test_the_overview_says_how_many_so_far_and_not_yet_for_half(record, login):
    page = login(record.members["viewer"]).get(record.path())
    words, body = text(page), page.content.decode()

    assert "reached PoV so far: 2 of 4 customers" in words
    # Two of four reached PoV by day 10: half of all buyers did by day 10.
    assert re.search(r"day 10 half of all buyers reach PoV by", words)
    assert "not yet" in words  # 90 % of all buyers: never so far
    assert "by the target day" in words and 'class="interval"' in body
    assert 'class="chart chart-outcomes"' in body or "chart-outcomes" in body
    assert "n = 4" in words
    # The value backlog: two open customers' 1,200 EUR each, aged 0–30 days, one of them stalled.
    assert "Value backlog" in words and "EUR" in words and "2,400" in words
    assert "median among those who reached PoV (secondary)" in words


def test_every_figure_has_its_definition_in_place_and_on_the_help_page(record, login):
    client = login(record.members["owner"])
    body = client.get(record.path()).content.decode()
    tips = re.findall(r'<span class="tip" role="tooltip" id="def-([a-z_0-9]+)">([^<]+)</span>', body)
    helped = re.findall(r'aria-describedby="def-([a-z_0-9]+)"', body)

    assert {"pov_rate", "days_to_value_p50", "reached_by_target", "at_risk", "curves", "value_backlog"} <= {
        key for key, _ in tips
    }
    assert sorted(helped) == sorted(key for key, _ in tips), "each ? points at its own tooltip"
    assert all(html.unescape(line) == DEFINITIONS[key].line for key, line in tips)
    page = client.get(record.path("help/metrics/"))
    assert page.status_code == 200
    for key, definition in DEFINITIONS.items():
        assert f'id="{key}"' in page.content.decode() and definition.name in text(page)


def test_the_team_page_ranks_only_enough_customers_and_shows_admins_the_backtest(record, login):
    with tenant_scope(record.tenant):
        BacktestRun.objects.create(
            tenant=record.tenant, as_of=date(2026, 1, 31), scored=812, brier=0.1834, auc=0.77,
            calibration=[{"label": "0–10 %", "count": 120, "predicted": 0.05, "observed": 0.04}],
        )  # fmt: skip
    admin_page = text(login(record.members["admin"]).get(record.path("team/")))
    owner_page = text(login(record.members["owner"]).get(record.path("team/")))

    assert "too few to rank" in owner_page  # one owner with one customer
    assert "Brier score 0.183" in admin_page and "AUC 0.77" in admin_page and "812 customers" in admin_page
    assert "0–10 % 120 5 % 4 %" in admin_page
    assert "Brier" not in owner_page


def test_the_list_shows_each_chance_sorts_by_it_and_filters_the_at_risk(record, login):
    client = login(record.members["owner"])
    listed = client.get(record.path("engagements/?sort=risk"))
    at_risk = client.get(record.path("engagements/?at_risk=true"))
    wrong = client.get(record.path("engagements/?at_risk=perhaps"))

    # The stalled customer is past its target: 0 %, first; Fresh Co has the chance of everyone who waited.
    assert customer_links(listed, record)[:2] == [record.engagement.customer.name, "Fresh Co"]
    assert "Chance by target" in text(listed) and "0% at risk" in text(listed)
    assert customer_links(at_risk, record) == [record.engagement.customer.name]
    assert "Forecast: 'perhaps' is neither true nor false." in text(wrong)


def test_the_engagement_page_says_the_forecast_in_words(record, login):
    client = login(record.members["owner"])
    with tenant_scope(record.tenant):
        fresh = Engagement.objects.get(customer__name="Fresh Co")
    words = text(client.get(record.path(f"engagements/{fresh.id}/")))
    stalled = text(client.get(record.path(f"engagements/{record.engagement.id}/")))

    # Fresh Co waits on day 1; of the three still waiting on day 10 (Fresh Co's day has not come), two reached
    # PoV that day: 2/3 by day 14.
    assert "67% chance to reach value by day 14; half of similar customers did by day 10." in words
    assert "0% chance to reach value by day 14; fewer than half of similar customers ever did. at risk" in stalled


def test_the_threshold_is_set_in_percent_and_checked(record, login):
    client = login(record.members["admin"])
    company = {"name": "Acme", "time_zone": "UTC", "grace_days": "3", "escalation_days": "7"}

    assert client.post(record.path("settings/company/"), {**company, "at_risk_percent": "30"}).status_code == 302
    record.tenant.refresh_from_db()
    assert record.tenant.at_risk_threshold == pytest.approx(0.3)
    refused = client.post(record.path("settings/company/"), {**company, "at_risk_percent": "150"})
    assert refused.status_code == 400
    assert "The at-risk threshold is a whole percent from 0 to 100, not '150'." in text(refused)
    record.tenant.refresh_from_db()
    assert record.tenant.at_risk_threshold == pytest.approx(0.3)
    assert 'value="30"' in client.get(record.path("settings/")).content.decode()
