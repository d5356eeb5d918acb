"""Pages of notify: public links from emails (no login), and settings pages under /t/<slug>/ (pov/urls.py)."""

from notify import confirmation_views, digest_views, webhook_views

urlpatterns = [*confirmation_views.public_urlpatterns, *digest_views.public_urlpatterns]
tenant_urlpatterns = [*digest_views.tenant_urlpatterns, *webhook_views.tenant_urlpatterns]
