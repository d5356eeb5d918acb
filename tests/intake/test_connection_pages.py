"""Settings → Connections: admins add, map, switch, test and delete connections; the log shows what
arrived. Other roles get 403, other companies 404."""

import json
import time
from datetime import timedelta

import pytest
import stripe
from django.utils import timezone

from engagement.models import Purchase
from intake import services, trial
from intake.models import Arrival, Connection
from notify.models import WebhookEndpoint
from tenants.scoping import tenant_scope
from tests.intake.conftest import STRIPE_SECRET, log, post, stored
from tests.web.conftest import ROLES, acme, charlie  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(acme):  # noqa: F811
    """tests.web's acme (a member of every role, offering `acme-software` with milestones m1-m3)."""
    return acme


def connect(world, actor, *, kind="stripe", mapping=None, secret=None):
    return services.connection_create(tenant=world.tenant, kind=kind, name=kind.title(), mapping=mapping or {},
                                      secret=secret, actor=actor)  # fmt: skip


def page(world, rest=""):
    return world.path(f"settings/connections/{rest}")


def test_an_admin_adds_a_stripe_connection_maps_it_and_pastes_the_secret(world, login):
    client = login(world.members["admin"])

    created = client.post(page(world, "new/"), {"kind": "stripe", "name": "Stripe (live)"})

    assert created.status_code == 200
    with tenant_scope(world.tenant):
        connection = Connection.objects.get()
    assert f"/in/acme/{connection.pk}" in created.content.decode()
    form = {"name": "Stripe (live)", "price": ["price_9", ""], "offering": ["acme-software", "acme-software"]}
    saved = client.post(page(world, f"{connection.pk}/"), form)
    assert saved.status_code == 302
    assert client.post(page(world, f"{connection.pk}/secret/"), {"secret": STRIPE_SECRET}).status_code == 302
    with tenant_scope(world.tenant):
        connection.refresh_from_db()
    assert (connection.mapping, connection.secret) == ({"prices": {"price_9": "acme-software"}}, STRIPE_SECRET)
    assert STRIPE_SECRET not in client.get(page(world, f"{connection.pk}/")).content.decode()


def test_an_analytics_source_shows_its_write_key_once(world, login):
    client = login(world.members["admin"])

    created = client.post(page(world, "new/"), {"kind": "segment", "name": "Product"})

    with tenant_scope(world.tenant):
        connection = Connection.objects.get()
    assert connection.secret in created.content.decode()
    assert "no-store" in created["Cache-Control"]
    assert connection.secret not in client.get(page(world, f"{connection.pk}/")).content.decode()


def test_a_bad_mapping_is_refused_saying_why(world, login, actor):
    with tenant_scope(world.tenant):
        connection = services.connection_create(
            tenant=world.tenant, kind="hubspot", name="CRM", mapping={}, actor=actor
        )
    client = login(world.members["admin"])

    response = client.post(
        page(world, f"{connection.pk}/"), {"name": "CRM", "won_stage": "", "offering": "acme-software"}
    )

    assert response.status_code == 400
    assert "This is required." in response.content.decode()
    with tenant_scope(world.tenant):
        assert Connection.objects.get().mapping == {}


def test_the_log_shows_what_arrived(world, login, actor):
    with tenant_scope(world.tenant):
        connection = connect(world, actor, mapping={"prices": {"price_9": "acme-software"}}, secret=STRIPE_SECRET)
    payload = json.dumps(
        {"id": "evt_9", "type": "charge.refunded", "created": int(time.time()), "data": {"object": {}}}
    )
    post(
        connection,
        payload,
        {"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)},
    )
    post(connection, payload, {"Stripe-Signature": "t=1,v1=forged"})
    client = login(world.members["admin"])

    everything = client.get(page(world, f"{connection.pk}/")).content.decode()
    rejected = client.get(page(world, f"{connection.pk}/") + "?outcome=rejected").content.decode()

    assert "PoV does not use charge.refunded events." in everything and "does not verify" in everything
    assert "does not verify" in rejected and "charge.refunded" not in rejected
    listing = client.get(page(world)).content.decode()
    assert "Stripe" in listing


def test_send_a_test_runs_a_signed_sample_through_and_stores_nothing(world, login, actor):
    with tenant_scope(world.tenant):
        connection = connect(world, actor, mapping={"prices": {"price_9": "acme-software"}}, secret=STRIPE_SECRET)
    before = stored(world.tenant)
    client = login(world.members["admin"])

    response = client.post(page(world, f"{connection.pk}/test/"), follow=True)

    assert "Test (nothing stored): Recorded purchase sub_test_pov of acme-software." in response.content.decode()
    assert stored(world.tenant) == before
    assert log(connection)[0]["vendor_id"] == "test"


@pytest.mark.parametrize(
    ("kind", "mapping", "expected"),
    [
        ("stripe", {}, "no signing secret"),
        ("hubspot", {"won_stage": "closedwon", "offering": "acme-software"}, "Recorded purchase test-deal"),
        (
            "segment",
            {"events": {"Done": {"offering": "acme-software", "milestone": "m2"}}},
            "2 messages: 1 accepted, 1 ignored",
        ),
    ],
)
def test_send_a_test_for_each_kind(world, actor, kind, mapping, expected):
    with tenant_scope(world.tenant):
        secret = "hubspot-secret" if kind == "hubspot" else None
        connection = connect(world, actor, kind=kind, mapping=mapping, secret=secret)
        before = (Purchase.objects.count(), stored(world.tenant))
        result = trial.send_test(connection)
        assert (Purchase.objects.count(), stored(world.tenant)) == before
    assert expected in result.summary


def test_switching_off_and_deleting_ask_nothing_surprising(world, login, actor):
    with tenant_scope(world.tenant):
        connection = services.connection_create(
            tenant=world.tenant, kind="stripe", name="Stripe", mapping={}, actor=actor
        )
    client = login(world.members["admin"])

    client.post(page(world, f"{connection.pk}/switch/"))
    with tenant_scope(world.tenant):
        assert Connection.objects.get().enabled is False
    confirm = client.get(page(world, f"{connection.pk}/delete/"))
    assert confirm.status_code == 200 and "Delete the connection" in confirm.content.decode()
    with tenant_scope(world.tenant):
        assert Connection.objects.count() == 1  # asking deletes nothing
    client.post(page(world, f"{connection.pk}/delete/"))
    with tenant_scope(world.tenant):
        assert Connection.objects.count() == 0


def test_log_lines_older_than_30_days_are_purged(world, actor):
    with tenant_scope(world.tenant):
        connection = services.connection_create(
            tenant=world.tenant, kind="stripe", name="Stripe", mapping={}, actor=actor
        )
        for days in (31, 29):
            services.arrival_log(tenant=world.tenant, connection=connection, outcome="ignored", summary=f"{days}",
                                 at=timezone.now() - timedelta(days=days))  # fmt: skip

        assert services.arrivals_purge(world.tenant) == 1
        assert list(Arrival.objects.values_list("summary", flat=True)) == ["29"]


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_only_admins_reach_the_connections(world, login, actor, role):
    with tenant_scope(world.tenant):
        connection = services.connection_create(
            tenant=world.tenant, kind="stripe", name="Stripe", mapping={}, actor=actor
        )
    client = login(world.members[role])

    assert client.get(page(world)).status_code == 403
    assert client.get(page(world, f"{connection.pk}/")).status_code == 403
    assert client.post(page(world, "new/"), {"kind": "stripe", "name": "Mine"}).status_code == 403
    assert client.post(page(world, f"{connection.pk}/delete/")).status_code == 403
    with tenant_scope(world.tenant):
        assert Connection.objects.count() == 1


def test_another_companys_connection_is_not_found(world, charlie, login, actor):  # noqa: F811
    with tenant_scope(world.tenant):
        connection = services.connection_create(
            tenant=world.tenant, kind="stripe", name="Stripe", mapping={}, actor=actor
        )
    client = login(charlie.members["admin"])

    for rest in ("", "test/", "switch/", "delete/", "secret/"):
        assert client.post(charlie.path(f"settings/connections/{connection.pk}/{rest}")).status_code == 404
        assert client.get(page(world, f"{connection.pk}/{rest}")).status_code == 404
    with tenant_scope(world.tenant):
        assert Connection.objects.get().enabled is True


def test_an_admin_adds_a_chat_channel_and_its_page_hides_the_key(world, login):
    client = login(world.members["admin"])
    url = "https://hooks.slack.com/services/T1/B2/SECRETKEY"

    created = client.post(page(world, "chat/"), {"name": "#onboarding", "url": url, "events": ["engagement.stalled"]})

    with tenant_scope(world.tenant):
        channel = WebhookEndpoint.objects.get()
    assert created.status_code == 302 and created["Location"] == world.path(f"settings/webhooks/{channel.pk}/")
    shown = client.get(created["Location"]).content.decode()
    assert "#onboarding" in shown and "https://hooks.slack.com/…" in shown and "SECRETKEY" not in shown
    assert "PoV-Signature" not in shown  # nothing to verify on a chat message
    listing = client.get(page(world)).content.decode()
    assert "#onboarding" in listing and "SECRETKEY" not in listing
    assert "#onboarding" not in client.get(world.path("settings/webhooks/")).content.decode()


def test_a_chat_channel_without_events_is_refused_keeping_the_form(world, login):
    client = login(world.members["admin"])

    response = client.post(page(world, "chat/"), {"name": "#x", "url": "https://hooks.slack.com/services/A"})

    assert response.status_code == 400
    assert "Pick at least one event." in response.content.decode()
    with tenant_scope(world.tenant):
        assert WebhookEndpoint.objects.count() == 0
