"""Checks shared by the services and the batch path, each with a message naming what is wrong."""

from datetime import timedelta

from django.utils import timezone

from engagement.errors import Invalid

FUTURE_TOLERANCE = timedelta(minutes=5)


def aware(value, field):
    if value is None:
        raise Invalid({field: ["This field is required."]})
    if timezone.is_naive(value):
        raise Invalid({field: ["Give a time zone offset (e.g. 2026-05-01T09:00:00+02:00); naive times are ambiguous."]})
    return value


def not_in_future(value, field, now):
    if value > now + FUTURE_TOLERANCE:
        raise Invalid({field: [f"{value.isoformat()} is more than 5 minutes in the future."]})


def event_time(occurred_at, *, purchased_at, now):
    aware(occurred_at, "occurred_at")
    if occurred_at < purchased_at:
        raise Invalid(
            {"occurred_at": [f"{occurred_at.isoformat()} is before the purchase ({purchased_at.isoformat()})."]}
        )
    not_in_future(occurred_at, "occurred_at", now)


def score(value):
    if value is None or isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise Invalid({"score": [f"A satisfaction score is a whole number from 1 to 5, not {value!r}."]})
    return value
