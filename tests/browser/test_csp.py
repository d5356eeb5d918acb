"""The Content-Security-Policy in a real browser: the overview, the engagement list and the API docs (Swagger
UI) load with the policy enforced and raise no `securitypolicyviolation` and no console error, so nothing on
them depends on inline code or a source the policy refuses."""

import pytest

from tests.browser import test_dashboards as dashboards

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Chromium (from Debian) and the demo tenant, as the dashboard tests set them up.
browser, demo = dashboards.browser, dashboards.demo

# Recorded from the first script the page runs, before any of the page's own.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
});
"""


def _watched(page):
    """Console errors of the page, collected as they happen."""
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def _violations(page):
    return page.evaluate("window.__csp")


def test_the_dashboards_run_under_the_policy_without_violations(browser, live_server, demo):
    page = dashboards._sign_in(browser, live_server, "owner@demo.pov")
    page.context.add_init_script(RECORD_VIOLATIONS)
    errors = _watched(page)

    for path in ("/t/demo/", "/t/demo/engagements/"):
        response = page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        assert _violations(page) == [], path
    assert page.evaluate("typeof htmx") == "object", "htmx did not load under the policy"
    assert errors == []


def test_swagger_ui_renders_under_the_policy(browser, live_server):
    context = browser.new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    errors = _watched(page)

    page.goto(f"{live_server.url}/api/docs/")
    dashboards._expect()(page.get_by_text("PoV API").first).to_be_visible()
    dashboards._expect()(page.locator(".opblock").first).to_be_visible()

    assert _violations(page) == []
    assert errors == []
    context.close()
