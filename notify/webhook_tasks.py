"""Thin webhook tasks: the tenant base loads the tenant and enters its scope; each calls a service."""

from celery import shared_task

from notify.webhook_delivery import DEADLINE_SECONDS, RUN_SECONDS, deliver_due, tenants_with_due_deliveries
from pov.enqueue import enqueue
from tenants.tasks import TenantTask


# A run ends within RUN_SECONDS + DEADLINE_SECONDS (webhook_delivery.deliver_due): these limits only catch a bug.
@shared_task(
    base=TenantTask, bind=True, soft_time_limit=RUN_SECONDS + 3 * DEADLINE_SECONDS,
    time_limit=RUN_SECONDS + 6 * DEADLINE_SECONDS,
)  # fmt: skip
def deliver_webhooks(self, *, tenant):
    """Send the tenant's due deliveries; a full batch (or a receiver back from failing) asks for another run."""
    result = deliver_due(tenant)
    if result["more"]:
        enqueue(deliver_webhooks, tenant_id=str(tenant.pk))
    return result


@shared_task
def retry_webhooks():
    """Beat (every 60 s): a delivery run for each tenant with retries due or a lost on-commit enqueue."""
    for tenant in tenants_with_due_deliveries():
        enqueue(deliver_webhooks, tenant_id=str(tenant.pk))
