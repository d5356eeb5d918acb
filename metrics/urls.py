from django.urls import path, re_path

from metrics import views

# Under /t/<slug>/ (pov/urls.py).
tenant_urlpatterns = [
    path("", views.overview, name="overview"),
    path("team/", views.team, name="team"),
    path("help/metrics/", views.metrics_help, name="metrics-help"),
    path("alerts/", views.alerts, name="alerts"),
    re_path(
        r"^alerts/(?P<alert_id>[0-9a-f-]{36})/(?P<action>acknowledge|assign|resolve)/$",
        views.alert_action,
        name="alert-action",
    ),
]
