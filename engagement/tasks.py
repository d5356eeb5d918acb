"""Thin tasks: load by id (the tenant base does that), call a service."""

from celery import shared_task

from engagement import outbox
from pov.enqueue import enqueue
from tenants.models import Tenant
from tenants.tasks import TenantTask


@shared_task(base=TenantTask, bind=True)
def drain_outbox(self, *, tenant):
    return outbox.drain(tenant)


@shared_task
def drain_outbox_all():
    """Beat: a drain for every tenant, catching up whatever an on-commit enqueue could not send."""
    for tenant_id in Tenant.objects.values_list("id", flat=True):
        enqueue(drain_outbox, tenant_id=str(tenant_id))
