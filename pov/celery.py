"""The Celery app, set up for reliability (DESIGN.md: tasks are hints, not truth).

Late acks + prefetch 1: a task whose worker dies is redelivered, and one slow task does not hold
others back. Publishing never retries for long: a write must not wait on (or fail because of) a
broker that is down; the periodic reconcile tasks catch up instead.
"""

import os

from celery import Celery
from celery.signals import worker_init

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


@worker_init.connect(weak=False)
def _refuse_privileged_role(**signal_kwargs):
    """The worker refuses a database role that row-level security would not hold back (tenants.checks).
    SystemExit, because Celery logs and swallows an exception a signal handler raises."""
    import django

    django.setup()
    from tenants.checks import privileged_role_problem

    if problem := privileged_role_problem():
        raise SystemExit(f"Refusing to start: {problem}")
