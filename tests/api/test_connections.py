"""/api/v1/connections/: admin-scope keys set connections up; other keys and other companies cannot."""

import pytest
from django.conf import settings

from intake.models import Connection
from notify.models import WebhookEndpoint
from tenants.scoping import tenant_scope
from tests.api.conftest import Api, _key, count, error_of

pytestmark = pytest.mark.django_db

STRIPE = {"kind": "stripe", "name": "Stripe (live)", "mapping": {"prices": {"price_1": "software"}},
          "secret": "whsec_from_stripe"}  # fmt: skip


@pytest.fixture
def admin_api(acme, actor):
    return Api(_key(acme, "admin", actor)[1])


@pytest.fixture
def charlie_admin_api(charlie, actor):
    return Api(_key(charlie, "admin", actor)[1])


def test_an_admin_key_creates_a_stripe_connection(acme, software, admin_api):
    response = admin_api.post("connections/", STRIPE)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["name"], body["enabled"], body["has_secret"]) == ("stripe", "Stripe (live)", True, True)
    assert body["mapping"] == {"prices": {"price_1": "software"}}
    assert body["url"] == f"{settings.SITE_URL}/in/acme/{body['id']}"
    assert "secret" not in body  # Stripe made it; PoV never shows it back
    assert count(acme, Connection) == 1


def test_an_analytics_source_gets_its_write_key_once(acme, software, admin_api):
    mapping = {"events": {"Invoice Paid": {"offering": "software", "milestone": "onboarded"}}}
    created = admin_api.post("connections/", {"kind": "segment", "name": "Product", "mapping": mapping}).json()

    assert len(created["secret"]) >= 30
    assert created["mapping"] == {"customer_id": "userId", "events": mapping["events"]}
    assert "secret" not in admin_api.get(f"connections/{created['id']}/").json()
    assert [c["id"] for c in admin_api.get("connections/").json()["results"]] == [created["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**STRIPE, "kind": "fax"}, "kind"),
        ({**STRIPE, "name": ""}, "name"),
        ({**STRIPE, "mapping": {"prices": {"price_1": "no-such-offering"}}}, "mapping.prices.price_1"),
        (
            {
                "kind": "hubspot",
                "name": "CRM",
                "mapping": {"won_stage": "closedwon", "offering": "software", "lost_stage": "closedwon"},
            },
            "mapping.lost_stage",
        ),
        (
            {
                "kind": "segment",
                "name": "P",
                "mapping": {"events": {"X": {"offering": "software", "milestone": "nope"}}},
            },
            "mapping.events.X.milestone",
        ),
        ({"kind": "segment", "name": "P", "mapping": {"customer_id": "email"}}, "mapping.customer_id"),
    ],
)
def test_a_bad_connection_is_refused_naming_the_field(acme, software, admin_api, body, field):
    error = error_of(admin_api.post("connections/", body), 400)

    assert field in error["fields"], error
    assert count(acme, Connection) == 0


def test_patch_switches_off_and_changes_the_mapping(acme, software, admin_api):
    created = admin_api.post("connections/", STRIPE).json()

    response = admin_api.patch(f"connections/{created['id']}/", {"enabled": False, "mapping": {"prices": {}}})

    assert response.status_code == 200, response.content
    assert (response.json()["enabled"], response.json()["mapping"]) == (False, {"prices": {}})
    error = error_of(admin_api.patch(f"connections/{created['id']}/", {"kind": "hubspot"}), 400)
    assert "kind" in error["fields"]


def test_delete_removes_it(acme, software, admin_api):
    created = admin_api.post("connections/", STRIPE).json()

    assert admin_api.delete(f"connections/{created['id']}/").status_code == 204
    assert count(acme, Connection) == 0


@pytest.mark.parametrize("scope", ["read", "write"])
def test_keys_without_the_admin_scope_are_forbidden(acme, software, actor, scope):
    api = Api(_key(acme, scope, actor)[1])

    assert api.get("connections/").status_code == 403
    error_of(api.post("connections/", STRIPE), 403)
    assert count(acme, Connection) == 0


def test_another_companys_connection_is_not_found(acme, software, admin_api, charlie_admin_api):
    created = admin_api.post("connections/", STRIPE).json()

    error_of(charlie_admin_api.get(f"connections/{created['id']}/"), 404)
    error_of(charlie_admin_api.patch(f"connections/{created['id']}/", {"enabled": False}), 404)
    assert charlie_admin_api.get("connections/").json()["results"] == []
    assert admin_api.get(f"connections/{created['id']}/").json()["enabled"] is True


def test_a_chat_channel_is_a_connection_whose_address_is_never_shown_back(acme, admin_api):
    mapping = {"url": "https://hooks.slack.com/services/T1/B2/SECRET", "events": ["engagement.stalled"]}

    created = admin_api.post("connections/", {"kind": "chat", "name": "#onboarding", "mapping": mapping})

    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["kind"], body["name"], body["enabled"], body["url"]) == ("chat", "#onboarding", True, None)
    assert body["mapping"] == {"url": "https://hooks.slack.com/…", "events": ["engagement.stalled"]}
    assert "SECRET" not in admin_api.get("connections/").content.decode()
    patched = admin_api.patch(f"connections/{body['id']}/", {"enabled": False, "mapping": body["mapping"]})
    assert patched.json()["enabled"] is False
    with tenant_scope(acme):
        assert WebhookEndpoint.objects.get().url == mapping["url"]  # the shown address sent back changes nothing
    assert admin_api.delete(f"connections/{body['id']}/").status_code == 204
    assert count(acme, WebhookEndpoint) == 0


def test_a_chat_channel_hears_only_what_a_team_acts_on(acme, admin_api):
    mapping = {"url": "https://hooks.slack.com/services/T1/B2/X", "events": ["alert.resolved"]}

    error = error_of(admin_api.post("connections/", {"kind": "chat", "name": "#x", "mapping": mapping}), 400)

    assert "events" in error["fields"]
    assert count(acme, WebhookEndpoint) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**STRIPE, "colour": "red"}, "colour"),
        ({**STRIPE, "name": 7}, "name"),
        ({**STRIPE, "enabled": "yes"}, "enabled"),
        ({"kind": "segment", "name": "P", "secret": "mine"}, "secret"),
        ({"kind": "chat", "name": "#x", "secret": "s", "mapping": {"url": "https://h.test/x", "events": []}}, "secret"),
        ({"kind": "chat", "name": "#x", "mapping": {"url": 5, "events": ["engagement.lost"]}}, "mapping.url"),
        ({"kind": "chat", "name": "#x", "mapping": {"url": "https://h.test/x", "events": "lost"}}, "mapping.events"),
    ],
)
def test_what_cannot_be_a_connection_is_refused_naming_the_field(acme, software, admin_api, body, field):
    error = error_of(admin_api.post("connections/", body), 400)

    assert field in error["fields"], error
    assert count(acme, Connection) == count(acme, WebhookEndpoint) == 0


def test_an_id_that_is_no_uuid_is_not_found(admin_api):
    error_of(admin_api.get("connections/not-a-uuid/"), 404)
