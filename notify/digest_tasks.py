"""Thin digest tasks: the hourly beat finds whose digest is due; one task per member sends it."""

from celery import shared_task

from notify import digests
from pov.enqueue import enqueue
from tenants.models import Tenant
from tenants.tasks import TenantTask


# An SMTP failure is an OSError (smtplib.SMTPException is one): the claim is released and the task retried
# 30 s later, then twice as long each time up to an hour apart, for as long as the period lasts (a retry in
# the next period returns "no longer due"); a mail outage of minutes costs no digest. The DigestSend claim
# keeps a retry from sending twice.
@shared_task(base=TenantTask, bind=True, max_retries=None, retry_backoff=30, retry_backoff_max=3600)
def send_digest(self, *, tenant, member_id, period):
    return digests.send_member_digest(tenant=tenant, member_id=member_id, period=period)


@shared_task
def send_due_digests():
    """Beat, hourly: a send_digest per member whose digest is due, and per failed send to retry."""
    for job in digests.due_jobs(Tenant.objects.order_by("slug")):
        enqueue(send_digest, **job)
