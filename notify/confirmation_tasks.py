"""Thin tasks of the value confirmation: the tenant base loads the tenant and enters its scope."""

from celery import shared_task

from notify import confirmations
from tenants.tasks import TenantTask, enqueue_for_every_tenant


@shared_task(base=TenantTask, bind=True)
def send_confirmations(self, *, tenant):
    """Send the tenant's due confirmations; after an SMTP failure, run again when the first retry is
    due (each row keeps its own backoff, so an early run sends nothing twice and nothing too soon)."""
    outcome = confirmations.send_pending(tenant=tenant)
    if outcome.retry_in is not None and self.request.retries < self.max_retries:
        raise self.retry(countdown=outcome.retry_in.total_seconds())
    return outcome.sent


@shared_task
def send_confirmations_all():
    """Beat: catches up confirmations whose on-commit enqueue was lost or whose retries ran out."""
    enqueue_for_every_tenant(send_confirmations)
