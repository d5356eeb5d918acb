"""An admin connects Stripe and a chat channel in a real browser, on a wide screen and a phone: the
address to give Stripe, the pasted secret, a price mapped to an offering, a test that stores nothing and
shows in the log, a chat channel whose address is shown only by its host, and deleting after a question."""

import pytest

from engagement.models import Purchase
from intake.models import Connection
from tenants.scoping import tenant_scope
from tests.browser import test_dashboards as dashboards
from tests.browser.test_confirm_before import _signed_in, world  # noqa: F401 - `world` is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

browser = dashboards.browser


@pytest.mark.parametrize("viewport", [{"width": 1440, "height": 900}, {"width": 390, "height": 844}],
                         ids=["wide", "phone"])  # fmt: skip
def test_an_admin_connects_stripe_and_a_chat_channel(browser, live_server, world, viewport):  # noqa: F811
    expect = dashboards._expect()
    page = _signed_in(browser, live_server, "admin@acme.test")
    page.set_viewport_size(viewport)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server.url}{world.path('settings/')}")
    page.get_by_role("navigation", name="Settings sections").get_by_role("link", name="Connections").click()

    page.get_by_label("Kind").select_option("stripe")
    page.get_by_label("Name", exact=True).fill("Stripe (live)")
    page.get_by_role("button", name="Add connection").click()
    with tenant_scope(world.tenant):
        connection = Connection.objects.get()
    expect(page.locator("#connection-url")).to_have_value(f"http://127.0.0.1:8000/in/acme/{connection.pk}")
    page.get_by_label("Secret").fill("whsec_from_stripe")
    page.get_by_role("button", name="Save secret").click()
    expect(page.locator(".messages").or_(page.get_by_role("status"))).to_contain_text("Secret saved.")
    page.get_by_label("Stripe id 1").fill("price_9")
    page.get_by_role("button", name="Save mapping").click()
    page.get_by_role("button", name="Send a test").click()
    expect(page.locator("#log")).to_contain_text("Test (nothing stored): Recorded purchase sub_test_pov")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    with tenant_scope(world.tenant):
        assert Purchase.objects.filter(external_id="sub_test_pov").count() == 0

    page.get_by_role("link", name="Connections", exact=True).first.click()
    page.get_by_label("Channel").fill("#onboarding")
    page.get_by_label("Incoming webhook address").fill("https://hooks.slack.com/services/T1/B2/SECRETKEY")
    page.get_by_role("button", name="Add chat channel").click()
    expect(page.get_by_role("heading", name="#onboarding")).to_be_visible()
    assert "SECRETKEY" not in page.content()
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0

    page.get_by_role("link", name="Connections", exact=True).first.click()
    page.get_by_role("link", name="Stripe (live)").click()
    page.get_by_role("link", name="Delete…").click()
    page.get_by_role("button", name="Delete the connection").click()
    expect(page.locator(".messages").or_(page.get_by_role("status"))).to_contain_text("Deleted the connection")
    with tenant_scope(world.tenant):
        assert Connection.objects.count() == 0
