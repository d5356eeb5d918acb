"""The Celery app, set up for reliability (DESIGN.md: tasks are hints, not truth).

Late acks + prefetch 1: a task whose worker dies is redelivered, and one slow task does not hold
others back. Publishing never retries for long: a write must not wait on (or fail because of) a
broker that is down; the periodic reconcile tasks catch up instead.
"""

import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from pov import gc_tuning

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pov.settings")

app = Celery("pov")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=600,
    task_time_limit=900,
    task_ignore_result=True,
    task_publish_retry=False,
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=2,
    worker_hijack_root_logger=False,
    task_serializer="json",
    accept_content=["json"],
    timezone="UTC",
)


app.autodiscover_tasks()


def _tune_gc(**signal_kwargs):
    gc_tuning.tune()


# In each pool process (prefork), and in the worker's own process (which runs the tasks with --pool=solo).
worker_process_init.connect(_tune_gc, weak=False)
worker_ready.connect(_tune_gc, weak=False)
