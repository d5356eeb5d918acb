"""Reads of the record, for views and the API. Every function runs inside a tenant scope."""

from django.db.models import Count

from engagement.models import Engagement, Status


def status_counts():
    counts = dict(Engagement.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in Status.values}


def unowned_count():
    return Engagement.objects.filter(owner__isnull=True).count()
