"""Enqueue Celery tasks after commit, without ever failing the write (DESIGN.md: tasks are hints)."""

import logging
import threading
from time import monotonic

from django.db import transaction

log = logging.getLogger(__name__)

# A run due this much later than a commit certainly starts after it (on-commit hooks run after COMMIT).
DEBOUNCE_MARGIN = 0.2
_debounce_lock = threading.Lock()
_due = {}  # debounce key -> monotonic() at which the latest run sent for it starts


def enqueue(task, *, countdown=None, **kwargs):
    """Send now (to run after `countdown` seconds); a broker that is down is logged, not raised: the
    periodic reconcile catches up."""
    try:
        task.apply_async(kwargs=kwargs, countdown=countdown)
        return True
    except Exception:
        log.warning("could not enqueue %s; the periodic reconcile will catch up", task.name, exc_info=True)
        return False


def enqueue_on_commit(task, *, countdown=None, **kwargs):
    transaction.on_commit(lambda: enqueue(task, countdown=countdown, **kwargs))


def enqueue_debounced_on_commit(task, *, key, window, **kwargs):
    """Like enqueue_on_commit, but this process sends about one run per `key` per `window` seconds
    however many commits ask for it, for tasks where one run does the work of many (an outbox drain).

    No commit is left behind: a commit is skipped only while a run already sent starts after it;
    otherwise a run is sent now (none in the last window) or for the end of the window.
    """
    transaction.on_commit(lambda: _send_debounced(task, key, window, kwargs))


def _send_debounced(task, key, window, kwargs):
    now = monotonic()
    with _debounce_lock:
        due = _due.get(key)
        if due is not None and due > now + DEBOUNCE_MARGIN:
            return
        countdown = None if due is None or now >= due + window else due + window - now
        starts = now + (countdown or 0)
        _forget_stale(now, window)
        _due[key] = starts
    if not enqueue(task, countdown=countdown, **kwargs):
        with _debounce_lock:
            if _due.get(key) == starts:
                del _due[key]  # nothing was sent: the next commit tries again


def _forget_stale(now, window, limit=10_000):
    """Keys idle for more than a window behave as if never seen; drop them before the map grows large."""
    if len(_due) >= limit:
        for stale in [k for k, starts in _due.items() if starts + window < now]:
            del _due[stale]
