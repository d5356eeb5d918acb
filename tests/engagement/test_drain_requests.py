"""Outbox drains are requested debounced (pov.enqueue.enqueue_debounced_on_commit): a burst of writes
sends a few drains instead of one per write, yet every commit is followed by a drain that starts after
it, tenants never share a debounce, and a request the broker refused is retried by the next commit."""

import pytest

from engagement import outbox
from pov import enqueue as enqueue_module
from tests.factories import TenantFactory


class Sent(list):
    """Drains sent, as (tenant id, countdown), with the test's clock and a broker that works unless told."""

    def __init__(self):
        super().__init__()
        self.now = 1000.0
        self.broker_up = True

    def clock(self):
        return self.now

    def enqueue(self, task, *, countdown=None, **kwargs):
        if self.broker_up:
            self.append((kwargs["tenant_id"], countdown))
        return self.broker_up


@pytest.fixture
def sent(monkeypatch):
    calls = Sent()
    monkeypatch.setattr(enqueue_module, "enqueue", calls.enqueue)
    monkeypatch.setattr(enqueue_module, "monotonic", calls.clock)
    monkeypatch.setattr(enqueue_module, "_due", {})
    return calls


def _commit_at(sent, at, tenant, django_capture_on_commit_callbacks):
    sent.now = 1000.0 + at
    with django_capture_on_commit_callbacks(execute=True):
        outbox.request_drain(tenant)


def test_a_burst_sends_one_drain_now_and_one_at_the_end_of_the_window(db, sent, django_capture_on_commit_callbacks):
    tenant = TenantFactory()
    for at in (0.0, 0.1, 0.3, 0.5):
        _commit_at(sent, at, tenant, django_capture_on_commit_callbacks)
    tid = str(tenant.pk)
    # 0.0: nothing sent lately, so at once; 0.1: one for the window's end (1.0); 0.3 and 0.5: that one
    # starts after them, so nothing more.
    assert sent == [(tid, None), (tid, pytest.approx(0.9))]


def test_a_commit_just_before_a_sent_drain_starts_gets_a_later_one(db, sent, django_capture_on_commit_callbacks):
    tenant = TenantFactory()
    for at in (0.0, 0.1, 0.9, 3.0):
        _commit_at(sent, at, tenant, django_capture_on_commit_callbacks)
    tid = str(tenant.pk)
    # 0.9: the drain due at 1.0 may already be reading, so another for 2.0; 3.0: quiet again, at once.
    assert sent == [(tid, None), (tid, pytest.approx(0.9)), (tid, pytest.approx(1.1)), (tid, None)]


def test_tenants_are_debounced_apart(db, sent, django_capture_on_commit_callbacks):
    first, second = TenantFactory(), TenantFactory()
    _commit_at(sent, 0.0, first, django_capture_on_commit_callbacks)
    _commit_at(sent, 0.1, second, django_capture_on_commit_callbacks)
    assert sent == [(str(first.pk), None), (str(second.pk), None)]


def test_a_drain_the_broker_refused_is_asked_for_again_by_the_next_commit(db, sent, django_capture_on_commit_callbacks):
    tenant = TenantFactory()
    sent.broker_up = False
    _commit_at(sent, 0.0, tenant, django_capture_on_commit_callbacks)
    sent.broker_up = True
    _commit_at(sent, 0.1, tenant, django_capture_on_commit_callbacks)
    assert sent == [(str(tenant.pk), None)]


def test_nothing_is_sent_for_a_write_that_rolled_back(db, sent, django_capture_on_commit_callbacks):
    tenant = TenantFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outbox.request_drain(tenant)
    assert len(callbacks) == 1 and sent == []  # asked for on commit only
