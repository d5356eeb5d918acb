"""Pages of notify: public links from emails (no login), and settings pages under /t/<slug>/."""

from notify import confirmation_views, digest_views, webhook_views

# Signed links in emails: no login, outside /t/<slug>/.
urlpatterns = []
urlpatterns += confirmation_views.public_urlpatterns
urlpatterns += digest_views.public_urlpatterns
urlpatterns += webhook_views.public_urlpatterns

# Under /t/<slug>/ (pov/urls.py).
tenant_urlpatterns = []
tenant_urlpatterns += confirmation_views.tenant_urlpatterns
tenant_urlpatterns += digest_views.tenant_urlpatterns
tenant_urlpatterns += webhook_views.tenant_urlpatterns
