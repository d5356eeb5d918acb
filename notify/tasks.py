"""Celery tasks of notify (Celery finds this module). Each feature keeps its thin tasks beside its
services; they are imported here so the worker registers them."""

from notify.confirmation_tasks import send_confirmations, send_confirmations_all  # noqa: F401
from notify.digest_tasks import send_digest, send_due_digests  # noqa: F401
from notify.webhook_tasks import deliver_webhooks, retry_webhooks  # noqa: F401
