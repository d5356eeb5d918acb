from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny
from rest_framework.routers import DefaultRouter

from engagement.api import CustomerViewSet, EngagementViewSet, EventViewSet, OfferingViewSet, PurchaseViewSet
from engagement.batch_api import BatchView
from engagement.import_api import ImportViewSet
from intake.api import ConnectionViewSet
from metrics.alerts_api import AlertViewSet
from metrics.api import CohortsView, FunnelView, OwnersView, SalesRepsView, SummaryView, TrendView
from pov.api_errors import json_not_found

router = DefaultRouter()
router.include_root_view = False
router.include_format_suffixes = False
router.register("customers", CustomerViewSet, basename="customer")
router.register("offerings", OfferingViewSet, basename="offering")
router.register("purchases", PurchaseViewSet, basename="purchase")
router.register("events", EventViewSet, basename="event")
router.register("engagements", EngagementViewSet, basename="engagement")
router.register("alerts", AlertViewSet, basename="alert")
router.register("imports", ImportViewSet, basename="import")
router.register("connections", ConnectionViewSet, basename="connection")

public = {"authentication_classes": [], "permission_classes": [AllowAny], "throttle_classes": []}

urlpatterns = [
    path("api/v1/batch/", BatchView.as_view(), name="api-batch"),
    path("api/v1/metrics/summary/", SummaryView.as_view(), name="api-metrics-summary"),
    path("api/v1/metrics/cohorts/", CohortsView.as_view(), name="api-metrics-cohorts"),
    path("api/v1/metrics/funnel/", FunnelView.as_view(), name="api-metrics-funnel"),
    path("api/v1/metrics/owners/", OwnersView.as_view(), name="api-metrics-owners"),
    path("api/v1/metrics/sales-reps/", SalesRepsView.as_view(), name="api-metrics-sales-reps"),
    path("api/v1/metrics/trend/", TrendView.as_view(), name="api-metrics-trend"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(**public), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file (/api/docs/?script=), not inline, so the
    # page needs no exception to the Content-Security-Policy.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html", **public),
        name="api-docs",
    ),
    # Anything else under /api/ answers in the API's JSON error format, DEBUG or not.
    re_path(r"^api/", json_not_found),
]
