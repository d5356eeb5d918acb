"""Tenant scoping: the one way code enters and checks a tenant's scope.

django-scopes treats `scope(tenant=None)` as "no filter"; `tenant_scope` refuses None so a
missing tenant fails closed instead of opening every row.
"""

from contextlib import contextmanager

from django.http import Http404
from django_scopes import ScopeError, get_scope, scope

from tenants.models import Member, Tenant
from tenants.rls import rls_context


@contextmanager
def tenant_scope(tenant):
    if not isinstance(tenant, Tenant):
        raise TypeError(f"tenant_scope needs a Tenant, got {tenant!r}")
    # django-scopes filters the ORM's queries; the database's row-level security checks every query.
    with scope(tenant=tenant), rls_context(tenant_id=tenant.pk):
        yield tenant


def current_tenant():
    """The tenant whose scope is active, or None."""
    value = get_scope().get("tenant")
    return value if isinstance(value, Tenant) else None


def scoped_tenant_id():
    """The id of the tenant whose scope is active; ScopeError outside one, as a scoped manager would."""
    tenant = current_tenant()
    if tenant is None:
        raise ScopeError("A tenant scope is required here.")
    return tenant.pk


def membership_for(user, tenant):
    """The active membership of `user` in `tenant`, or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    with rls_context(user_id=user.pk):
        return Member.unscoped.filter(user=user, tenant=tenant, is_active=True).select_related("user").first()


def memberships_of(user):
    """Every active membership of `user`, for sign-in and the tenant switcher (read before any tenant
    is chosen: the row-level policy on members lets a user read their own memberships)."""
    with rls_context(user_id=user.pk):
        return list(Member.unscoped.filter(user=user, is_active=True).select_related("tenant").order_by("tenant__name"))


def get_or_404(queryset, **lookup):
    """The same 404 for "absent" and "not yours": the queryset is already tenant-scoped."""
    obj = queryset.filter(**lookup).first()
    if obj is None:
        raise Http404("Not found.")
    return obj
