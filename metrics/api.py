"""Metrics endpoints (docs/metrics.md): the filters of the engagement list, one answer each."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from engagement.api import FILTER_PARAMETERS
from engagement.filters import parse_filters
from metrics import queries
from tenants.api_base import TenantAPIView

METRIC_FILTERS = [p for p in FILTER_PARAMETERS if p.name != "status"]


class BaseMetricsOut(serializers.Serializer):
    purchases = serializers.IntegerField()
    reached = serializers.IntegerField()
    lost = serializers.IntegerField()
    stalled = serializers.IntegerField()
    on_track = serializers.IntegerField()
    paused = serializers.IntegerField()
    unowned = serializers.IntegerField()
    pov_rate = serializers.FloatField(allow_null=True, help_text="reached / purchases: how many customers reach PoV.")
    median_days_to_value = serializers.FloatField(allow_null=True)
    p75_days_to_value = serializers.FloatField(allow_null=True)
    p90_days_to_value = serializers.FloatField(allow_null=True)
    on_time_rate = serializers.FloatField(allow_null=True)


class CurvePoint(serializers.Serializer):
    day = serializers.FloatField()
    reached_share = serializers.FloatField()


class HistogramBin(serializers.Serializer):
    week = serializers.IntegerField(help_text="Days to value in [7 week, 7 week + 7).")
    count = serializers.IntegerField()
    open = serializers.BooleanField(help_text="The last bin: this week and every later one.")


class SummaryOut(BaseMetricsOut):
    histogram = HistogramBin(many=True, help_text="Days to value of the reached engagements, by week.")
    km_curve = CurvePoint(many=True)
    km_median_days = serializers.FloatField(allow_null=True)
    target_days = serializers.IntegerField(allow_null=True, help_text="Set when the engagements share one target.")
    km_reached_by_target = serializers.FloatField(allow_null=True)
    computed_at = serializers.DateTimeField()


class CohortOut(serializers.Serializer):
    month = serializers.CharField()
    purchases = serializers.IntegerField()
    reached = serializers.IntegerField()
    pov_rate = serializers.FloatField(allow_null=True)
    median_days_to_value = serializers.FloatField(allow_null=True)
    km_reached_by_target = serializers.FloatField(allow_null=True)


class CohortsOut(serializers.Serializer):
    results = CohortOut(many=True)
    computed_at = serializers.DateTimeField()


class FunnelStepOut(serializers.Serializer):
    milestone = serializers.CharField()
    name = serializers.CharField()
    due_day = serializers.IntegerField()
    is_pov = serializers.BooleanField()
    reached = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)
    median_clock_days = serializers.FloatField(allow_null=True)


class FunnelOut(serializers.Serializer):
    offering = serializers.CharField()
    purchases = serializers.IntegerField()
    milestones = FunnelStepOut(many=True)
    computed_at = serializers.DateTimeField()


class OwnerRowOut(BaseMetricsOut):
    owner = serializers.EmailField(allow_null=True)


class SalesRepRowOut(BaseMetricsOut):
    sales_rep = serializers.EmailField(allow_null=True)


class OwnersOut(serializers.Serializer):
    results = OwnerRowOut(many=True)
    computed_at = serializers.DateTimeField()


class SalesRepsOut(serializers.Serializer):
    results = SalesRepRowOut(many=True)
    computed_at = serializers.DateTimeField()


class TrendPointOut(serializers.Serializer):
    day = serializers.DateField(help_text="The tenant-local day of the snapshot.")
    purchases = serializers.IntegerField()
    reached = serializers.IntegerField()
    stalled = serializers.IntegerField()
    pov_rate = serializers.FloatField(allow_null=True)
    median_days_to_value = serializers.FloatField(allow_null=True)
    on_time_rate = serializers.FloatField(allow_null=True)


class TrendOut(serializers.Serializer):
    results = TrendPointOut(many=True)
    computed_at = serializers.DateTimeField(allow_null=True)


class TrendQuery(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=366, default=90)


class MetricsView(TenantAPIView, APIView):
    def filters(self):
        return parse_filters(self.request.query_params, allow_status=False)


class SummaryView(MetricsView):
    @extend_schema(
        summary="Headline metrics and the Kaplan–Meier curve", parameters=METRIC_FILTERS, responses=SummaryOut
    )
    def get(self, request):
        return Response(SummaryOut(queries.summary(self.filters(), self.tenant)).data)


class CohortsView(MetricsView):
    @extend_schema(summary="Metrics per purchase month", parameters=METRIC_FILTERS, responses=CohortsOut)
    def get(self, request):
        return Response(CohortsOut(queries.cohorts(self.filters(), self.tenant)).data)


class FunnelView(MetricsView):
    @extend_schema(
        summary="The milestone funnel of one offering",
        parameters=[OpenApiParameter("offering", required=True, description="Offering key."), *METRIC_FILTERS[1:]],
        responses=FunnelOut,
    )
    def get(self, request):
        offering = queries.offering_for_funnel(request.query_params.get("offering", ""))
        return Response(FunnelOut(queries.funnel(self.filters(), self.tenant, offering)).data)


class OwnersView(MetricsView):
    @extend_schema(summary="The PoV scoreboard per engagement owner", parameters=METRIC_FILTERS, responses=OwnersOut)
    def get(self, request):
        return Response(OwnersOut(queries.scoreboard(self.filters(), self.tenant, "owner")).data)


class SalesRepsView(MetricsView):
    @extend_schema(summary="The PoV scoreboard per sales rep", parameters=METRIC_FILTERS, responses=SalesRepsOut)
    def get(self, request):
        return Response(SalesRepsOut(queries.scoreboard(self.filters(), self.tenant, "sales_rep")).data)


class TrendView(MetricsView):
    @extend_schema(
        summary="Daily snapshots of the headline metrics",
        description="One point per tenant-local day, overall or for one offering, segment, owner or sales rep.",
        parameters=[
            OpenApiParameter("days", int, description="How many days back (1-366, default 90)."),
            *[p for p in METRIC_FILTERS if not p.name.startswith("purchased_")],
        ],
        responses=TrendOut,
    )
    def get(self, request):
        query = TrendQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(TrendOut(queries.trend(self.filters(), query.validated_data["days"])).data)
