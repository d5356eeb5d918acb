"""Webhook endpoints: what a valid one needs, its secret and audit trail, and the settings pages on which
an admin creates, inspects, rotates, disables, enables, tests and deletes them. Only the tenant's admins
may use those pages; another tenant's endpoint is a 404.
"""

import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from engagement import outbox
from notify import webhook_delivery, webhooks
from notify.models import WebhookDelivery, WebhookEndpoint
from tenants.models import AuditEntry
from tenants.scoping import tenant_scope
from tests.factories import MemberFactory
from tests.notify.webhook_helpers import _buy, _endpoint, _lose, verified

pytestmark = pytest.mark.usefixtures("webhook_site")


# Endpoints ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "events", "field", "message"),
    [
        ("ftp://example.com/hook", ["engagement.lost"], "url", "https://"),
        ("file:///etc/passwd", ["engagement.lost"], "url", "https://"),
        ("javascript:alert(1)", ["engagement.lost"], "url", "https://"),
        ("https://user:secret@example.com/hook", ["engagement.lost"], "url", "credentials"),
        ("https:// not a url", ["engagement.lost"], "url", "valid URL"),
        ("", ["engagement.lost"], "url", "Enter the URL"),
        ("https://example.com/" + "a" * 500, ["engagement.lost"], "url", "too long"),
        ("https://example.com/hook", [], "events", "at least one"),
        ("https://example.com/hook", ["engagement.changed"], "events", "Unknown events: engagement.changed"),
    ],
)
def test_an_endpoint_needs_an_http_url_and_known_events(scoped, actor, url, events, field, message):
    with pytest.raises(ValidationError) as caught:
        webhooks.endpoint_create(tenant=scoped, url=url, events=events, actor=actor)
    assert message in " ".join(caught.value.message_dict[field])
    assert not WebhookEndpoint.objects.exists()


def test_a_new_endpoint_has_a_whsec_secret_and_an_audit_row(scoped, actor):
    endpoint, secret = _endpoint(scoped, actor, "https://example.com/hook", ["alert.opened", "engagement.lost"])
    assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", secret)
    assert endpoint.events == ["engagement.lost", "alert.opened"]  # documented order
    rotated = webhooks.endpoint_rotate_secret(tenant=scoped, endpoint=endpoint, actor=actor)
    assert rotated != secret and WebhookEndpoint.objects.get().secret == rotated
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"webhook.created", "webhook.secret_rotated"} <= actions


# Settings pages -----------------------------------------------------------------------------------------


def _signed_in(member):
    member.user.refresh_from_db()
    client = Client()
    client.force_login(member.user)
    return client


@pytest.fixture
def admin(tenant):
    return MemberFactory(tenant=tenant, user__email="admin@acme.test", role="admin")


BASE = "/t/acme/settings/webhooks/"


def test_creating_an_endpoint_shows_its_secret_once(scoped, admin, receiver):
    client = _signed_in(admin)
    response = client.post(BASE + "new/", {"url": receiver.url, "events": ["engagement.lost", "alert.opened"]})
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["engagement.lost", "alert.opened"]
    page = response.content.decode()
    assert endpoint.secret in page and "shown only once" in page
    assert "no-store" in response["Cache-Control"]

    again = client.get(f"{BASE}{endpoint.id}/")
    assert again.status_code == 200 and endpoint.secret not in again.content.decode()
    assert endpoint.secret[:10] in again.content.decode(), "a hint tells which secret is in use"
    listing = client.get(BASE)
    assert receiver.url in listing.content.decode() and endpoint.secret not in listing.content.decode()
    audit = AuditEntry.objects.get(action="webhook.created")
    assert audit.actor_label == "admin@acme.test" and endpoint.secret not in json.dumps(audit.data)


def test_an_invalid_endpoint_is_a_400_naming_the_problem(scoped, admin):
    response = _signed_in(admin).post(BASE + "new/", {"url": "ftp://example.com/x", "events": ["engagement.lost"]})
    assert response.status_code == 400
    assert "must start with https://" in response.content.decode()
    assert 'value="ftp://example.com/x"' in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_rotating_shows_a_new_secret_once_and_the_next_delivery_uses_it(scoped, admin, actor, receiver):
    endpoint, old = _endpoint(scoped, actor, receiver.url)
    client = _signed_in(admin)
    page = client.get(f"{BASE}{endpoint.id}/").content.decode()
    rotate = re.search(r'<form[^>]*action="[^"]*/rotate/"[^>]*>', page)
    assert rotate and 'data-confirm="Rotate the signing secret?' in rotate.group(0)  # asked first: no way back
    response = client.post(f"{BASE}{endpoint.id}/rotate/")
    endpoint.refresh_from_db()
    assert response.status_code == 200 and endpoint.secret != old
    assert endpoint.secret in response.content.decode() and old not in response.content.decode()
    assert endpoint.secret not in client.get(f"{BASE}{endpoint.id}/").content.decode()
    _lose(scoped, _buy(scoped, actor), actor)
    outbox.drain(scoped)
    webhook_delivery.deliver_due(scoped)
    assert verified(endpoint.secret, receiver.requests[0]) and not verified(old, receiver.requests[0])


def test_disable_enable_test_event_and_delete_from_the_pages(scoped, admin, actor, receiver):
    endpoint, secret = _endpoint(scoped, actor, receiver.url)
    client = _signed_in(admin)
    page = f"{BASE}{endpoint.id}/"
    assert client.post(page + "disable/").status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.disabled_reason == "Disabled by admin@acme.test."
    assert client.post(page + "test/").status_code == 302
    assert not WebhookDelivery.objects.exists(), "no test event to a disabled endpoint"
    assert client.post(page + "enable/").status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.is_active

    receiver.answers = [(500, b"<script>alert('x')</script>", {})]
    assert client.post(page + "test/").status_code == 302
    webhook_delivery.deliver_due(scoped)
    [request] = receiver.requests
    assert request.json()["type"] == "webhook.test" and verified(secret, request)
    shown = client.get(page).content.decode()
    assert "webhook.test" in shown and ">500<" in shown and " ms<" in shown
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in shown and "<script>alert" not in shown

    confirm = client.get(page + "delete/")
    assert confirm.status_code == 200 and "Delete the endpoint" in confirm.content.decode()
    assert WebhookEndpoint.objects.exists(), "a GET deletes nothing"
    assert client.post(page + "delete/")["Location"] == BASE
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"webhook.disabled", "webhook.enabled", "webhook.deleted"} <= actions


def test_the_settings_page_links_to_webhooks(scoped, admin):
    assert f'href="{BASE}"' in _signed_in(admin).get("/t/acme/settings/").content.decode()


ROUTES = [
    ("GET", ""), ("POST", "new/"), ("GET", "{id}/"), ("POST", "{id}/rotate/"), ("POST", "{id}/enable/"),
    ("POST", "{id}/disable/"), ("GET", "{id}/delete/"), ("POST", "{id}/delete/"), ("POST", "{id}/test/"),
]  # fmt: skip


@pytest.mark.parametrize("role", ["owner", "sales", "service", "viewer"])
@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_only_admins_may_use_the_webhook_pages(scoped, actor, role, method, route):
    endpoint, secret = _endpoint(scoped, actor, "https://example.com/hook")
    member = MemberFactory(tenant=scoped, user__email=f"{role}@acme.test", role=role)
    url = BASE + route.format(id=endpoint.id)
    body = {"url": "https://example.com/other", "events": ["engagement.lost"]}
    response = getattr(_signed_in(member), method.lower())(url, body if method == "POST" else None)
    assert response.status_code == 403
    endpoint.refresh_from_db()
    assert (endpoint.secret, endpoint.is_active, WebhookEndpoint.objects.count()) == (secret, True, 1)


@pytest.mark.parametrize(("method", "route"), [r for r in ROUTES if "{id}" in r[1]])
def test_another_tenants_endpoint_is_a_404(tenant, other_tenant, admin, actor, method, route):
    with tenant_scope(other_tenant):
        theirs, secret = _endpoint(other_tenant, actor, "https://charlie.example.com/hook")
    response = getattr(_signed_in(admin), method.lower())(BASE + route.format(id=theirs.id))
    assert response.status_code == 404
    with tenant_scope(other_tenant):
        theirs.refresh_from_db()
        assert (theirs.secret, theirs.is_active) == (secret, True)
        assert not WebhookDelivery.objects.exists()


def test_a_member_of_another_tenant_gets_a_404(tenant, other_tenant, actor):
    with tenant_scope(tenant):
        endpoint, _ = _endpoint(tenant, actor, "https://example.com/hook")
    stranger = MemberFactory(tenant=other_tenant, user__email="admin@charlie.test", role="admin")
    client = _signed_in(stranger)
    assert client.get(BASE).status_code == 404
    assert client.get(f"{BASE}{endpoint.id}/").status_code == 404
