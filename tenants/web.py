"""The web side of tenancy: role checks for views, and the actor of a web request.

The middleware has already resolved /t/<slug>/ to a membership (or answered 404); a view names
the roles that may use it, so a member without one gets 403, never the page.
"""

import re
from functools import wraps

from django.core.exceptions import PermissionDenied

from tenants.actors import Actor
from tenants.models import ACTING_ROLES, ADMIN_ONLY, Role

EVERY_ROLE = frozenset(Role.values)
__all__ = ["ACTING_ROLES", "ADMIN_ONLY", "EVERY_ROLE", "can_act", "error_messages", "roles", "web_actor"]


def roles(allowed, *, read=EVERY_ROLE):
    """GET/HEAD need a role in `read`; any other method needs one in `allowed`."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            member = getattr(request, "member", None)
            if member is None:  # only reachable if the URL lies outside /t/<slug>/
                raise PermissionDenied
            needed = read if request.method in ("GET", "HEAD") else allowed
            if member.role not in needed:
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


# How the forms label the fields the services name; a row of a list is "milestones.<index>.<field>".
FIELD_LABELS = {
    "occurred_at": "When", "score": "Score", "reason": "Reason", "body": "Note", "owner": "New owner",
    "milestone": "Milestone", "assignee": "Assign to", "key": "Key", "name": "Name", "due_day": "due day",
    "satisfaction_threshold": "Lowest satisfying score", "email": "Email", "role": "Role",
    "purchased_from": "Purchased from", "purchased_to": "Purchased to", "engagement": "Engagements",
    "at_risk": "Forecast", "status": "Status", "offering": "Offering", "segment": "Segment", "sales_rep": "Sales rep",
    "first_name": "First name", "last_name": "Last name", "external_id": "Purchase id",
    "customer.external_id": "Customer id", "customer.name": "Customer name", "customer.email": "Customer email",
    "customer.segment": "Segment", "purchased_at": "Purchased", "amount": "Amount", "currency": "Currency",
    "attributes": "Attributes", "milestones": "Milestones", "grace_days": "Grace days",
    "escalation_days": "Escalation days", "at_risk_threshold": "At risk under (%)",
    "at_risk_percent": "At risk under (%)", "time_zone": "Time zone", "success_criteria": "Success criteria",
}  # fmt: skip
ROW_FIELD = re.compile(r"^milestones\.(\d+)\.(\w+)$")
CRITERION_FIELD = re.compile(r"^success_criteria\.(\d+)$")


def field_label(field, labels=None):
    """The label a person sees for a field the services name: "milestones.2.due_day" -> "Milestone 3, due day";
    `labels` holds a form's own labels where they differ."""
    if row := ROW_FIELD.match(field):
        return f"Milestone {int(row[1]) + 1}, {FIELD_LABELS.get(row[2], row[2]).lower()}"
    if criterion := CRITERION_FIELD.match(field):
        return f"Criterion {int(criterion[1]) + 1}"
    return (labels or {}).get(field) or FIELD_LABELS.get(field, field)


def error_messages(exc, labels=None):
    """Readable lines from a ValidationError ("Label: message", or the message alone when it concerns the
    whole form), or from any error with a `message`, for pages that show them."""
    if hasattr(exc, "error_dict"):
        whole = ("__all__", "non_field_errors")
        return [
            msg if field in whole else f"{field_label(field, labels)}: {msg}"
            for field, msgs in exc.message_dict.items()
            for msg in msgs
        ]
    if hasattr(exc, "messages"):
        return list(exc.messages)
    return [getattr(exc, "message", str(exc))]


def can_act(member):
    return member is not None and member.role in ACTING_ROLES


def web_actor(request):
    return Actor.for_member(request.member)
