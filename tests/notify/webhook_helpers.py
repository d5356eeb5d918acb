"""The webhook tests' receiver and record.

The receiver is a REAL HTTP server (http.server in a thread of the test process, on a free port) that
records each request and answers a programmable sequence of statuses; the `receiver` and
`charlie_receiver` fixtures (tests/notify/conftest.py) start one each. `verified` checks a signature the
way an integrator would, from the secret the settings page showed once, the `t` and the raw body it
received; it never calls our signing code. The record helpers buy, lose and reach PoV through the
services, and create endpoints.
"""

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.utils import timezone

from engagement.models import EventType
from engagement.services import event_record, purchase_record
from notify import webhooks
from notify.models import WebhookDelivery
from tests.factories import CustomerFactory, make_offering

SITE = "https://pov.example.com"
ALL_EVENTS = ["engagement.reached_pov", "engagement.stalled", "engagement.lost", "alert.opened", "alert.resolved"]


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
