"""A new admin's way in, in a real browser on a wide screen and a phone: the overview's checklist leads to an
owner rule and an import; the file's columns are matched, the import runs (here, as the worker would) and its
customers show up owned by the rule."""

import pytest

from engagement import imports
from engagement.models import Engagement, Import
from tenants.scoping import tenant_scope
from tests.browser import test_dashboards as dashboards
from tests.browser.test_confirm_before import _signed_in, world  # noqa: F401 - `world` is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

browser = dashboards.browser
ORDERS = (
    "Order ID;Customer ID;Company;Offering;Purchase date\n"
    "WEB-1;WC-1;Nordlicht GmbH;acme-software;2026-11-02 09:30\n"
    "WEB-2;WC-2;Südwind AG;acme-software;2026-11-03 10:00\n"
)


@pytest.mark.parametrize("viewport", [{"width": 1440, "height": 900}, {"width": 390, "height": 844}],
                         ids=["wide", "phone"])  # fmt: skip
def test_a_new_admin_sets_a_rule_and_imports_a_spreadsheet(browser, live_server, world, tmp_path, viewport):  # noqa: F811
    expect = dashboards._expect()
    page = _signed_in(browser, live_server, "admin@acme.test")
    page.set_viewport_size(viewport)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server.url}{world.path()}")
    page.get_by_role("link", name="Set assignment rules, so new customers have an owner").click()
    page.get_by_label("service@acme.test").check()
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status").or_(page.locator(".messages"))).to_contain_text("Rule added")

    page.goto(f"{live_server.url}{world.path('settings/')}")
    page.get_by_role("navigation", name="Settings sections").get_by_role("link", name="Import").click()
    page.get_by_label("Kind of rows").select_option("purchases")
    orders = tmp_path / "orders.csv"
    orders.write_bytes(ORDERS.encode("cp1252"))
    page.get_by_label("CSV file (up to 50 MB)").set_input_files(str(orders))
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_text("2 rows of purchases, read as Windows-1252, semicolon-separated")).to_be_visible()
    expect(page.get_by_label("Purchase date")).to_have_value("purchased_at")
    expect(page.locator("table").last).to_contain_text("Südwind AG")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0

    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("heading", name="Import: queued")).to_be_visible()
    with tenant_scope(world.tenant):
        imports.run_import(world.tenant, str(Import.objects.get().pk))  # what the worker does
    expect(page.get_by_role("heading", name="Import: done")).to_be_visible(timeout=10_000)  # the page polls
    expect(page.locator("dl.counts")).to_contain_text("Created2")
    with tenant_scope(world.tenant):
        owners = set(Engagement.objects.filter(purchase__external_id__startswith="WEB-").values_list(
            "owner__user__email", flat=True))  # fmt: skip
    assert owners == {"service@acme.test"}
