"""The honest figures in a real browser, on the demo tenant: the overview's headline figures and the
reached-and-lost chart, each figure's definition reached by keyboard, the team scoreboard with the last
backtest for an admin, an engagement's forecast in words, and all of it at a phone's width without
sideways scrolling. Screenshots go to var/screenshots/ as the dashboard tests' do."""

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.browser import test_dashboards as dashboards

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Chromium (from Debian), the demo tenant and the screenshot check, as the dashboard tests set them up.
browser, demo, shots = dashboards.browser, dashboards.demo, dashboards.shots
PHONE = {"width": 390, "height": 844}
OUTCOMES_CHART = re.compile(r"^Customers reaching PoV, and lost, over time")


def _help(page, name):
    return page.get_by_role("link", name=f"What “{name}” means")


def _tooltip_of(page, link):
    return page.locator(f"#{link.get_attribute('aria-describedby')}")


def test_the_overview_explains_each_figure_on_keyboard_focus(browser, live_server, demo, shots):
    expect = dashboards._expect()
    page = dashboards._sign_in(browser, live_server, "owner@demo.pov")
    main = page.get_by_role("main")

    expect(main).to_contain_text("reached PoV so far")
    expect(main).to_contain_text(re.compile(r"half of all buyers (reach PoV by|: \d+ % so far)"))
    expect(main).to_contain_text("by the target day")
    expect(page.get_by_role("img", name=OUTCOMES_CHART)).to_be_visible()

    first = _help(page, "Reached PoV so far")
    tip = _tooltip_of(page, first)
    expect(tip).to_be_hidden()
    first.focus()
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("out of everyone who bought")
    page.keyboard.press("Tab")  # on to the next figure's "?"
    following = _tooltip_of(page, _help(page, "Half reach PoV by"))
    expect(following).to_be_visible()
    expect(tip).to_be_hidden()
    dashboards._shoot(page, shots, "overview-definition")

    page.keyboard.press("Enter")  # the "?" leads to the help page, at the figure
    page.wait_for_url(re.compile(r"/t/demo/help/metrics/#days_to_value_p50$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("What the figures mean")
    page.context.close()


def test_team_page_and_backtest_for_an_admin(browser, live_server, demo, shots):
    expect = dashboards._expect()
    as_of = (timezone.now() - timedelta(days=30)).date()
    call_command("backtest", "--as-of", as_of.isoformat(), "--tenant", "demo", stdout=io.StringIO())
    page = dashboards._sign_in(browser, live_server, "admin@demo.pov")
    dashboards._section(page, "Team")

    expect(page.get_by_role("heading", level=1)).to_have_text("Team scoreboard")
    expect(page.get_by_role("heading", name=re.compile(r"^How well the forecasts came true"))).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text(f"backtest as of {as_of.day} {as_of:%b %Y}")
    expect(page.get_by_role("main")).to_contain_text("Brier score")
    dashboards._shoot(page, shots, "team-backtest")
    page.context.close()

    page = dashboards._sign_in(browser, live_server, "owner@demo.pov")
    dashboards._section(page, "Team")
    expect(page.get_by_role("heading", name=re.compile(r"^How well the forecasts came true"))).to_have_count(0)
    page.context.close()


def test_the_least_likely_customer_has_its_forecast_in_words(browser, live_server, demo, shots):
    expect = dashboards._expect()
    page = dashboards._sign_in(browser, live_server, "owner@demo.pov")
    page.goto(f"{live_server.url}/t/demo/engagements/?sort=risk")
    table = page.get_by_role("table", name=re.compile(r"^Engagements"))
    expect(table.get_by_role("columnheader", name=re.compile(r"^Chance by target"))).to_be_visible()
    table.get_by_role("row").nth(1).get_by_role("link").first.click()
    page.wait_for_url(re.compile(r"/t/demo/engagements/[0-9a-f-]{36}/$"))

    expect(page.get_by_role("main")).to_contain_text(
        re.compile(r"\d+% chance to reach value by day \d+;\s+(half of similar|fewer than half)")
    )
    dashboards._shoot(page, shots, "engagement-forecast")
    page.context.close()


@pytest.mark.parametrize("path", ["", "team/", "engagements/", "help/metrics/"])
def test_at_a_phones_width_nothing_scrolls_sideways_and_a_definition_fits(browser, live_server, demo, shots, path):
    page = dashboards._sign_in(browser, live_server, "owner@demo.pov", viewport=PHONE)
    page.goto(f"{live_server.url}/t/demo/{path}")
    dashboards._assert_no_horizontal_scroll(page)
    if not path:
        link = _help(page, "Reached PoV so far")
        link.focus()
        box = _tooltip_of(page, link).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        assert box["y"] + box["height"] <= PHONE["height"], box
    dashboards._shoot(page, shots, f"phone-{path.strip('/').replace('/', '-') or 'overview'}")
    page.context.close()
