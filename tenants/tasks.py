"""The Celery task base for tenant work, the beat helper that sends a task per tenant, and the
tenants app's own housekeeping task.

Task arguments carry the tenant as `tenant_id` (DESIGN.md rule 7); the base loads the tenant and
runs the task body inside its scope, so a task can never read another tenant's rows by accident.
"""

from celery import Task, shared_task
from django.db import DatabaseError

from pov.enqueue import enqueue
from tenants.idempotency import purge_expired
from tenants.models import Tenant
from tenants.scoping import tenant_scope


class TenantTask(Task):
    abstract = True
    # A database or broker hiccup is retried with exponential backoff (5 s, 10 s, ... capped at 5 min);
    # every tenant task is idempotent, so a retry after a partial run changes nothing more.
    autoretry_for = (DatabaseError, OSError)
    max_retries = 5
    retry_backoff = 5
    retry_backoff_max = 300
    retry_jitter = True
    # Callers send `tenant_id`; the body receives `tenant`. Celery's client-side signature check
    # would compare the call with the body's signature and refuse it.
    typing = False

    def __call__(self, *args, tenant_id, **kwargs):
        tenant = Tenant.objects.filter(id=tenant_id).first()
        if tenant is None:
            # The tenant was deleted after the task was queued: nothing left to do.
            return None
        with tenant_scope(tenant):
            return super().__call__(*args, tenant=tenant, **kwargs)


def enqueue_for_every_tenant(task):
    """Beat tasks: send `task` once per tenant, so each runs in its own tenant's scope."""
    for tenant_id in Tenant.objects.values_list("id", flat=True):
        enqueue(task, tenant_id=str(tenant_id))


@shared_task(base=TenantTask, bind=True)
def purge_idempotency_keys(self, *, tenant):
    return purge_expired()


@shared_task
def purge_idempotency_keys_all():
    """Beat: idempotency keys past their 24 h."""
    enqueue_for_every_tenant(purge_idempotency_keys)
