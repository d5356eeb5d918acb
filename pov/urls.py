from django.contrib import admin
from django.urls import include, path

from engagement import urls as engagement_urls
from intake import urls as intake_urls
from metrics import urls as metrics_urls
from notify import urls as notify_urls
from pov.health import healthz
from tenants import urls as tenant_urls

# Every page of a company lives under /t/<slug>/; the middleware resolves the slug to a membership.
tenant_pages = [
    *metrics_urls.tenant_urlpatterns,
    *engagement_urls.tenant_urlpatterns,
    *tenant_urls.tenant_urlpatterns,
    *notify_urls.tenant_urlpatterns,
    *intake_urls.tenant_urlpatterns,
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include(tenant_urls.urlpatterns)),
    path("", include("pov.api_urls")),
    path("t/<slug:slug>/", include(tenant_pages)),
    path("", include(notify_urls.urlpatterns)),
    path("", include(intake_urls.urlpatterns)),
    path("", include(engagement_urls.urlpatterns)),
]

handler404 = "pov.api_errors.json_not_found"
handler500 = "pov.api_errors.json_server_error"
