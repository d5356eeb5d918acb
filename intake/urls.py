"""Pages of intake: the addresses vendors send to (no login), and Settings → Connections under /t/<slug>/."""

from intake import receive, views

urlpatterns = receive.public_urlpatterns
tenant_urlpatterns = views.tenant_urlpatterns
