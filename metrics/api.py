"""Metrics endpoints: the filters of the engagement list, one answer each. Every definition: docs/metrics.md."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from engagement.api import FILTER_PARAMETERS
from engagement.filters import LIST_ONLY, parse_filters
from metrics import queries
from tenants.api_base import TenantAPIView

METRIC_FILTERS = [p for p in FILTER_PARAMETERS if p.name not in LIST_ONLY]


class ShareOut(serializers.Serializer):
    share = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text="The 95% interval's lower bound; null when there is none.")
    high = serializers.FloatField(allow_null=True)


class CurvePoint(ShareOut):
    day = serializers.FloatField(help_text="A clock day with a PoV or a loss (paused time excluded).")


class CountsOut(serializers.Serializer):
    purchases = serializers.IntegerField()
    reached = serializers.IntegerField()
    lost = serializers.IntegerField()
    stalled = serializers.IntegerField()
    on_track = serializers.IntegerField()
    paused = serializers.IntegerField()
    unowned = serializers.IntegerField()
    at_risk = serializers.IntegerField(help_text="Open engagements whose forecast is under the company's threshold.")
    pov_rate = serializers.FloatField(allow_null=True, help_text="reached / purchases so far.")
    days_to_value_p50 = serializers.FloatField(
        allow_null=True, help_text="The first day the PoV incidence reaches 50% of all buyers; null if it never has."
    )
    days_to_value_p75 = serializers.FloatField(allow_null=True, help_text="As p50, for 75%.")
    days_to_value_p90 = serializers.FloatField(allow_null=True, help_text="As p50, for 90%.")
    reached_by_target = ShareOut(
        allow_null=True, help_text="The PoV incidence at each engagement's own target day, with its interval."
    )


class HistogramBin(serializers.Serializer):
    week = serializers.IntegerField(help_text="Days to value in [7 week, 7 week + 7).")
    count = serializers.IntegerField()
    open = serializers.BooleanField(help_text="The last bin: this week and every later one.")


class BacklogAgeOut(serializers.Serializer):
    age = serializers.ChoiceField(choices=["0-30", "31-60", "61-90", "over 90"], help_text="Clock days since purchase.")
    amount = serializers.DecimalField(max_digits=16, decimal_places=2)
    stalled = serializers.DecimalField(max_digits=16, decimal_places=2)
    at_risk = serializers.DecimalField(max_digits=16, decimal_places=2)


class BacklogOut(serializers.Serializer):
    currency = serializers.CharField()
    ages = BacklogAgeOut(many=True)


class SummaryOut(CountsOut):
    target_days = serializers.IntegerField(allow_null=True, help_text="Set when the engagements share one target.")
    median_days_among_reached = serializers.FloatField(
        allow_null=True, help_text="Secondary: the median days to value of those who reached PoV only."
    )
    reached_curve = CurvePoint(many=True, help_text="Aalen–Johansen incidence of PoV (loss competes).")
    lost_curve = CurvePoint(many=True, help_text="Aalen–Johansen incidence of loss (PoV competes).")
    value_backlog = BacklogOut(many=True, help_text="Purchase amounts still waiting for PoV, by clock age.")
    histogram = HistogramBin(many=True, help_text="Days to value of the reached engagements, by week.")
    computed_at = serializers.DateTimeField()


class CohortOut(serializers.Serializer):
    month = serializers.CharField()
    purchases = serializers.IntegerField()
    reached = serializers.IntegerField()
    pov_rate = serializers.FloatField(allow_null=True)
    reached_by_target = ShareOut(allow_null=True)
    mature = serializers.BooleanField(help_text="False while its youngest purchase is younger than its target.")


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
    dropped = serializers.IntegerField(help_text="Engagements past the milestone's due day without it.")


class FunnelOut(serializers.Serializer):
    offering = serializers.CharField()
    purchases = serializers.IntegerField()
    milestones = FunnelStepOut(many=True)
    computed_at = serializers.DateTimeField()


class ScoreboardRowOut(serializers.Serializer):
    purchases = serializers.IntegerField()
    reached = serializers.IntegerField()
    lost = serializers.IntegerField()
    pov_rate = serializers.FloatField(allow_null=True)
    reached_by_target = ShareOut(allow_null=True)
    days_to_value_p50 = serializers.FloatField(allow_null=True)
    rankable = serializers.BooleanField(help_text="False below 20 engagements or with an interval over 0.30 wide.")


class OwnerRowOut(ScoreboardRowOut):
    owner = serializers.EmailField(allow_null=True)


class SalesRepRowOut(ScoreboardRowOut):
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
    days_to_value_p50 = serializers.FloatField(allow_null=True)
    reached_by_target = ShareOut(allow_null=True)


class TrendOut(serializers.Serializer):
    results = TrendPointOut(many=True)
    computed_at = serializers.DateTimeField(allow_null=True)


class TrendQuery(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=366, default=90)


class MetricsView(TenantAPIView, APIView):
    def filters(self):
        return parse_filters(self.request.query_params, for_lists=False)


class SummaryView(MetricsView):
    @extend_schema(
        summary="Headline metrics, the PoV and loss curves, and the value backlog",
        parameters=METRIC_FILTERS,
        responses=SummaryOut,
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
