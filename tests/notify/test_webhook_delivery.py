"""Which webhook deliveries an event makes, and what reaches a real HTTP receiver
(tests/notify/webhook_helpers.py).

The signed body of each event type; fan-out to the active endpoints subscribed to it, exactly once however
often a message is handled; each tenant's events reach its own endpoints only (Charlie, another tenant,
has endpoints and events of its own, which must never cross over); and the whole path from a recorded
loss through the outbox to the receiver, with a real worker.
"""

import json

import pytest
from django.utils import timezone

from engagement import outbox
from engagement.models import OutboxMessage
from metrics.alerts import stalled_scan
from notify import webhook_delivery, webhook_tasks, webhooks
from notify.models import WebhookAttempt, WebhookDelivery
from tenants.scoping import tenant_scope
from tests.conftest import WorkerProcess, wait_for
from tests.notify.webhook_helpers import (
    ALL_EVENTS,
    SITE,
    Received,
    _buy,
    _deliveries,
    _endpoint,
    _lose,
    _reach_pov,
    verified,
)

pytestmark = pytest.mark.usefixtures("webhook_site")


# Fan-out and the delivery body ------------------------------------------------------------------------


def test_a_lost_engagement_reaches_the_receiver_signed_with_its_event_id_and_data(scoped, actor, receiver):
    endpoint, secret = _endpoint(scoped, actor, receiver.url)
    engagement = _buy(scoped, actor, ref="p-42", name="Initech & Sons")
    _lose(scoped, engagement, actor)
    outbox.drain(scoped)
    [delivery] = _deliveries()

    assert webhook_delivery.deliver_due(scoped)["delivered"] == 1
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/hooks/pov")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "PoV-Webhooks/1.0"
    assert request.headers["pov-event-id"] == str(delivery.id)
    assert verified(secret, request)
    assert not verified(secret, Received("POST", "/", request.headers, request.body.replace(b"lost", b"LOST")))
    assert not verified("whsec_not-the-secret", request)

    body = request.json()
    assert request.body == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), "compact JSON"
    assert body["id"] == str(delivery.id) and body["type"] == "engagement.lost" and body["tenant"] == "acme"
    assert body["created_at"] == delivery.created_at.isoformat()
    data = body["data"]
    assert data["transition"] == {"from": "on_track", "to": "lost"}
    assert data["engagement"] == {
        **data["engagement"],
        "id": str(engagement.id),
        "url": f"{SITE}/t/acme/engagements/{engagement.id}/",
        "status": "lost",
        "purchase": {"external_id": "p-42", "purchased_at": engagement.pos_at.isoformat()},
        "customer": {"external_id": "cus-p-42", "name": "Initech & Sons"},
        "offering": "software-p-42",
        "lost_reason": "Chose a competitor",
        "pov_at": None,
    }
    assert "outbox" not in data and "outbox" not in body, "the outbox's sequential id stays inside"
    delivery.refresh_from_db()
    assert delivery.delivered_at is not None and delivery.attempts == 1
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_reached_pov_and_alerts_carry_their_own_data(scoped, actor, receiver):
    _endpoint(scoped, actor, receiver.url, ALL_EVENTS)
    happy = _buy(scoped, actor, ref="p-happy", days_ago=5)
    _reach_pov(scoped, happy, actor)
    stuck = _buy(scoped, actor, ref="p-stuck", days_ago=20)  # first milestone due 18 days ago
    stalled_scan(scoped)
    outbox.drain(scoped)
    webhook_delivery.deliver_due(scoped)

    by_type = {r.json()["type"]: r.json()["data"] for r in receiver.requests}
    assert set(by_type) == {"engagement.reached_pov", "engagement.stalled", "alert.opened"}
    reached = by_type["engagement.reached_pov"]["engagement"]
    happy.refresh_from_db()
    assert reached["pov_at"] == happy.pov_at.isoformat() and reached["days_to_value"] == pytest.approx(5 - 1 / 24)
    assert by_type["engagement.stalled"]["engagement"]["next_step"] == "m1"
    alert = by_type["alert.opened"]
    assert alert["alert"]["step"] == "m1" and alert["alert"]["state"] == "open"
    assert alert["alert"]["url"] == f"{SITE}/t/acme/alerts/"
    assert alert["engagement"]["id"] == str(stuck.id) and alert["engagement"]["status"] == "stalled"


def test_only_active_subscribed_endpoints_get_a_delivery_with_one_insert(
    scoped, actor, receiver, django_assert_num_queries
):
    lost_only, _ = _endpoint(scoped, actor, receiver.url + "/lost", ["engagement.lost"])
    reached_only, _ = _endpoint(scoped, actor, receiver.url + "/reached", ["engagement.reached_pov"])
    paused, _ = _endpoint(scoped, actor, receiver.url + "/paused", ["engagement.lost"])
    webhooks.endpoint_disable(tenant=scoped, endpoint=paused, actor=actor)
    for n in range(3):
        _lose(scoped, _buy(scoped, actor, ref=f"p-{n}"), actor)
    messages = list(OutboxMessage.objects.filter(kind=outbox.LOST))
    # active endpoints, already fanned out?, the engagements, their loss reasons, one INSERT
    with django_assert_num_queries(5):
        assert webhooks.fan_out(scoped, messages) == 3
    assert {d.endpoint_id for d in _deliveries()} == {lost_only.id}
    assert reached_only.deliveries.count() == 0 and paused.deliveries.count() == 0


def test_a_message_handled_twice_is_fanned_out_once(scoped, actor, receiver):
    _endpoint(scoped, actor, receiver.url)
    _lose(scoped, _buy(scoped, actor), actor)
    messages = list(OutboxMessage.objects.filter(kind=outbox.LOST))
    assert webhooks.fan_out(scoped, messages) == 1
    assert webhooks.fan_out(scoped, messages) == 0, "a drain that died before marking the row handled"
    # A second endpoint added since still gets the event; the first does not get it twice.
    _endpoint(scoped, actor, receiver.url + "/second")
    assert webhooks.fan_out(scoped, messages) == 1
    assert WebhookDelivery.objects.count() == 2


def test_a_message_listing_many_subjects_fans_out_one_delivery_each_once(scoped, actor, receiver, monkeypatch):
    monkeypatch.setattr(webhooks, "FAN_OUT_SLICE", 2)  # three subjects: two INSERTs
    first, _ = _endpoint(scoped, actor, receiver.url, ["engagement.stalled"])
    second, _ = _endpoint(scoped, actor, receiver.url + "/second", ["engagement.stalled"])
    stuck = [_buy(scoped, actor, ref=f"p-{n}", days_ago=20) for n in range(3)]  # stalled as recorded
    OutboxMessage.objects.all().delete()
    transition = {"from": "on_track", "to": "stalled"}
    outbox.publish(scoped, outbox.listed(outbox.STALLED, "engagement", [e.id for e in stuck], transition))
    [message] = OutboxMessage.objects.filter(kind=outbox.STALLED)

    assert webhooks.fan_out(scoped, [message]) == 6
    for endpoint in (first, second):
        told = sorted(d.payload["data"]["engagement"]["id"] for d in endpoint.deliveries.all())
        assert told == sorted(str(e.id) for e in stuck)
    assert [d.payload["data"]["transition"] for d in _deliveries()] == [{"from": "on_track", "to": "stalled"}] * 6
    assert webhooks.fan_out(scoped, [message]) == 0, "a drain that died before marking the row handled"


def test_a_delivery_stored_before_lists_counts_for_its_one_subject(scoped, actor, receiver):
    endpoint, _ = _endpoint(scoped, actor, receiver.url)
    engagement = _buy(scoped, actor)
    _lose(scoped, engagement, actor)
    message = OutboxMessage.objects.create(
        tenant=scoped, kind=outbox.LOST, payload={"engagement": str(engagement.id), "from": "on_track", "to": "lost"}
    )
    stored_before = {"outbox": message.id, "data": {}}  # no position
    WebhookDelivery.objects.create(
        tenant=scoped, endpoint=endpoint, event=outbox.LOST, payload=stored_before, next_attempt_at=timezone.now()
    )
    assert webhooks.fan_out(scoped, [message]) == 0
    WebhookDelivery.objects.all().delete()
    assert webhooks.fan_out(scoped, [message]) == 1, "the one-subject payload still fans out"


# Tenancy ------------------------------------------------------------------------------------------------


def test_another_tenants_events_never_reach_this_tenants_endpoint(tenant, other_tenant, actor, receiver,
                                                                  charlie_receiver):  # fmt: skip
    with tenant_scope(tenant):
        _, acme_secret = _endpoint(tenant, actor, receiver.url, ALL_EVENTS)
        acme_engagement = _buy(tenant, actor, ref="acme-1")
        _lose(tenant, acme_engagement, actor)
    with tenant_scope(other_tenant):
        _, charlie_secret = _endpoint(other_tenant, actor, charlie_receiver.url, ALL_EVENTS)
        charlie_engagement = _buy(other_tenant, actor, ref="charlie-1", name="Charlie Secret Co")
        _lose(other_tenant, charlie_engagement, actor)
        outbox.drain(other_tenant)
    with tenant_scope(tenant):
        # A forged message in acme's outbox naming charlie's engagement finds nothing to send.
        outbox.publish(tenant, [(outbox.LOST, {"engagement": str(charlie_engagement.id), "from": "x", "to": "lost"})])
        outbox.drain(tenant)
        webhook_delivery.deliver_due(tenant)
    assert charlie_receiver.requests == [], "acme's run sent charlie's deliveries"
    assert [t.id for t in webhook_delivery.tenants_with_due_deliveries()] == [other_tenant.id]
    with tenant_scope(other_tenant):
        webhook_delivery.deliver_due(other_tenant)

    [to_acme] = receiver.requests
    [to_charlie] = charlie_receiver.requests
    assert to_acme.json()["tenant"] == "acme" and to_charlie.json()["tenant"] == "charlie"
    assert to_acme.json()["data"]["engagement"]["id"] == str(acme_engagement.id)
    assert to_charlie.json()["data"]["engagement"]["id"] == str(charlie_engagement.id)
    assert b"Charlie Secret Co" not in to_acme.body
    assert verified(acme_secret, to_acme) and not verified(acme_secret, to_charlie)
    assert verified(charlie_secret, to_charlie)
    assert webhook_delivery.tenants_with_due_deliveries() == []


def test_the_beat_task_asks_for_a_run_of_each_tenant_with_due_deliveries(
    tenant, other_tenant, actor, receiver, monkeypatch
):
    asked = []
    monkeypatch.setattr(webhook_tasks, "enqueue", lambda task, **kwargs: asked.append((task.name, kwargs)))
    with tenant_scope(tenant):
        _endpoint(tenant, actor, receiver.url)
        _lose(tenant, _buy(tenant, actor), actor)
        outbox.drain(tenant)
    webhook_tasks.retry_webhooks()
    assert asked == [("notify.webhook_tasks.deliver_webhooks", {"tenant_id": str(tenant.id)})]


# End to end: a real worker ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_lost_customer_reaches_the_receiver_through_the_outbox_and_a_real_worker(tenant, actor, receiver):
    with tenant_scope(tenant):
        endpoint, secret = _endpoint(tenant, actor, receiver.url)
        engagement = _buy(tenant, actor, ref="p-e2e")
    worker = WorkerProcess().start({"SITE_URL": SITE})
    try:
        with tenant_scope(tenant):
            _lose(tenant, engagement, actor)  # committed: the drain, then the delivery, are enqueued on commit

        def received():
            return receiver.requests

        def recorded_as_delivered():
            with tenant_scope(tenant):
                return WebhookDelivery.objects.filter(endpoint=endpoint, delivered_at__isnull=False).first()

        [request] = wait_for(received, timeout=60)
        delivery = wait_for(recorded_as_delivered)
    finally:
        worker.stop()
    assert verified(secret, request)
    body = request.json()
    assert body["type"] == "engagement.lost" and body["data"]["engagement"]["id"] == str(engagement.id)
    assert body["data"]["engagement"]["url"].startswith(SITE)
    assert str(delivery.id) == body["id"] == request.headers["pov-event-id"]
    with tenant_scope(tenant):
        [attempt] = WebhookAttempt.objects.all()
        assert attempt.status == 200 and attempt.delivery_id == delivery.id
