"""Chat channels: a Slack-compatible incoming webhook (a real local HTTP receiver) hears about a stall, at
risk, PoV, a loss and an assigned alert, as Block Kit messages; retried like webhooks, on their log."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from engagement import outbox
from metrics.alerts import alert_assign, stalled_scan
from metrics.models import Alert
from notify import webhook_delivery, webhooks
from notify.models import EndpointFormat, WebhookAttempt, WebhookDelivery
from tenants.scoping import tenant_scope
from tests.conftest import WorkerProcess, wait_for
from tests.factories import MemberFactory
from tests.notify.webhook_helpers import SITE, _buy, _lose, _reach_pov

pytestmark = pytest.mark.usefixtures("webhook_site")


def _channel(tenant, actor, url, events=("engagement.stalled",), name="#onboarding"):
    return webhooks.endpoint_create(tenant=tenant, url=url, events=list(events), actor=actor,
                                    format=EndpointFormat.CHAT, name=name)[0]  # fmt: skip


def _sent(tenant, receiver):
    outbox.drain(tenant)
    webhook_delivery.deliver_due(tenant)
    return [request.json() for request in receiver.requests]


def _texts(message):
    """Every text of a Block Kit message, in order."""
    found = []
    for block in message["blocks"]:
        found += [block["text"]["text"]] if "text" in block else []
        found += [e["text"] if isinstance(e["text"], str) else e["text"]["text"] for e in block.get("elements", [])]
    return found


def test_a_stalled_customer_reaches_the_channel_as_a_message(scoped, actor, receiver):
    owner = MemberFactory(tenant=scoped, user__email="owner@acme.test", role="owner")
    engagement = _buy(scoped, actor, days_ago=20, ref="p-7", name="Initech <Labs> & Co")
    engagement.owner = owner
    engagement.save(update_fields=["owner"])
    _channel(scoped, actor, receiver.url)
    stalled_scan(scoped)

    [message] = _sent(scoped, receiver)

    url = f"{SITE}/t/acme/engagements/{engagement.id}/"
    assert message["text"] == "Initech &lt;Labs&gt; &amp; Co is stalled"  # escaped: a name cannot ping @channel
    headline, context, button = _texts(message)
    assert headline.startswith(f"*<{url}|Initech &lt;Labs&gt; &amp; Co is stalled>*\nNext: m1, due ")
    assert context == "Owner: owner@acme.test · Day 20 of the value clock · software-p-7"
    assert button == "Open in PoV"
    assert message["blocks"][-1]["elements"][0]["url"] == url
    [request] = receiver.requests
    assert "pov-signature" not in request.headers  # a chat tool checks nothing; the URL is the key


def test_each_event_it_hears_has_its_own_words(scoped, actor, receiver):
    _channel(scoped, actor, receiver.url, events=["engagement.reached_pov", "engagement.lost", "alert.assigned"])
    reached, lost = _buy(scoped, actor, ref="p-1", name="Reacher"), _buy(scoped, actor, ref="p-2", name="Loser")
    _reach_pov(scoped, reached, actor)
    _lose(scoped, lost, actor, reason="Budget cut")
    stalled = _buy(scoped, actor, days_ago=20, ref="p-3", name="Staller")
    stalled_scan(scoped)  # stalled is not heard: only its alert's assignment
    assignee = MemberFactory(tenant=scoped, user__email="service@acme.test", role="service")
    alert_assign(tenant=scoped, alert=Alert.objects.get(engagement=stalled), actor=actor, assignee=assignee)

    texts = sorted(m["text"] for m in _sent(scoped, receiver))

    assert texts == ["Loser was lost", "Reacher reached the point of value",
                     "The alert on Staller is now service@acme.test's"]  # fmt: skip


def test_assigning_to_the_same_person_again_says_nothing_new(scoped, actor, receiver):
    _channel(scoped, actor, receiver.url, events=["alert.assigned"])
    stalled = _buy(scoped, actor, days_ago=20, ref="p-3", name="Staller")
    stalled_scan(scoped)
    alert = Alert.objects.get(engagement=stalled)
    assignee = MemberFactory(tenant=scoped, user__email="service@acme.test", role="service")
    for _ in range(2):
        alert_assign(tenant=scoped, alert=alert, actor=actor, assignee=assignee)

    assert len(_sent(scoped, receiver)) == 1


def test_a_failed_message_is_retried_on_the_delivery_log(scoped, actor, receiver):
    channel = _channel(scoped, actor, receiver.url)
    _buy(scoped, actor, days_ago=20, ref="p-9")
    stalled_scan(scoped)
    receiver.answers = [500]

    assert _sent(scoped, receiver) and len(receiver.requests) == 1
    [delivery] = WebhookDelivery.objects.filter(endpoint=channel)
    assert delivery.delivered_at is None and delivery.next_attempt_at > timezone.now()
    assert webhook_delivery.deliver_due(scoped, now=delivery.next_attempt_at)["delivered"] == 1
    assert [a.status for a in WebhookAttempt.objects.order_by("at")] == [500, 200]


def test_a_chat_channel_hears_only_what_a_team_acts_on(scoped, actor, receiver):
    with pytest.raises(ValidationError) as refused:
        _channel(scoped, actor, receiver.url, events=["alert.resolved"])

    assert "Unknown events: alert.resolved" in str(refused.value)


def test_send_a_test_reaches_the_channel(scoped, actor, receiver):
    channel = _channel(scoped, actor, receiver.url)

    webhooks.endpoint_send_test(tenant=scoped, endpoint=channel, actor=actor)

    assert _sent(scoped, receiver)[0]["text"] == "A test message from PoV: this channel is connected."


def test_the_channels_address_is_shown_only_by_its_host(scoped, actor):
    channel = _channel(scoped, actor, "https://hooks.slack.com/services/T000/B000/XXXXSECRET")

    assert webhooks.shown_url(channel) == "https://hooks.slack.com/…"


@pytest.mark.django_db(transaction=True)
def test_a_stall_reaches_the_channel_through_a_real_worker(tenant, actor, receiver):
    with tenant_scope(tenant):
        _channel(tenant, actor, receiver.url)
        _buy(tenant, actor, days_ago=20, ref="p-e2e", name="Globex")
    worker = WorkerProcess().start({"SITE_URL": SITE})
    try:
        with tenant_scope(tenant):
            stalled_scan(tenant)  # committed: the drain, then the delivery, are enqueued on commit

        def received():
            return receiver.requests

        [request] = wait_for(received, timeout=60)
    finally:
        worker.stop()
    assert request.json()["text"] == "Globex is stalled"


def test_the_email_saying_a_channel_was_switched_off_keeps_its_key_out(scoped, actor, receiver, smtp):
    MemberFactory(tenant=scoped, user__email="admin@acme.test", role="admin")
    channel = _channel(scoped, actor, receiver.url.replace("/hooks/pov", "/services/T1/B2/CHATKEY"))
    channel.failing_since = timezone.now() - timedelta(hours=25)
    channel.save(update_fields=["failing_since"])

    assert webhook_delivery._disable_if_failing_too_long(scoped, channel, timezone.now())

    [mail] = smtp.to("admin@acme.test")
    text, html = mail.get_body(("plain",)).get_content(), mail.get_body(("html",)).get_content()
    assert "CHATKEY" not in text + html
    assert webhooks.shown_url(channel) in text
