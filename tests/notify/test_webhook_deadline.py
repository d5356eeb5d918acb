"""A receiver cannot hold a worker: each attempt has a wall-clock deadline for the whole exchange, a run of
deliveries starts nothing new after its budget, and webhooks run on a queue of their own."""

import socket
import threading
import time

import pytest
from django.conf import settings
from django.utils import timezone

from engagement import outbox
from notify import webhook_delivery
from notify.models import WebhookAttempt, WebhookDelivery
from pov.celery import app
from tests.notify.webhook_helpers import _buy, _endpoint, _lose

pytestmark = pytest.mark.django_db


class Trickler:
    """Answers every connection one byte at a time, `pause` seconds apart: a valid, never-ending 200."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000

    def __init__(self, pause=0.2):
        self.pause, self.stopped = pause, threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hooks/pov"

    def _serve(self):
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by stop()
                return
            threading.Thread(target=self._trickle, args=(connection,), daemon=True).start()

    def _trickle(self, connection):
        with connection:
            for byte in self.ANSWER:
                if self.stopped.wait(self.pause):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    def stop(self):
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def trickler():
    server = Trickler()
    yield server
    server.stop()


@pytest.fixture
def short_deadline(monkeypatch):
    monkeypatch.setattr(webhook_delivery, "DEADLINE_SECONDS", 1)


@pytest.mark.parametrize("pause", [0.2, 0.02])  # in the status line, in the body
def test_a_trickling_receiver_fails_the_attempt_at_the_deadline(trickler, short_deadline, pause):
    trickler.pause = pause
    started = time.monotonic()
    outcome = webhook_delivery.post(trickler.url, b"{}", {"Content-Type": "application/json"})
    assert time.monotonic() - started < 3, "the deadline did not hold"
    assert (outcome.status, outcome.ok) == (None, False)
    assert outcome.error == "No complete answer within 1 s."


def test_the_failed_attempt_is_logged_and_retried(scoped, actor, trickler, short_deadline):
    _endpoint(scoped, actor, trickler.url)
    _lose(scoped, _buy(scoped, actor), actor)
    outbox.drain(scoped)
    assert webhook_delivery.deliver_due(scoped, now=timezone.now())["failed"] == 1
    [attempt] = WebhookAttempt.objects.all()
    assert (attempt.status, attempt.error) == (None, "No complete answer within 1 s.")
    assert WebhookDelivery.objects.get().next_attempt_at > timezone.now()


def test_a_run_starts_nothing_after_its_budget_and_asks_for_another(scoped, actor, receiver, monkeypatch):
    for ref in ("p-1", "p-2", "p-3"):
        _endpoint(scoped, actor, receiver.url + ref)
        _lose(scoped, _buy(scoped, actor, ref=ref), actor)
    outbox.drain(scoped)
    monkeypatch.setattr(webhook_delivery, "RUN_SECONDS", 0)
    receiver.delay = 0.05
    result = webhook_delivery.deliver_due(scoped)
    assert result["more"] is True
    assert result.get("delivered", 0) < WebhookDelivery.objects.count()


@pytest.fixture(scope="module")
def tasks():
    """Every task of the project, as a worker loads them (tasks modules register on import)."""
    app.loader.import_default_modules()
    return app.tasks


@pytest.mark.parametrize(
    ("task", "kind"),
    [
        ("engagement.tasks.drain_outbox", "record"),
        ("engagement.tasks.drain_outbox_all", "record"),
        ("metrics.tasks.scan_stalled", "record"),
        ("metrics.tasks.recompute_metrics", "metrics"),
        ("metrics.tasks.reconcile_metrics", "metrics"),
        ("notify.digest_tasks.send_due_digests", "mail"),
        ("notify.confirmation_tasks.send_confirmations_all", "mail"),
        ("notify.webhook_tasks.deliver_webhooks", "http"),
        ("notify.webhook_tasks.retry_webhooks", "http"),
        ("engagement.tasks.run_import", "import"),
        ("engagement.tasks.resume_imports_all", "record"),
    ],
)
def test_each_kind_of_task_goes_to_its_own_queue(tasks, task, kind):
    assert task in tasks, f"{task} is not a task"
    assert app.amqp.router.route({}, task)["queue"].name == settings.CELERY_QUEUES[kind]


def test_every_task_of_the_project_goes_to_one_of_the_queues_a_worker_consumes(tasks):
    consumed = {queue.name for queue in app.conf.task_queues}
    ours = [name for name in tasks if name.split(".")[0] in ("engagement", "metrics", "notify", "tenants")]
    assert len(ours) >= 15
    for name in ours:
        assert app.amqp.router.route({}, name)["queue"].name in consumed, name
    assert len(consumed) == 5
