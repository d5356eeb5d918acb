"""Thin tasks: load by id (the tenant base does that), call a service."""

from celery import shared_task

from engagement import outbox
from engagement.models import Engagement
from engagement.rebuild import rebuild_all
from engagement.services import publish_transitions
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


@shared_task(base=TenantTask, bind=True)
def rebuild_projections(self, *, tenant):
    """Re-derive every projection of the tenant (after its grace days changed). Idempotent."""
    rebuilt = rebuild_all(Engagement.objects.all(), grace_days=tenant.grace_days)
    publish_transitions(tenant, rebuilt)
    return rebuilt.changed


def on_tenant_settings_changed(tenant, changed):
    if "grace_days" in changed:
        enqueue(rebuild_projections, tenant_id=str(tenant.pk))
