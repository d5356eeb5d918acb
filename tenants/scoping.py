"""Tenant scoping: the one way code enters and checks a tenant's scope.

django-scopes treats `scope(tenant=None)` as "no filter"; `tenant_scope` refuses None so a
missing tenant fails closed instead of opening every row.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from django.http import Http404
from django_scopes import get_scope, scope

from tenants.models import Member, Tenant
from tenants.rls import rls_context

M = TypeVar("M", bound=Model)


@contextmanager
def tenant_scope(tenant: Tenant) -> Iterator[Tenant]:
    if not isinstance(tenant, Tenant):
        raise TypeError(f"tenant_scope needs a Tenant, got {tenant!r}")
    # django-scopes filters the ORM's queries; the database's row-level security checks every query.
    with scope(tenant=tenant), rls_context(tenant_id=tenant.pk):
        yield tenant


def current_tenant() -> Tenant | None:
    """The tenant whose scope is active, or None."""
    value = get_scope().get("tenant")
    return value if isinstance(value, Tenant) else None


def membership_for(user: Any, tenant: Tenant) -> Member | None:
    """The active membership of `user` in `tenant`, or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    with rls_context(user_id=user.pk):
        return Member.unscoped.filter(user=user, tenant=tenant, is_active=True).select_related("user").first()


def memberships_of(user: Any) -> list[Member]:
    """Every active membership of `user`, for sign-in and the tenant switcher (read before any tenant
    is chosen: the row-level policy on members lets a user read their own memberships)."""
    with rls_context(user_id=user.pk):
        return list(Member.unscoped.filter(user=user, is_active=True).select_related("tenant").order_by("tenant__name"))


def get_or_404(queryset: QuerySet[M], **lookup: Any) -> M:
    """The same 404 for "absent" and "not yours": the queryset is already tenant-scoped."""
    obj = queryset.filter(**lookup).first()
    if obj is None:
        raise Http404("Not found.")
    return obj
