"""Template helpers of the dashboards: query strings that keep the filters, sorting, overdue days."""

from datetime import timedelta

from django import template
from django.http import QueryDict
from django.utils import timezone
from django.utils.safestring import mark_safe

from engagement.models import Status
from tenants.web import field_label

register = template.Library()


@register.simple_tag
def query_with(query, **changes):
    """`query` (an urlencoded string) with some parameters replaced; page resets unless given."""
    params = QueryDict(query, mutable=True)
    if "page" not in changes:
        params.pop("page", None)
    for name, value in changes.items():
        params[name] = value
    return params.urlencode()


@register.simple_tag
def aria_sort(current, column):
    """` aria-sort="ascending"` (or descending) on the header of the column the list is sorted by."""
    if current not in (column, f"-{column}"):
        return ""
    return mark_safe(f' aria-sort="{"descending" if current.startswith("-") else "ascending"}"')  # noqa: S308 - fixed text


@register.filter
def toggle_sort(current, column):
    """Clicking the column sorted ascending sorts it descending, and back."""
    return f"-{column}" if current == column else column


@register.simple_tag
def days_overdue(engagement, now):
    """Whole days past the next due date for an engagement still under way (counted as the alert
    queue's `days_since` counts them), else None."""
    if engagement.status in (Status.REACHED, Status.LOST, Status.PAUSED) or engagement.next_due_at is None:
        return None
    late = (now - engagement.next_due_at) / timedelta(days=1)
    return int(late) if late > 0 else None


@register.filter
def days_since(moment):
    """Whole days from `moment` to now (0 when in the future)."""
    if moment is None:
        return None
    return max(0, int((timezone.now() - moment) / timedelta(days=1)))


@register.filter
def person(member):
    """A member as people call them: their name, or their email while they have none."""
    if member is None:
        return ""
    return member.name


@register.filter
def called(label, names):
    """Who recorded something, by the label stored with it (an email for members), as people call them."""
    return names.get(label, label) if label else ""


@register.filter
def day(moment):
    """A day as "7 Dec", with the year when it is not this year ("7 Dec 2025"), in the current time zone."""
    if moment is None:
        return ""
    local = timezone.localtime(moment) if hasattr(moment, "hour") else moment
    this_year = timezone.localtime(timezone.now()).year
    return f"{local.day} {local:%b}" + ("" if local.year == this_year else f" {local.year}")


@register.filter
def step(key, name=None):
    """A journey step as people read it: the milestone's name (queries.milestone_name), or the customer's
    satisfaction for the step after the last milestone of a journey that requires it."""
    if key == "satisfaction":
        return "Customer's satisfaction"
    return name or key or ""


@register.filter
def label(field):
    """A field the services name, as the form labels it (tenants.web.field_label)."""
    return field_label(field)


@register.filter
def answers_in_order(criteria_met, criteria):
    """A satisfaction event's answers (criterion, met) in the order of the purchase's criteria, then any
    others: stored JSON keeps its keys in an order of its own."""
    answers = dict(criteria_met or {})
    listed = [(criterion, answers.pop(criterion)) for criterion in criteria or [] if criterion in answers]
    return listed + list(answers.items())
