"""Metric rollups kept fresh by a real Celery worker on the configured broker (Redis with PostgreSQL in
CI, the embedded filesystem broker with SQLite), reading the test database.

The worker runs with a one-second debounce so the tests wait seconds, not minutes; the debounce
itself is pinned in test_rollups.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from engagement.models import EventType
from engagement.services import event_record, purchase_record
from metrics import rollups
from metrics.models import MetricRollup
from metrics.tasks import recompute_metrics
from tenants.scoping import tenant_scope
from tests.conftest import wait_for
from tests.engagement.test_tasks_worker import WorkerLog
from tests.factories import CustomerFactory, make_offering

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def offering(tenant):
    with tenant_scope(tenant):
        return make_offering(tenant, due_days=(2, 7, 14))


def _purchase(tenant, offering, actor, external_id):
    """Committed at once (autocommit), so its outbox drain is enqueued for the worker."""
    with tenant_scope(tenant):
        purchase, _ = purchase_record(
            tenant=tenant, external_id=external_id, customer=CustomerFactory(tenant=tenant), offering=offering,
            purchased_at=timezone.now() - timedelta(days=3), actor=actor,
        )  # fmt: skip
        return purchase.engagement


def _stored(tenant, name="purchases"):
    with tenant_scope(tenant):
        row = rollups.current("all")
        return row.summary[name] if row else None


def _rows(tenant, *, with_time=True):
    with tenant_scope(tenant):
        rows = MetricRollup.objects.order_by("dimension", "key").values()
        return [{k: v for k, v in row.items() if with_time or k not in ("id", "computed_at")} for row in rows]


def test_a_write_shows_up_in_the_stored_metrics(fast_worker, tenant, offering, actor):
    engagement = _purchase(tenant, offering, actor, "p-1")
    wait_for(lambda: _stored(tenant) == 1, timeout=60)
    with tenant_scope(tenant):
        pov = offering.milestones.get(is_pov=True)
        event_record(
            tenant=tenant, engagement=engagement, type=EventType.MILESTONE, milestone=pov,
            occurred_at=timezone.now() - timedelta(days=1), actor=actor,
        )  # fmt: skip
    wait_for(lambda: _stored(tenant, "reached") == 1, timeout=60)
    assert _stored(tenant, "pov_rate") == 1.0


def test_metrics_catch_up_when_a_stopped_worker_starts_again(fast_worker, tenant, offering, actor):
    _purchase(tenant, offering, actor, "p-1")
    wait_for(lambda: _stored(tenant) == 1, timeout=60)
    fast_worker.stop()
    for n in range(2, 5):
        _purchase(tenant, offering, actor, f"p-{n}")  # accepted with no worker running
    assert _stored(tenant) == 1
    fast_worker.start({"METRICS_DEBOUNCE_SECONDS": "1"})
    wait_for(lambda: _stored(tenant) == 4, timeout=90)


def test_the_task_run_twice_gives_the_same_rows(fast_worker, tenant, offering, actor):
    _purchase(tenant, offering, actor, "p-1")
    wait_for(lambda: _stored(tenant) == 1, timeout=60)
    first = _rows(tenant, with_time=False)
    log = WorkerLog(fast_worker)
    runs = [recompute_metrics.delay(tenant_id=str(tenant.pk), force=True).id for _ in range(2)]
    results = wait_for(lambda: all(log.result_of(run) for run in runs) and [log.result_of(run) for run in runs])
    assert results == ["5", "5"]  # all, its offering, and no segment, owner or sales rep: each time
    assert _rows(tenant, with_time=False) == first
