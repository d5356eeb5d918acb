"""Enters the tenant scope for web requests under /t/<slug>/.

A member of the tenant gets the request run inside `tenant_scope`; anyone else gets the same 404
as for a tenant that does not exist. The API enters the scope itself, after authentication
(tenants.api_base).
"""

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponseBadRequest
from django.urls import reverse
from django.utils import timezone

from tenants.models import Tenant
from tenants.scoping import membership_for, tenant_scope


def _tenant_slug(path):
    parts = path.split("/", 3)
    if len(parts) >= 3 and parts[1] == "t" and parts[2]:
        return parts[2]
    return None


def _has_nul(request):
    pairs = [*request.GET.lists(), *(request.POST.lists() if request.method == "POST" else ())]
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in pairs)


class TenantScopeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = None
        request.member = None
        slug = _tenant_slug(request.path_info)
        if slug is None:
            return self.get_response(request)
        if _has_nul(request):
            # PostgreSQL text cannot hold NUL: refuse it here, once, instead of in every filter and form.
            return HttpResponseBadRequest("A NUL character is not allowed in a link or a form.")
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("login"))
        tenant = Tenant.objects.filter(slug=slug).first()
        member = membership_for(request.user, tenant) if tenant else None
        if member is None:
            raise Http404("No such tenant.")
        request.tenant, request.member = tenant, member
        if request.session.get("tenant_slug") != slug:
            # The browsable API and the tenant switcher start from the company last opened.
            request.session["tenant_slug"] = slug
        # Dates on the company's pages read in the company's time zone.
        with tenant_scope(tenant), timezone.override(tenant.tzinfo):
            return self.get_response(request)
