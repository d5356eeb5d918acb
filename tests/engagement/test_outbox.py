"""The outbox: rows written with the change, handed to registered handlers by drain, exactly once."""

import logging
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_scopes import scopes_disabled

from engagement import outbox
from engagement.models import OutboxMessage, Purchase
from engagement.services import purchase_record
from engagement.tasks import drain_outbox_all
from pov.celery import app as celery_app
from pov.enqueue import enqueue
from tenants.scoping import tenant_scope
from tests.conftest import run_concurrently
from tests.factories import CustomerFactory, make_offering

PROBE = "tests.outbox.probe"
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


class Boom(Exception):
    pass


@pytest.fixture
def register(request):
    """register(kind[, fn]) -> the list of messages handed to it; unregistered after the test."""
    lock = threading.Lock()

    def _register(kind, fn=None):
        seen = []

        def handler(message):
            if fn is not None:
                fn(message)
            with lock:
                seen.append(message)

        outbox.register(kind, handler)
        request.addfinalizer(lambda: outbox.unregister(kind, handler))
        return seen

    return _register


def _reset_broker_pools():
    # The app caches its producer pool for the broker URL it first used; forget it so the next
    # publish connects to whatever broker_url says now.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def broker_unreachable():
    """Point the Celery app at a port nothing listens on, then restore it."""
    original = celery_app.conf.broker_url
    celery_app.conf.broker_url = UNREACHABLE_BROKER
    _reset_broker_pools()
    try:
        yield UNREACHABLE_BROKER
    finally:
        celery_app.conf.broker_url = original
        _reset_broker_pools()


@pytest.fixture
def unreachable_broker():
    with broker_unreachable() as url:
        yield url


# publish ----------------------------------------------------------------------------------------


def _published(tenant, payload):
    return OutboxMessage.objects.get(pk=outbox.publish(tenant, [(PROBE, payload)])[0])


def test_publish_in_a_committed_transaction_leaves_a_pending_row(scoped, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        message = _published(scoped, {"n": 1})
    row = OutboxMessage.objects.get(pk=message.pk)
    assert (row.tenant_id, row.kind, row.payload) == (scoped.id, PROBE, {"n": 1})
    assert row.handled_at is None and row.attempts == 0
    assert len(callbacks) == 1, "publish asks for a drain once the transaction commits"


def test_publish_in_a_rolled_back_transaction_leaves_nothing(scoped, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(Boom), transaction.atomic():
        _published(scoped, {"n": 1})
        raise Boom
    assert not OutboxMessage.objects.filter(kind=PROBE).exists()
    assert callbacks == [], "no drain is requested for a transaction that never committed"


def test_a_rolled_back_service_write_leaves_no_outbox_row(scoped, actor):
    customer = CustomerFactory(tenant=scoped)
    offering = make_offering(scoped)
    with pytest.raises(Boom), transaction.atomic():
        purchase_record(
            tenant=scoped, external_id="p-rollback", customer=customer, offering=offering,
            purchased_at=timezone.now() - timedelta(days=1), actor=actor,
        )  # fmt: skip
        assert OutboxMessage.objects.filter(kind=outbox.CHANGED).exists()
        raise Boom
    assert not Purchase.objects.exists()
    assert not OutboxMessage.objects.exists()


# drain ------------------------------------------------------------------------------------------


def test_drain_hands_each_pending_message_to_its_handlers_once(scoped, register):
    seen = register(PROBE)
    other_kind = register("tests.outbox.other")
    first = _published(scoped, {"n": 1})
    second = _published(scoped, {"n": 2})

    assert outbox.drain(scoped) == 2
    assert [m.id for m in seen] == [first.id, second.id]
    assert [m.payload for m in seen] == [{"n": 1}, {"n": 2}]
    assert other_kind == [], "a handler only gets messages of the kind it registered for"
    for row in OutboxMessage.objects.filter(pk__in=[first.pk, second.pk]):
        assert row.handled_at is not None
        assert row.attempts == 1
        assert row.last_error == ""

    assert outbox.drain(scoped) == 0
    assert len(seen) == 2, "a handled message is never handed again"


def test_unregistered_handler_is_not_called(scoped, register):
    calls = []
    outbox.register(PROBE, calls.append)
    outbox.unregister(PROBE, calls.append)
    _published(scoped, {})
    assert outbox.drain(scoped) == 1
    assert calls == []


def _fail_when_asked(message):
    if message.payload.get("fail"):
        raise RuntimeError("handler broke on purpose")


def test_failing_handler_leaves_its_message_pending_with_the_error_and_others_are_handled(scoped, register, caplog):
    seen = register(PROBE, _fail_when_asked)
    bad = _published(scoped, {"fail": True})
    good = _published(scoped, {"fail": False})

    with caplog.at_level(logging.ERROR, logger="engagement.outbox"):
        assert outbox.drain(scoped) == 1

    bad.refresh_from_db()
    good.refresh_from_db()
    assert bad.handled_at is None
    assert bad.attempts >= 1
    assert "handler broke on purpose" in bad.last_error
    assert bad.claim_token is None
    assert good.handled_at is not None and good.last_error == ""
    assert [m.id for m in seen] == [good.id]
    assert f"outbox message {bad.id}" in caplog.text


def test_one_drain_tries_a_failing_message_once_and_a_later_drain_retries_it(scoped, register, monkeypatch):
    tries = []
    broken = {"now": True}

    def fails_while_broken(message):
        tries.append(message.id)
        if broken["now"]:
            raise RuntimeError("still broken")

    seen = register(PROBE, fails_while_broken)
    bad = _published(scoped, {})
    assert outbox.drain(scoped) == 0
    bad.refresh_from_db()
    assert tries == [bad.id], "one drain tried the failing message more than once"
    assert bad.attempts == 1 and bad.handled_at is None

    broken["now"] = False
    later = timezone.now() + outbox.CLAIM_TIMEOUT + timedelta(minutes=1)
    monkeypatch.setattr(outbox.timezone, "now", lambda: later)
    assert outbox.drain(scoped) == 1
    bad.refresh_from_db()
    assert bad.handled_at == later and bad.attempts == 2
    assert [m.id for m in seen] == [bad.id]


def test_drain_of_one_tenant_never_hands_another_tenants_messages(tenant, other_tenant, register):
    seen = register(PROBE)
    with tenant_scope(other_tenant):
        theirs = _published(other_tenant, {"who": "other"})
    with tenant_scope(tenant):
        ours = _published(tenant, {"who": "us"})
        assert outbox.drain(tenant) == 1
    # Also when nothing narrows the query but drain's own filter (a beat task, a management command).
    with scopes_disabled():
        assert outbox.drain(tenant) == 0
    with tenant_scope(other_tenant):
        theirs.refresh_from_db()
    assert [(m.id, m.tenant_id) for m in seen] == [(ours.id, tenant.id)]
    assert theirs.handled_at is None

    with tenant_scope(other_tenant):
        assert outbox.drain(other_tenant) == 1
    assert [m.id for m in seen] == [ours.id, theirs.id]


# Concurrency (PostgreSQL: real row locks between two connections) ------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_drains_hand_every_message_exactly_once(tenant, register):
    seen = register(PROBE, lambda message: time.sleep(0.002))
    count = outbox.BATCH_SIZE + 50  # more than one batch, so the drains claim repeatedly
    with tenant_scope(tenant):
        outbox.publish(tenant, [(PROBE, {"n": n}) for n in range(count)])
        ids = set(OutboxMessage.objects.filter(kind=PROBE).values_list("id", flat=True))
        payloads = sorted(p["n"] for p in OutboxMessage.objects.filter(kind=PROBE).values_list("payload", flat=True))
    assert len(ids) == count
    assert payloads == list(range(count))

    def run_drain():
        with tenant_scope(tenant):
            return outbox.drain(tenant)

    results = run_concurrently(run_drain)
    handed = [m.id for m in seen]
    assert len(handed) == len(set(handed)), "a message was handed to the handler twice"
    assert set(handed) == ids
    assert sum(results) == count
    with tenant_scope(tenant):
        assert not OutboxMessage.objects.filter(kind=PROBE, handled_at__isnull=True).exists()


# The broker is down ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_write_commits_while_the_broker_is_unreachable_and_a_later_drain_catches_up(
    tenant, actor, register, unreachable_broker, caplog
):
    seen = register(outbox.CHANGED)
    # The override is in effect: publishing fails softly instead of reaching a broker.
    assert enqueue(drain_outbox_all) is False

    with tenant_scope(tenant):
        customer = CustomerFactory(tenant=tenant)
        offering = make_offering(tenant)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="pov.enqueue"):
            purchase, created = purchase_record(
                tenant=tenant, external_id="p-offline", customer=customer, offering=offering,
                purchased_at=timezone.now() - timedelta(days=1), actor=actor,
            )  # fmt: skip
    assert created
    assert "could not enqueue engagement.tasks.drain_outbox" in caplog.text

    # Durable: another connection sees the purchase and its pending outbox row.
    seen_elsewhere = {}

    def look_from_another_connection():
        try:
            with tenant_scope(tenant):
                seen_elsewhere["purchase"] = Purchase.objects.filter(pk=purchase.pk).exists()
                seen_elsewhere["pending"] = list(
                    OutboxMessage.objects.filter(handled_at__isnull=True).values_list("id", flat=True)
                )
        finally:
            connection.close()

    thread = threading.Thread(target=look_from_another_connection)
    thread.start()
    thread.join(timeout=30)
    assert seen_elsewhere["purchase"] is True
    pending = seen_elsewhere["pending"]
    assert pending, "the write left no pending outbox row"

    with tenant_scope(tenant):
        assert outbox.drain(tenant) == len(pending)
        assert not OutboxMessage.objects.filter(handled_at__isnull=True).exists()
    assert sorted(m.id for m in seen) == sorted(pending)


# Lists of subjects ---------------------------------------------------------------------------------


def test_listed_names_the_ids_list_size_a_message_with_what_they_share(monkeypatch):
    monkeypatch.setattr(outbox, "LIST_SIZE", 2)
    transition = {"from": "on_track", "to": "lost"}
    assert outbox.listed(outbox.LOST, "engagement", ["e1", "e2", "e3"], transition) == [
        (outbox.LOST, {"engagements": ["e1", "e2"], "from": "on_track", "to": "lost"}),
        (outbox.LOST, {"engagements": ["e3"], "from": "on_track", "to": "lost"}),
    ]
    assert outbox.listed("alert.opened", "alert", []) == [], "nothing to say, no message"


def test_subjects_reads_a_list_and_the_one_subject_payload_alike():
    listed = OutboxMessage(kind=outbox.STALLED, payload={"engagements": ["e1", "e2"], "from": "on_track"})
    assert outbox.subjects(listed) == [
        {"engagement": "e1", "from": "on_track"}, {"engagement": "e2", "from": "on_track"},
    ]  # fmt: skip
    alerts = OutboxMessage(kind="alert.opened", payload={"alerts": ["a1"]})
    assert outbox.subjects(alerts) == [{"alert": "a1"}]
    single = OutboxMessage(kind="alert.resolved", payload={"alert": "a9"})  # published before lists
    assert outbox.subjects(single) == [{"alert": "a9"}]


# purge ------------------------------------------------------------------------------------------


def _handled(tenant, days_ago, n=1):
    """n rows of `tenant` handled `days_ago` days ago; returns their ids."""
    ids = [_published(tenant, {"n": i}).id for i in range(n)]
    OutboxMessage.objects.filter(id__in=ids).update(handled_at=timezone.now() - timedelta(days=days_ago))
    return set(ids)


def test_purge_deletes_rows_handled_a_week_ago_in_batches_and_keeps_the_rest(scoped, monkeypatch):
    monkeypatch.setattr(outbox, "PURGE_BATCH", 2)
    old = _handled(scoped, days_ago=8, n=5)
    recent = _handled(scoped, days_ago=6)
    pending = {_published(scoped, {"pending": True}).id}
    given_up = _handled(scoped, days_ago=30)
    OutboxMessage.objects.filter(id__in=given_up).update(handled_at=None, attempts=outbox.MAX_ATTEMPTS)

    assert outbox.purge_handled(scoped) == 5
    assert set(OutboxMessage.objects.values_list("id", flat=True)) == recent | pending | given_up
    assert not OutboxMessage.objects.filter(id__in=old).exists()
    assert outbox.purge_handled(scoped) == 0


def test_purge_never_touches_another_tenants_rows(scoped, other_tenant):
    _handled(scoped, days_ago=8)
    with tenant_scope(other_tenant):
        theirs = _handled(other_tenant, days_ago=8)
    assert outbox.purge_handled(scoped) == 1
    with tenant_scope(other_tenant):
        assert set(OutboxMessage.objects.values_list("id", flat=True)) == theirs
