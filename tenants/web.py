"""The web side of tenancy: role checks for views, and the actor of a web request.

The middleware has already resolved /t/<slug>/ to a membership (or answered 404); a view names
the roles that may use it, so a member without one gets 403, never the page.
"""

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


def error_messages(exc):
    """Readable lines from a ValidationError ("field: message", or the message alone when it concerns the
    whole form), or from any error with a `message`, for pages that show them."""
    if hasattr(exc, "error_dict"):
        whole = ("__all__", "non_field_errors")
        return [
            msg if field in whole else f"{field}: {msg}" for field, msgs in exc.message_dict.items() for msg in msgs
        ]
    if hasattr(exc, "messages"):
        return list(exc.messages)
    return [getattr(exc, "message", str(exc))]


def can_act(member):
    return member is not None and member.role in ACTING_ROLES


def web_actor(request):
    return Actor.for_member(request.member)
