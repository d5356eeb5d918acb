"""Thin intake tasks: the tenant base loads the tenant and enters its scope; each calls a service."""

from celery import shared_task

from intake import services
from tenants.tasks import TenantTask, enqueue_for_every_tenant


@shared_task(base=TenantTask, bind=True)
def purge_arrivals(self, *, tenant):
    return services.arrivals_purge(tenant)


@shared_task
def purge_arrivals_all():
    """Beat: the connections' log lines older than 30 days."""
    enqueue_for_every_tenant(purge_arrivals)
