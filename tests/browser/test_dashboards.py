"""The dashboards in a real browser (Debian's chromium, headless) against a live server and a real
Celery worker, on the demo tenant.

An owner signs in, reads the overview, filters it, opens the first stalled customer from the alert
queue and records its PoV milestone; the worker then resolves the alert and recomputes the stored
metrics, and both pages show it. Admins' pages and a viewer's read-only engagement page are checked
too. Every page is saved to var/screenshots/<name>.png for a person to look at.

Elements are found by role, label and visible text, never by CSS class: the markup's styling may
change, what a person reads and clicks should not.
"""

import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from engagement.models import Customer, Engagement, Milestone, Offering
from engagement.services import purchase_record
from metrics import rollups
from metrics.alerts import LIVE, stalled_scan
from metrics.models import Alert, AlertState
from tenants.actors import Actor
from tenants.models import Tenant
from tenants.scoping import tenant_scope
from tests.conftest import REQUIRE_SERVICES, ROOT, wait_for

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "screenshots"
PASSWORD = "demo-pov-2026"
LAPTOP = {"width": 1280, "height": 800}
HEADLINE = "How many of your customers reach their point of value?"
KM_CHART = re.compile(r"^Customers reaching PoV, and lost, over time")
# "reached PoV: 43 of 65 customers" on the overview.
REACHED_OF = re.compile(r"([\d,]+)\s+of\s+([\d,]+)\s+customers")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


# Fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(f"POV_REQUIRE_SERVICES=1 but {message}", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop registered as running on this thread for as long
    # as it is open, so Django would refuse the tests' own ORM calls (seeding, polling, the database
    # flush after each test) as "async unsafe". None of them runs concurrently with that loop.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def demo(transactional_db):
    """The demo tenant with 60 customers, its stalled alerts opened and its metrics stored."""
    call_command("seed_demo", "--i-know", "--customers", "60", stdout=io.StringIO(), stderr=io.StringIO())
    tenant = Tenant.objects.get(slug="demo")
    with tenant_scope(tenant):
        stalled_scan(tenant)
        rollups.recompute_rollups(tenant)
        assert Alert.objects.filter(state__in=LIVE).exists(), "the demo has no stalled customer to act on"
    return tenant


@pytest.fixture
def shots():
    """Names of the screenshots a test took; each must exist and be non-empty when it ends."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    taken = []
    yield taken
    for name in taken:
        path = SCREENSHOTS / f"{name}.png"
        assert path.is_file() and path.stat().st_size > 0, f"screenshot {path} is missing or empty"


# Helpers ------------------------------------------------------------------------------------------


def _expect():
    from playwright.sync_api import expect

    return expect


def _shoot(page, shots, name):
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    shots.append(name)


def _sign_in(browser, live_server, email, shots=None, viewport=LAPTOP):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    _expect()(page.get_by_role("heading", level=1)).to_contain_text("Sign in")
    if shots is not None:
        _shoot(page, shots, "login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/t/demo/")
    return page


def _section(page, name):
    """Follow a tab of the top navigation."""
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=name, exact=True).click()
    page.wait_for_load_state()


def _reached_of(page):
    """(reached, purchases) as the overview's headline shows them."""
    found = REACHED_OF.search(page.get_by_role("main").inner_text())
    assert found, "the overview shows no 'N of M customers'"
    return tuple(int(number.replace(",", "")) for number in found.groups())


def _assert_no_horizontal_scroll(page):
    width, client = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width <= client, f"{page.url} scrolls sideways on a laptop: {width}px of content in {client}px"


def _stored(tenant, dimension="all", key=""):
    with tenant_scope(tenant):
        row = rollups.current(dimension, key)
        return row.summary if row else None


def _alert_links(page):
    """The customer links of the alert queue, as (name, path); none when the queue is empty."""
    table = page.get_by_role("table", name="Alerts")
    if not table.count():
        return []
    links = table.get_by_role("link")
    return [(links.nth(i).inner_text().strip(), links.nth(i).get_attribute("href")) for i in range(links.count())]


def _cell(table, row_link, column):
    """The text in `column` of the table's row that links to `row_link`."""
    headers = [text.strip().casefold() for text in table.get_by_role("columnheader").all_inner_texts()]
    row = table.get_by_role("row").filter(has=table.page.get_by_role("link", name=row_link, exact=True))
    return row.get_by_role("cell").nth(headers.index(column.casefold())).inner_text().strip()


def _engagement_at(tenant, path):
    engagement_id = re.search(r"/engagements/([0-9a-f-]{36})/$", path).group(1)
    with tenant_scope(tenant):
        return Engagement.objects.select_related("offering", "customer").get(id=engagement_id)


# The tests ----------------------------------------------------------------------------------------


def test_an_owner_reaches_pov_from_the_alert_queue_and_the_dashboards_follow(
    browser, live_server, demo, fast_worker, shots
):
    expect = _expect()
    tenant = demo
    stored = _stored(tenant)
    page = _sign_in(browser, live_server, "owner@demo.pov", shots)

    # The overview: the headline question, the PoV rate of every customer, the reached-and-lost chart.
    expect(page.get_by_role("heading", level=1)).to_have_text(HEADLINE)
    reached, purchases = _reached_of(page)
    assert (reached, purchases) == (stored["reached"], stored["purchases"])
    expect(page.get_by_role("img", name=KM_CHART)).to_be_visible()
    _assert_no_horizontal_scroll(page)
    _shoot(page, shots, "overview")

    # Filtered by one offering: the URL carries it and the numbers are that offering's.
    with tenant_scope(tenant):
        offering = Offering.objects.get(key="credit-card")
    page.get_by_label("Offering", exact=True).select_option(label=offering.name)
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(rf"[?&]offering={offering.key}(&|$)"))
    expect(page.get_by_label("Offering", exact=True)).to_have_value(offering.key)
    expect(page.get_by_role("heading", name=f"Journey funnel: {offering.name}")).to_be_visible()
    filtered = _stored(tenant, "offering", offering.key)
    assert _reached_of(page) == (filtered["reached"], filtered["purchases"])
    assert filtered["purchases"] < purchases
    _shoot(page, shots, "overview-filtered")

    _section(page, "Engagements")
    expect(page.get_by_role("heading", level=1)).to_have_text("Engagements")
    expect(page.get_by_role("table", name=re.compile(r"^Engagements"))).to_be_visible()
    _assert_no_horizontal_scroll(page)
    _shoot(page, shots, "engagements")

    # The alert queue, most overdue first: open the first stalled customer whose PoV milestone is
    # still ahead (one stuck only before the satisfaction survey has no milestone left to record).
    _section(page, "Alerts")
    expect(page.get_by_role("heading", level=1)).to_have_text("Stalled customers")
    _shoot(page, shots, "alerts")
    listed = _alert_links(page)
    assert listed, "the alert queue lists no stalled customer"
    chosen = next(((n, p) for n, p in listed if _engagement_at(tenant, p).next_step != "satisfaction"), None)
    assert chosen, "every stalled customer waits only for a satisfaction survey"
    name, path = chosen
    page.get_by_role("table", name="Alerts").get_by_role("link", name=name, exact=True).first.click()
    page.wait_for_url(f"{live_server.url}{path}")
    engagement = _engagement_at(tenant, path)
    with tenant_scope(tenant):
        pov = Milestone.objects.get(offering=engagement.offering, is_pov=True)
        alert = Alert.objects.get(engagement=engagement, state__in=LIVE)
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text(engagement.customer.name)
    expect(heading).to_contain_text("Stalled")

    page.get_by_label("Milestone", exact=True).select_option(label=pov.name)
    page.get_by_role("button", name="Record milestone").click()
    if engagement.offering.requires_satisfaction:
        expect(page.get_by_role("region", name="Timeline")).to_contain_text(f"{pov.name} reached")
        page.get_by_label("Score (1–5)").select_option("5")
        page.get_by_role("button", name="Record satisfaction").click()
    expect(heading).to_contain_text("Reached")
    expect(page.get_by_role("region", name="Timeline")).to_contain_text(f"{pov.name} reached")
    _shoot(page, shots, "engagement")

    # The worker resolves the alert and recomputes the stored metrics.
    def resolved_and_counted():
        """the alert is resolved and the stored rollup counts one more reached"""
        with tenant_scope(tenant):
            state = Alert.objects.get(pk=alert.pk).state
        return state == AlertState.RESOLVED and _stored(tenant)["reached"] == stored["reached"] + 1

    wait_for(resolved_and_counted, timeout=60, interval=0.5)

    page.goto(f"{live_server.url}/t/demo/alerts/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Stalled customers")
    still_listed = _alert_links(page)
    assert path not in [p for _, p in still_listed], f"{name} is still in the alert queue"
    with tenant_scope(tenant):
        namesakes = Alert.objects.filter(state__in=LIVE, engagement__customer__name=name).exists()
    if not namesakes:
        expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)

    page.goto(f"{live_server.url}/t/demo/")
    assert _reached_of(page) == (reached + 1, purchases)

    _section(page, "Team")
    expect(page.get_by_role("heading", level=1)).to_have_text("Team scoreboard")
    expect(page.get_by_role("table").first).to_be_visible()
    _shoot(page, shots, "team")
    page.context.close()


def test_admin_pages_render_and_a_viewer_cannot_record(browser, live_server, demo, shots):
    expect = _expect()
    page = _sign_in(browser, live_server, "admin@demo.pov")
    _section(page, "Journeys")
    expect(page.get_by_role("heading", level=1)).to_have_text("Journeys")
    with tenant_scope(demo):
        offerings = list(Offering.objects.order_by("name"))
    for offering in offerings:
        expect(page.get_by_role("heading", level=2, name=re.compile(rf"^{re.escape(offering.name)}\b"))).to_be_visible()
    _shoot(page, shots, "journeys")

    page.get_by_role("link", name="Edit", exact=True).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Edit {offerings[0].name}")
    _shoot(page, shots, "journey-edit")

    _section(page, "Settings")
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    expect(page.get_by_role("heading", name="Members and roles")).to_be_visible()
    _shoot(page, shots, "settings")
    page.context.close()

    # A viewer reads an engagement but is offered nothing to record.
    page = _sign_in(browser, live_server, "viewer@demo.pov")
    _section(page, "Engagements")
    table = page.get_by_role("table", name=re.compile(r"^Engagements"))
    table.get_by_role("row").nth(1).get_by_role("link").first.click()  # row 0 holds the column headers
    page.wait_for_url(re.compile(r"/t/demo/engagements/[0-9a-f-]{36}/$"))
    expect(page.get_by_role("region", name="Timeline")).to_be_visible()
    expect(page.get_by_role("button", name="Record milestone")).to_have_count(0)
    expect(page.get_by_label("Milestone", exact=True)).to_have_count(0)
    page.context.close()


# Regressions: bugs these tests found once ---------------------------------------------------------


def test_a_viewer_is_offered_no_alert_actions(browser, live_server, demo):
    expect = _expect()
    page = _sign_in(browser, live_server, "viewer@demo.pov")
    _section(page, "Alerts")
    table = page.get_by_role("table", name="Alerts")
    table.get_by_role("link").first.wait_for()  # the queue is listed (a timeout here is an error, not the bug)
    for action in ("Acknowledge", "Assign", "Resolve"):
        expect(table.get_by_role("button", name=action, exact=True)).to_have_count(0)
    page.context.close()


def test_a_customer_is_as_many_days_overdue_on_alerts_as_on_engagements(browser, live_server, demo):
    name = "Halbzeit Probe GmbH"
    with tenant_scope(demo):
        customer = Customer.objects.create(tenant=demo, external_id="CUS-PROBE", name=name, segment="smb")
        # Its first milestone is due on the day of purchase: 13.75 days overdue, whatever the clock says.
        purchase_record(
            tenant=demo, external_id="ORD-PROBE", customer=customer, offering=Offering.objects.get(key="credit-card"),
            purchased_at=timezone.now() - timedelta(days=demo.grace_days + 10.75), actor=Actor.system("tests"),
        )  # fmt: skip
        stalled_scan(demo)
        if not Alert.objects.filter(engagement__customer=customer, state__in=LIVE).exists():
            pytest.fail("the probe customer has no alert", pytrace=False)  # not an AssertionError: not the bug
    page = _sign_in(browser, live_server, "owner@demo.pov")

    _section(page, "Alerts")
    on_alerts = _cell(page.get_by_role("table", name="Alerts"), name, "Days overdue")
    _section(page, "Engagements")
    page.get_by_role("searchbox", name="Search").fill(name)
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"[?&]q="))
    on_engagements = _cell(page.get_by_role("table", name=re.compile(r"^Engagements")), name, "Days overdue")
    assert on_alerts == on_engagements, f"{name}: {on_alerts} days overdue on Alerts, {on_engagements} on Engagements"
    page.context.close()
