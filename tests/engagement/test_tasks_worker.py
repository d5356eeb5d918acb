"""The outbox drained by a real Celery worker process on the configured broker (Redis when REDIS_URL
is set, else the embedded filesystem broker), reading the test database."""

import logging
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from engagement.models import OutboxMessage
from engagement.services import purchase_record
from engagement.tasks import drain_outbox, drain_outbox_all, purge_outbox_all
from metrics.models import RollupState
from tenants.models import IdempotencyKey
from tenants.scoping import tenant_scope
from tenants.tasks import purge_idempotency_keys_all
from tests.conftest import WorkerProcess, wait_for
from tests.engagement.test_outbox import broker_unreachable
from tests.factories import CustomerFactory, make_offering

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def journey(tenant):
    with tenant_scope(tenant):
        return CustomerFactory(tenant=tenant), make_offering(tenant)


def _record_purchase(tenant, journey, actor, external_id):
    """Record a purchase (committed: the test runs in autocommit) and return its outbox row ids."""
    customer, offering = journey
    with tenant_scope(tenant):
        before = set(OutboxMessage.objects.values_list("id", flat=True))
        purchase_record(
            tenant=tenant, external_id=external_id, customer=customer, offering=offering,
            purchased_at=timezone.now() - timedelta(days=1), actor=actor,
        )  # fmt: skip
        ids = set(OutboxMessage.objects.values_list("id", flat=True)) - before
    assert ids, "the purchase published nothing"
    return ids


def _snapshot(tenant, ids):
    with tenant_scope(tenant):
        return {
            row.id: (row.handled_at, row.attempts, row.last_error) for row in OutboxMessage.objects.filter(id__in=ids)
        }


def _all_handled(tenant, ids):
    snapshot = _snapshot(tenant, ids)
    return len(snapshot) == len(ids) and all(handled_at for handled_at, _, _ in snapshot.values())


class WorkerLog:
    """What the worker logged since this object was made."""

    def __init__(self, worker):
        self.path = worker.log
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def text(self):
        with self.path.open("rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def result_of(self, task_id):
        """The logged return value of a task that succeeded, or None while it has not."""
        match = re.search(rf"\[{re.escape(task_id)}\] succeeded in [0-9.e-]+s: (.*)", self.text())
        return match.group(1).strip() if match else None


def _wait_until_handled(tenant, ids, log):
    def every_row_handled():
        return _all_handled(tenant, ids)

    try:
        wait_for(every_row_handled)
    except pytest.fail.Exception:
        pytest.fail(f"outbox rows {sorted(ids)} not handled; worker log:\n{log.text()[-3000:]}")


def _wait_until_quiet(tenant, log):
    """Wait for the metrics recompute the purchase asked for, and for every outbox row it published
    (a first forecast at risk is one), to be handled: only then has a drain nothing left to find."""

    def recomputed_and_drained():
        with tenant_scope(tenant):
            state = RollupState.objects.filter(tenant=tenant).first()
            recomputed = state is not None and state.computed_at is not None and state.scheduled_for is None
            return recomputed and not OutboxMessage.objects.filter(handled_at__isnull=True).exists()

    try:
        wait_for(recomputed_and_drained)
    except pytest.fail.Exception:
        pytest.fail(f"the worker did not settle; worker log:\n{log.text()[-3000:]}")


def _send_drain(tenant):
    return drain_outbox.delay(tenant_id=str(tenant.pk)).id


def test_worker_runs_a_drain_and_running_it_twice_more_changes_nothing(celery_worker, tenant, journey, actor):
    log = WorkerLog(celery_worker)
    ids = _record_purchase(tenant, journey, actor, "p-1")

    _send_drain(tenant)
    _wait_until_handled(tenant, ids, log)
    handled = _snapshot(tenant, ids)
    assert all(attempts == 1 and error == "" for _, attempts, error in handled.values())
    _wait_until_quiet(tenant, log)

    again = [_send_drain(tenant), _send_drain(tenant)]
    results = [wait_for(lambda task_id=task_id: log.result_of(task_id)) for task_id in again]
    assert results == ["0", "0"], "a repeated drain found work the first one had done"
    assert _snapshot(tenant, ids) == handled


def test_worker_handles_the_outbox_rows_of_a_committed_purchase(celery_worker, tenant, journey, actor, caplog):
    log = WorkerLog(celery_worker)
    with caplog.at_level(logging.WARNING, logger="pov.enqueue"):
        ids = _record_purchase(tenant, journey, actor, "p-1")
    assert "could not enqueue" not in caplog.text, caplog.text
    _wait_until_handled(tenant, ids, log)


def test_rows_written_while_no_worker_runs_are_drained_by_the_next_worker(
    celery_worker, tenant, other_tenant, journey, actor, caplog
):
    celery_worker.stop()
    with caplog.at_level(logging.WARNING, logger="pov.enqueue"):
        queued = _record_purchase(tenant, journey, actor, "p-while-stopped")
    assert "could not enqueue" not in caplog.text, caplog.text
    # Another tenant writes while the broker is down too: its on-commit drain request is lost.
    with tenant_scope(other_tenant):
        other_journey = CustomerFactory(tenant=other_tenant), make_offering(other_tenant)
    with broker_unreachable():
        lost = _record_purchase(other_tenant, other_journey, actor, "p-broker-down")
    assert not _all_handled(tenant, queued) and not _all_handled(other_tenant, lost)

    worker = WorkerProcess().start()
    try:
        log = WorkerLog(worker)
        # The drain requested on commit waited in the broker for a worker.
        _wait_until_handled(tenant, queued, log)
        assert all(h is None for h, _, _ in _snapshot(other_tenant, lost).values()), "nobody asked for that drain"
        # The beat task (a drain for every tenant) catches up with what no enqueue reached.
        drain_outbox_all.delay()
        _wait_until_handled(other_tenant, lost, log)
    finally:
        worker.stop()


def _aged(tenant, journey, actor, log):
    """The outbox rows of a purchase, handled (by the worker) and then dated 8 days back, and an
    idempotency key made 25 hours ago."""
    ids = _record_purchase(tenant, journey, actor, f"p-old-{tenant.slug}")
    _wait_until_handled(tenant, ids, log)
    with tenant_scope(tenant):
        OutboxMessage.objects.filter(id__in=ids).update(handled_at=timezone.now() - timedelta(days=8))
        key = IdempotencyKey.objects.create(tenant=tenant, key="k-old", request_hash="h")
        IdempotencyKey.objects.filter(pk=key.pk).update(created_at=timezone.now() - timedelta(hours=25))
    return ids


def _left(tenant, ids):
    with tenant_scope(tenant):
        return OutboxMessage.objects.filter(id__in=ids).count(), IdempotencyKey.objects.count()


def test_the_beat_purges_run_in_every_tenants_scope_on_a_worker(celery_worker, tenant, other_tenant, journey, actor):
    log = WorkerLog(celery_worker)
    with tenant_scope(other_tenant):
        other_journey = CustomerFactory(tenant=other_tenant), make_offering(other_tenant)
    aged = {tenant: _aged(tenant, journey, actor, log), other_tenant: _aged(other_tenant, other_journey, actor, log)}

    purge_outbox_all.delay()
    purge_idempotency_keys_all.delay()

    def all_purged():
        return all(_left(t, ids) == (0, 0) for t, ids in aged.items())

    try:
        wait_for(all_purged)
    except pytest.fail.Exception:
        pytest.fail(f"left: {[_left(t, ids) for t, ids in aged.items()]}; worker log:\n{log.text()[-3000:]}")
