"""Enqueue Celery tasks after commit, without ever failing the write (DESIGN.md: tasks are hints)."""

import logging

from django.db import transaction

log = logging.getLogger(__name__)


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
