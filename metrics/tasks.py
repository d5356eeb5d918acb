"""Thin tasks: the tenant base loads the tenant and enters its scope; each calls a service."""

from celery import shared_task
from django.utils import timezone

from metrics.alerts import stalled_scan
from metrics.models import RollupState
from metrics.rollups import run_recompute, tenants_to_reconcile
from pov.enqueue import enqueue
from tenants.scoping import tenant_scope
from tenants.tasks import TenantTask, enqueue_for_every_tenant


@shared_task(base=TenantTask, bind=True)
def scan_stalled(self, *, tenant):
    return stalled_scan(tenant)


@shared_task
def scan_stalled_all():
    """Beat: one stalled scan per tenant."""
    enqueue_for_every_tenant(scan_stalled)


@shared_task(base=TenantTask, bind=True)
def recompute_metrics(self, *, tenant, force=False):
    return run_recompute(tenant, force=force)


@shared_task
def reconcile_metrics():
    """Beat: recompute what a lost task left stale, and each tenant's first snapshot of its day."""
    for tenant in tenants_to_reconcile():
        with tenant_scope(tenant):
            # Marked as scheduled so a write meanwhile does not queue a second run.
            RollupState.objects.filter(tenant=tenant).update(scheduled_for=timezone.now())
        enqueue(recompute_metrics, tenant_id=str(tenant.pk))
