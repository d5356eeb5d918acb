"""Pages of notify: public links from emails (no login), and settings pages under /t/<slug>/."""

# Signed links in emails: no login, outside /t/<slug>/.
urlpatterns = []

# Under /t/<slug>/ (pov/urls.py).
tenant_urlpatterns = []
