"""Thin digest tasks: the hourly beat finds whose digest is due; one task per member sends it."""

from celery import shared_task

from notify import digests
from pov.enqueue import enqueue
from tenants.models import Tenant
from tenants.tasks import TenantTask


@shared_task(base=TenantTask, bind=True)
def send_digest(self, *, tenant, member_id, period):
    # An SMTP failure is an OSError (smtplib.SMTPException is one): the claim is released and
    # TenantTask retries with backoff; the DigestSend claim keeps the retry from sending twice.
    return digests.send_member_digest(tenant=tenant, member_id=member_id, period=period)


@shared_task
def send_due_digests():
    """Beat, hourly: a send_digest per member whose digest is due, and per failed send to retry."""
    for job in digests.due_jobs(Tenant.objects.order_by("slug")):
        enqueue(send_digest, **job)
