"""Thin tasks: load by id (the tenant base does that), call a service."""

from celery import shared_task
from django.db import DatabaseError

from engagement import imports, outbox, projections
from engagement.models import Engagement
from pov.enqueue import enqueue
from tenants.tasks import TenantTask, enqueue_for_every_tenant


@shared_task(base=TenantTask, bind=True)
def drain_outbox(self, *, tenant):
    return outbox.drain(tenant)


@shared_task
def drain_outbox_all():
    """Beat: a drain for every tenant, catching up whatever an on-commit enqueue could not send."""
    enqueue_for_every_tenant(drain_outbox)


@shared_task(base=TenantTask, bind=True)
def purge_outbox(self, *, tenant):
    return outbox.purge_handled(tenant)


@shared_task
def purge_outbox_all():
    """Beat: the outbox rows handled more than a week ago."""
    enqueue_for_every_tenant(purge_outbox)


@shared_task(base=TenantTask, bind=True)
def rebuild_projections(self, *, tenant):
    """Re-derive every projection of the tenant (after its grace days changed). Idempotent."""
    return projections.rebuild_all(tenant, Engagement.objects.all()).changed


def on_tenant_settings_changed(tenant, changed):
    if "grace_days" in changed:
        enqueue(rebuild_projections, tenant_id=str(tenant.pk))


@shared_task(base=TenantTask, bind=True)
def run_import(self, *, tenant, import_id):
    """A CSV import, a part at a time: each run queues the next while rows are left."""
    try:
        left = imports.run_import(tenant, import_id)
    except (DatabaseError, OSError):
        raise  # retried with backoff (TenantTask); the import goes on where its last chunk ended
    except Exception as exc:
        imports.fail(import_id, f"Stopped by an unexpected error ({type(exc).__name__}); the rows done stay done.")
        raise
    if left:
        enqueue(run_import, tenant_id=str(tenant.pk), import_id=import_id)


@shared_task(base=TenantTask, bind=True)
def resume_imports(self, *, tenant):
    """The imports whose task was lost or whose worker died, queued again (a run takes up where it stopped)."""
    for import_id in imports.stalled():
        enqueue(run_import, tenant_id=str(tenant.pk), import_id=import_id)


@shared_task
def resume_imports_all():
    """Beat: every tenant's imports that stopped moving."""
    enqueue_for_every_tenant(resume_imports)
