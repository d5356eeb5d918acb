"""Every page at a phone's width (390 px) and a wide screen's (1440 px), as an admin on the demo company:
no sideways scrolling, every section reachable, chart text legible, the alert queue's actions in reach."""

import pytest

from tests.browser import test_dashboards as dashboards

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

browser, demo, shots = dashboards.browser, dashboards.demo, dashboards.shots
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1440, "height": 900}
PAGES = ["", "engagements/", "alerts/", "team/", "journeys/", "settings/", "settings/digests/", "digest/"]
SECTIONS = ["Overview", "Engagements", "Alerts", "Team", "Journeys", "Settings"]


def _sideways(page):
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_no_page_scrolls_sideways_on_a_phone_and_every_section_is_in_reach(browser, live_server, demo, shots):
    page = dashboards._sign_in(browser, live_server, "admin@demo.pov", viewport=PHONE)
    for path in PAGES:
        page.goto(f"{live_server.url}/t/demo/{path}")
        assert _sideways(page) <= 0, f"/{path} scrolls sideways by {_sideways(page)} px"
        nav = page.get_by_role("navigation", name="Sections")
        for name in SECTIONS:
            box = nav.get_by_role("link", name=name, exact=True).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"{name} off-screen on /{path}"
    page.goto(f"{live_server.url}/t/demo/alerts/")
    dashboards._shoot(page, shots, "phone-alerts-stacked")


def test_chart_text_stays_legible_on_a_phone(browser, live_server, demo):
    page = dashboards._sign_in(browser, live_server, "owner@demo.pov", viewport=PHONE)
    smallest = page.evaluate(
        "Math.min(...[...document.querySelectorAll('figure.chart svg text')]"
        ".map(t => t.getBoundingClientRect().height).filter(h => h > 0))"
    )
    assert smallest >= 10, f"chart text renders {smallest:.1f} px high"


@pytest.mark.parametrize("viewport", [PHONE, WIDE], ids=["phone", "wide"])
def test_the_alert_queue_s_actions_are_in_reach(browser, live_server, demo, viewport):
    page = dashboards._sign_in(browser, live_server, "service@demo.pov", viewport=viewport)
    page.goto(f"{live_server.url}/t/demo/alerts/")
    resolve = page.get_by_role("button", name="Resolve").first
    resolve.scroll_into_view_if_needed()
    box = resolve.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], box
    assert _sideways(page) <= 0


def test_on_a_phone_the_first_engagements_show_on_the_first_screen_and_the_filters_unfold(browser, live_server, demo):
    expect = dashboards._expect()
    page = dashboards._sign_in(browser, live_server, "admin@demo.pov", viewport=PHONE)
    page.goto(f"{live_server.url}/t/demo/engagements/")
    first_row = page.locator("table.data tbody tr").first.bounding_box()
    assert first_row and first_row["y"] + first_row["height"] <= PHONE["height"], first_row
    expect(page.get_by_role("searchbox", name="Search")).to_be_visible()
    expect(page.get_by_label("Owner")).to_be_hidden()
    page.get_by_text("Filters", exact=True).click()
    expect(page.get_by_label("Owner")).to_be_visible()

    # A filter in use keeps them open, and says how many are in use.
    page.goto(f"{live_server.url}/t/demo/engagements/?status=stalled")
    expect(page.get_by_label("Status")).to_have_value("stalled")
    expect(page.get_by_label("Status")).to_be_visible()
    expect(page.locator(".more-filters summary")).to_contain_text("1 in use")


def test_on_a_wide_screen_every_filter_shows_without_unfolding(browser, live_server, demo):
    expect = dashboards._expect()
    page = dashboards._sign_in(browser, live_server, "admin@demo.pov", viewport=WIDE)
    for path in ("", "engagements/", "team/"):
        page.goto(f"{live_server.url}/t/demo/{path}")
        expect(page.get_by_label("Owner")).to_be_visible()
        expect(page.get_by_text("Filters", exact=True)).to_be_hidden()


def test_an_owner_s_digest_preview_fits_a_phone_and_the_engagements_table_a_wide_screen(browser, live_server, demo):
    page = dashboards._sign_in(browser, live_server, "owner@demo.pov", viewport=PHONE)
    page.goto(f"{live_server.url}/t/demo/digest/")
    assert page.locator("table.data").count() > 0, "the owner's digest preview has no table to check"
    assert _sideways(page) <= 0, f"the digest preview scrolls sideways by {_sideways(page)} px"
    wide = dashboards._sign_in(browser, live_server, "admin@demo.pov", viewport=WIDE)
    wide.goto(f"{live_server.url}/t/demo/engagements/")
    clipped = wide.evaluate(
        "(() => { const w = document.querySelector('.table-wrap'); return w.scrollWidth - w.clientWidth; })()"
    )
    assert clipped <= 0, f"the engagements table is {clipped} px wider than its card at 1440 px"
