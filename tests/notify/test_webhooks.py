"""Outbound webhooks, sent to a REAL HTTP receiver (http.server in a thread of the test process, on a free
port) that records each request and answers a programmable sequence of statuses.

The receiver verifies signatures the way an integrator would, from the secret the settings page showed
once, the `t` and the raw body it received; it never calls our signing code. Time is driven with the
services' explicit `now`, never by sleeping. Charlie (another tenant) has endpoints and events of its own,
which must never cross over.
"""

import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from engagement import outbox
from engagement.models import EventType, OutboxMessage
from engagement.services import event_record, purchase_record
from metrics.alerts import stalled_scan
from notify import webhook_delivery, webhook_tasks, webhooks
from notify.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tenants.models import AuditEntry
from tenants.scoping import tenant_scope
from tests.conftest import WorkerProcess, wait_for
from tests.factories import CustomerFactory, MemberFactory, make_offering

SITE = "https://pov.example.com"
ALL_EVENTS = ["engagement.reached_pov", "engagement.stalled", "engagement.lost", "alert.opened", "alert.resolved"]


@pytest.fixture(autouse=True)
def site_url(settings):
    settings.SITE_URL = SITE


# The receiver ---------------------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict  # lower-case names
    body: bytes

    def json(self):
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    def _answer(self):
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        with receiver.lock:
            receiver.requests.append(Received(self.command, self.path, headers, body))
            status, reply, extra = receiver.next_answer()
        time.sleep(receiver.delay)
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_GET = _answer

    def log_message(self, *args):
        pass


class Receiver:
    """`answers` is a list of statuses or (status, body, headers); once used up every request gets 200."""

    def __init__(self):
        self.requests = []
        self.answers = []
        self.delay = 0.0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.receiver = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_port}/hooks/pov"

    def next_answer(self):
        if not self.answers:
            return 200, b'{"ok":true}', {}
        answer = self.answers.pop(0)
        status, body, headers = answer if isinstance(answer, tuple) else (answer, f"status {answer}".encode(), {})
        return status, body, headers

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def charlie_receiver():
    server = Receiver()
    yield server
    server.stop()


def verified(secret, request):
    """What an integrator does: recompute HMAC-SHA256(secret, "<t>.<raw body>") and compare."""
    parts = dict(part.split("=", 1) for part in request.headers["pov-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


# The record -----------------------------------------------------------------------------------------


def _buy(tenant, actor, *, days_ago=3, ref="p-1", name="Initech"):
    offering = make_offering(tenant, key=f"software-{ref}")
    customer = CustomerFactory(tenant=tenant, name=name, external_id=f"cus-{ref}")
    purchase, _ = purchase_record(
        tenant=tenant, external_id=ref, customer=customer, offering=offering,
        purchased_at=timezone.now() - timedelta(days=days_ago), actor=actor,
    )  # fmt: skip
    return purchase.engagement


def _lose(tenant, engagement, actor, reason="Chose a competitor"):
    event_record(tenant=tenant, engagement=engagement, type=EventType.LOST, reason=reason,
                 occurred_at=timezone.now() - timedelta(hours=1), actor=actor)  # fmt: skip


def _reach_pov(tenant, engagement, actor):
    pov = engagement.offering.milestones.get(is_pov=True)
    event_record(tenant=tenant, engagement=engagement, type=EventType.MILESTONE, milestone=pov,
                 occurred_at=timezone.now() - timedelta(hours=1), actor=actor)  # fmt: skip


def _endpoint(tenant, actor, url, events=("engagement.lost",)):
    return webhooks.endpoint_create(tenant=tenant, url=url, events=list(events), actor=actor)


def _deliveries(**filters):
    return list(WebhookDelivery.objects.filter(**filters).order_by("created_at"))


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


def test_private_addresses_are_refused_unless_allowed(scoped, actor, receiver, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    _endpoint(scoped, actor, receiver.url)  # http://127.0.0.1:<port>/...
    _lose(scoped, _buy(scoped, actor), actor)
    outbox.drain(scoped)
    assert webhook_delivery.deliver_due(scoped, now=timezone.now())["failed"] == 1
    assert receiver.requests == []
    [attempt] = WebhookAttempt.objects.all()
    assert attempt.status is None and "non-public address (127.0.0.1)" in attempt.error
    assert webhook_delivery.refused_destination("http://169.254.169.254/latest/meta-data/")
    assert webhook_delivery.refused_destination("file:///etc/passwd").startswith("Refused to send to 'file'")


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
