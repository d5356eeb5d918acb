from celery import shared_task

from metrics.alerts import stalled_scan
from pov.enqueue import enqueue
from tenants.models import Tenant
from tenants.tasks import TenantTask


@shared_task(base=TenantTask, bind=True, max_retries=3, default_retry_delay=30)
def scan_stalled(self, *, tenant):
    return stalled_scan(tenant)


@shared_task
def scan_stalled_all():
    """Beat: one stalled scan per tenant."""
    for tenant_id in Tenant.objects.values_list("id", flat=True):
        enqueue(scan_stalled, tenant_id=str(tenant_id))
