"""The staff admin, one company at a time.

Staff work inside one chosen company (Admin → "Company"): its rows are the only tenant rows the
database's row-level security shows, as everywhere else in the product. Superusers may choose any
company, other staff only those they belong to. django-scopes is disabled inside admin views because
the admin builds its own querysets; TenantAdmin and row-level security narrow them.
"""

from functools import update_wrapper

from django.contrib import admin
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_scopes import scopes_disabled

from tenants.models import Tenant
from tenants.rls import rls_context
from tenants.scoping import memberships_of

SESSION_KEY = "admin_tenant"


class PovAdminSite(admin.AdminSite):
    site_header = "PoV administration"
    site_title = "PoV admin"
    index_title = "Records"

    def admin_view(self, view, cacheable=False):
        def in_company(request, *args, **kwargs):
            # Templates are rendered here so their queries run inside the same context.
            with scopes_disabled(), rls_context(**_company_setting(request)):
                response = view(request, *args, **kwargs)
                if hasattr(response, "render") and not response.is_rendered:
                    response.render()
                return response

        return super().admin_view(update_wrapper(in_company, view), cacheable)

    def get_urls(self):
        choose = self.admin_view(require_POST(self.choose_company))
        return [path("company/<slug:slug>/", choose, name="choose_company"), *super().get_urls()]

    def choose_company(self, request, slug):
        tenant = next((t for t in companies_for(request.user) if t.slug == slug), None)
        if tenant is None:
            raise Http404("No such company.")
        request.session[SESSION_KEY] = str(tenant.pk)
        return HttpResponseRedirect(_same_site(request, request.POST.get("next")) or reverse("admin:index"))

    def each_context(self, request):
        context = super().each_context(request)
        if request.user.is_active and request.user.is_staff:
            context["admin_company"] = admin_company(request)
            context["admin_companies"] = companies_for(request.user)
        return context


def companies_for(user):
    """The companies a staff user may work in: all for superusers, their memberships' for others."""
    if user.is_superuser:
        return list(Tenant.objects.order_by("slug"))
    return [membership.tenant for membership in memberships_of(user)]


def admin_company(request):
    """The company chosen in this admin session, else the first one the user may work in."""
    if not (request.user.is_active and request.user.is_staff):
        return None
    allowed = companies_for(request.user)
    chosen = request.session.get(SESSION_KEY)
    return next((t for t in allowed if str(t.pk) == chosen), allowed[0] if allowed else None)


def _same_site(request, url):
    """`url` when it leads to this site; None for another host or scheme (`//evil.example/` included)."""
    same_site = url_has_allowed_host_and_scheme(url, {request.get_host()}, require_https=request.is_secure())
    return url if same_site else None


def _company_setting(request):
    company = admin_company(request)
    return {"tenant_id": company.pk} if company else {}


class TenantAdmin(admin.ModelAdmin):
    """Rows of the company being worked in (row-level security enforces the same on PostgreSQL)."""

    tenant_path = "tenant"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        company = admin_company(request)
        return qs.filter(**{self.tenant_path: company}) if company else qs.none()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        company = admin_company(request)
        company_id = company.pk if company else None
        if related is Tenant:
            # A row is written into the company being worked in: row-level security refuses any other.
            kwargs["queryset"] = Tenant.objects.filter(pk=company_id)
        elif any(f.name == "tenant" for f in related._meta.fields):
            kwargs["queryset"] = related._default_manager.filter(tenant_id=company_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ViewOnlyAdmin:
    """Mixin for a model admin or inline whose rows are shown, never added, changed or deleted here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
