"""Failed webhook deliveries: each attempt logged, the same event retried with backoff, a claimed delivery
never sent by a second worker, one probe for a failing receiver, refused destinations; nothing sent to a
disabled endpoint, and an endpoint failing for 24 hours disabled with its admins told by email.

Time is driven with the services' explicit `now`, never by sleeping.
"""

import itertools
import logging
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from engagement import outbox
from notify import webhook_delivery, webhooks
from notify.models import WebhookAttempt, WebhookDelivery
from tenants.models import AuditEntry
from tests.factories import MemberFactory
from tests.notify.webhook_helpers import SITE, _buy, _deliveries, _endpoint, _lose, verified

pytestmark = pytest.mark.usefixtures("webhook_site")


# Retries, backoff, claims -----------------------------------------------------------------------------


def test_a_500_is_logged_and_retried_later_with_the_same_event(scoped, actor, receiver):
    endpoint, secret = _endpoint(scoped, actor, receiver.url)
    _lose(scoped, _buy(scoped, actor), actor)
    outbox.drain(scoped)
    receiver.answers = [(500, b"boom: database on fire", {})]
    receiver.delay = 0.05
    t0 = timezone.now()

    assert webhook_delivery.deliver_due(scoped, now=t0)["failed"] == 1
    [delivery] = _deliveries()
    assert delivery.delivered_at is None and delivery.attempts == 1
    assert t0 + timedelta(seconds=24) <= delivery.next_attempt_at <= t0 + timedelta(seconds=30)
    [attempt] = WebhookAttempt.objects.all()
    assert (attempt.status, attempt.at, attempt.response_excerpt) == (500, t0, "boom: database on fire")
    assert attempt.latency_ms >= 50
    endpoint.refresh_from_db()
    assert endpoint.failing_since == t0 and endpoint.is_active

    assert webhook_delivery.deliver_due(scoped, now=t0 + timedelta(seconds=5)) == {"more": False}
    assert len(receiver.requests) == 1, "nothing is sent before the retry is due"

    later = t0 + timedelta(seconds=31)
    assert webhook_delivery.deliver_due(scoped, now=later)["delivered"] == 1
    first, second = receiver.requests
    assert first.body == second.body and first.headers["pov-event-id"] == second.headers["pov-event-id"]
    assert verified(secret, second)
    delivery.refresh_from_db()
    assert delivery.delivered_at == later and delivery.attempts == 2
    assert [(a.status, a.at) for a in WebhookAttempt.objects.order_by("at")] == [(500, t0), (200, later)]
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None, "a success clears the failure streak"


def test_private_addresses_are_refused_unless_allowed(scoped, actor, receiver, settings, caplog):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    _endpoint(scoped, actor, receiver.url)  # http://127.0.0.1:<port>/...
    _lose(scoped, _buy(scoped, actor), actor)
    outbox.drain(scoped)
    with caplog.at_level(logging.WARNING, logger="notify.webhook_delivery"):
        assert webhook_delivery.deliver_due(scoped, now=timezone.now())["failed"] == 1
    assert receiver.requests == []
    [attempt] = WebhookAttempt.objects.all()
    assert attempt.status is None and attempt.error == webhook_delivery.NOT_PUBLIC
    assert "127.0.0.1" in caplog.text, "the server's log keeps the detail"
    assert webhook_delivery.refused_destination("http://169.254.169.254/latest/meta-data/")
    assert webhook_delivery.refused_destination("file:///etc/passwd").startswith("Refused to send to 'file'")


def test_the_tenant_cannot_tell_an_internal_name_from_one_that_does_not_resolve(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    reasons = {
        url: webhook_delivery.refused_destination(url)
        for url in ("http://localhost:8000/", "http://no-such-host.invalid/", "http://10.0.0.5/", "http://[::1]/")
    }
    assert set(reasons.values()) == {webhook_delivery.NOT_PUBLIC}, reasons
    assert not any(word in reason for reason in reasons.values() for word in ("localhost", "127.", "10.0", "::1"))


def test_no_answer_and_redirects_are_failures_with_the_error_logged(scoped, actor, receiver):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    _endpoint(scoped, actor, f"http://127.0.0.1:{closed_port}/nobody")
    _endpoint(scoped, actor, receiver.url)
    receiver.answers = [(307, b"", {"Location": "file:///etc/passwd"})]
    _lose(scoped, _buy(scoped, actor), actor)
    outbox.drain(scoped)

    assert webhook_delivery.deliver_due(scoped)["failed"] == 2
    assert len(receiver.requests) == 1, "the redirect was followed"
    refused = WebhookAttempt.objects.get(status=None)
    assert "ConnectionRefusedError" in refused.error
    redirected = WebhookAttempt.objects.get(status=307)
    assert "file:///etc/passwd not followed" in redirected.error


def test_a_claimed_delivery_is_not_claimed_again(scoped, actor, receiver):
    _endpoint(scoped, actor, receiver.url)
    _lose(scoped, _buy(scoped, actor), actor)
    outbox.drain(scoped)
    [first_read] = _deliveries()
    [second_read] = _deliveries()  # another worker read the same row
    now = timezone.now()
    assert webhook_delivery.claim(first_read, now)
    assert not webhook_delivery.claim(second_read, now)
    assert webhook_delivery.deliver_one(scoped, second_read, now=now) == "skipped"
    assert receiver.requests == []
    # A worker that died mid-POST: the delivery is due again once the claim expires.
    assert webhook_delivery.deliver_due(scoped, now=now + webhooks.CLAIM_TIMEOUT)["delivered"] == 1


def test_a_failing_receiver_gets_one_probe_and_its_queue_waits(scoped, actor, receiver):
    _endpoint(scoped, actor, receiver.url)
    for n in range(3):
        _lose(scoped, _buy(scoped, actor, ref=f"p-{n}"), actor)
    outbox.drain(scoped)
    receiver.answers = [503]
    t0 = timezone.now()
    result = webhook_delivery.deliver_due(scoped, now=t0)
    assert (result["failed"], result["deferred"], len(receiver.requests)) == (1, 2, 1)
    retry_times = {d.next_attempt_at for d in _deliveries()}
    assert len(retry_times) == 1 and min(retry_times) > t0, "the others wait for the probe's retry"
    # The probe succeeds: the receiver is back, and the run asks for another to send its whole queue.
    assert webhook_delivery.deliver_due(scoped, now=t0 + timedelta(minutes=1)) == {"delivered": 3, "more": True}
    assert all(d.delivered_at for d in _deliveries())
    assert len(receiver.requests) == 4


def test_backoff_doubles_from_30_seconds_up_to_an_hour_with_jitter():
    for attempts, base in ((1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600), (20, 3600)):
        delays = {webhook_delivery.backoff(attempts).total_seconds() for _ in range(20)}
        assert all(0.8 * base <= d <= base for d in delays), (attempts, delays)
        assert len(delays) > 1, "no jitter"


# Disabled endpoints and the 24 h limit ------------------------------------------------------------------


def test_nothing_is_sent_to_a_disabled_endpoint_and_enabling_resumes_recent_events(scoped, actor, receiver):
    endpoint, _ = _endpoint(scoped, actor, receiver.url)
    _lose(scoped, _buy(scoped, actor, ref="p-1"), actor)
    outbox.drain(scoped)  # one delivery pending
    assert webhooks.endpoint_disable(tenant=scoped, endpoint=endpoint, actor=actor)
    _lose(scoped, _buy(scoped, actor, ref="p-2"), actor)
    outbox.drain(scoped)
    assert len(_deliveries()) == 1, "no new delivery for a disabled endpoint"
    assert webhook_delivery.deliver_due(scoped, now=timezone.now() + timedelta(hours=1)) == {"more": False}
    assert receiver.requests == []
    assert webhook_delivery.tenants_with_due_deliveries() == []
    [paused] = _deliveries()
    assert paused.given_up_at is None, "paused, not given up"

    assert webhooks.endpoint_enable(tenant=scoped, endpoint=endpoint, actor=actor)
    assert webhook_delivery.deliver_due(scoped)["delivered"] == 1
    assert len(receiver.requests) == 1
    actions = list(AuditEntry.objects.filter(action__startswith="webhook.").values_list("action", flat=True))
    assert {"webhook.disabled", "webhook.enabled"} <= set(actions)


def test_enabling_after_24_hours_gives_up_the_old_events(scoped, actor, receiver):
    endpoint, _ = _endpoint(scoped, actor, receiver.url)
    _lose(scoped, _buy(scoped, actor), actor)
    outbox.drain(scoped)
    webhooks.endpoint_disable(tenant=scoped, endpoint=endpoint, actor=actor)
    later = timezone.now() + timedelta(hours=25)
    webhooks.endpoint_enable(tenant=scoped, endpoint=endpoint, actor=actor, now=later)
    [delivery] = _deliveries()
    assert delivery.given_up_at == later
    assert webhook_delivery.deliver_due(scoped, now=later) == {"more": False}
    assert receiver.requests == []


def test_an_endpoint_failing_for_24_hours_is_disabled_and_its_admins_are_emailed(
    scoped, other_tenant, actor, receiver, smtp
):
    admins = [MemberFactory(tenant=scoped, user__email=f"admin{n}@acme.test", role="admin") for n in (1, 2)]
    MemberFactory(tenant=scoped, user__email="owner@acme.test", role="owner")
    MemberFactory(tenant=other_tenant, user__email="admin@charlie.test", role="admin")
    endpoint, _ = _endpoint(scoped, actor, receiver.url)
    _lose(scoped, _buy(scoped, actor), actor)
    outbox.drain(scoped)
    [delivery] = _deliveries()
    receiver.answers = [500] * 100

    now, results = delivery.created_at, []
    while len(results) < 60:
        results.append(webhook_delivery.deliver_one(scoped, delivery, now=now))
        delivery.refresh_from_db()
        if delivery.given_up_at:
            break
        now = delivery.next_attempt_at
    assert results[-1] == "given_up" and set(results[:-1]) == {"failed"}
    times = list(WebhookAttempt.objects.order_by("at").values_list("at", flat=True))
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert 24 <= gaps[0] <= 30 and max(gaps) <= 3600 and gaps[:6] == sorted(gaps[:6]), gaps
    assert times[-1] == delivery.created_at + timedelta(hours=24), "retried to the end of the 24 h window"
    assert len(receiver.requests) == len(times) == delivery.attempts

    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.disabled_at == times[-1] and "24 hours" in endpoint.disabled_reason
    assert sorted(a for m in smtp.messages for a in m.envelope_recipients) == ["admin1@acme.test", "admin2@acme.test"]
    for admin in admins:
        [mail] = smtp.to(admin.user.email)
        assert "127.0.0.1" in mail["Subject"] and "Acme" in mail["Subject"]
        link = f"{SITE}/t/acme/settings/webhooks/{endpoint.id}/"
        assert endpoint.url in mail.get_body(("plain",)).get_content()
        assert link in mail.get_body(("plain",)).get_content()
        assert f'href="{link}"' in mail.get_body(("html",)).get_content()
    audit = AuditEntry.objects.get(action="webhook.disabled")
    assert audit.actor_label == "webhook health check"

    # Told once; and nothing more is sent, nor queued, for new events.
    assert not webhook_delivery._disable_if_failing_too_long(scoped, endpoint, now + timedelta(hours=1))
    _lose(scoped, _buy(scoped, actor, ref="p-2"), actor)
    outbox.drain(scoped)
    assert webhook_delivery.deliver_due(scoped, now=now + timedelta(hours=2)) == {"more": False}
    assert len(smtp.messages) == 2 and len(receiver.requests) == len(times)


def test_a_failure_after_a_success_starts_a_new_24_hours(scoped, actor, receiver, smtp):
    MemberFactory(tenant=scoped, user__email="admin@acme.test", role="admin")
    endpoint, _ = _endpoint(scoped, actor, receiver.url)
    _lose(scoped, _buy(scoped, actor, ref="p-1"), actor)
    outbox.drain(scoped)
    [first] = _deliveries()
    receiver.answers = [500, 200, 500]
    t0 = first.created_at
    assert webhook_delivery.deliver_one(scoped, first, now=t0) == "failed"
    first.refresh_from_db()
    assert webhook_delivery.deliver_one(scoped, first, now=t0 + timedelta(hours=20)) == "recovered"
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None

    _lose(scoped, _buy(scoped, actor, ref="p-2"), actor)
    outbox.drain(scoped)
    second = WebhookDelivery.objects.get(delivered_at=None)
    thirty_hours = t0 + timedelta(hours=30)  # past this delivery's own window: given up at once
    assert webhook_delivery.deliver_one(scoped, second, now=thirty_hours) == "given_up"
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.failing_since == thirty_hours, "failing since t0 had it not worked at 20 h"
    assert smtp.messages == []
