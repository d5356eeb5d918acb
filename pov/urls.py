from django.contrib import admin
from django.urls import include, path

from pov.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("tenants.urls")),
    path("", include("pov.api_urls")),
    path("", include("engagement.urls")),
]

handler404 = "pov.api_errors.json_not_found"
handler500 = "pov.api_errors.json_server_error"
