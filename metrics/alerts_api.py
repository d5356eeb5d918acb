"""Alert endpoints: the stalled queue, acknowledge, resolve (the API reference at /api/docs/)."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from engagement import queries as engagement_queries
from engagement.errors import Invalid
from metrics.alerts import alert_acknowledge, alert_resolve
from metrics.models import Alert, AlertState
from pov.api_errors import StrictSerializer
from tenants.api_base import CursorPage, TenantAPIView
from tenants.scoping import get_or_404


class AlertOut(serializers.Serializer):
    id = serializers.UUIDField()
    engagement = serializers.UUIDField(source="engagement_id")
    purchase = serializers.CharField(source="engagement.purchase.external_id")
    customer = serializers.CharField(source="engagement.customer.name")
    step = serializers.CharField(help_text="The milestone key (or 'satisfaction') the customer is stuck before.")
    due_at = serializers.DateTimeField()
    days_overdue = serializers.SerializerMethodField()
    state = serializers.ChoiceField(choices=AlertState.values)
    opened_at = serializers.DateTimeField()
    escalated = serializers.SerializerMethodField()
    assignee = serializers.EmailField(source="assignee.user.email", allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(allow_blank=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolution = serializers.CharField(allow_blank=True)

    def get_days_overdue(self, alert) -> float:
        end = alert.resolved_at or timezone.now()
        return max(0.0, (end - alert.due_at).total_seconds() / 86400)

    def get_escalated(self, alert) -> bool:
        return alert.escalated_at is not None


class AcknowledgeIn(StrictSerializer):
    assignee = serializers.EmailField(required=False, allow_null=True, default=None)


class AlertPage(CursorPage):
    ordering = ("due_at", "id")


ALERT_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(
        summary="Stalled-customer alerts, most overdue first",
        parameters=[OpenApiParameter("state", enum=AlertState.values)],
    )
)
class AlertViewSet(TenantAPIView, viewsets.GenericViewSet):
    lookup_value_regex = "[^/]+"
    serializer_class = AlertOut
    pagination_class = AlertPage

    def get_queryset(self):
        return Alert.objects.select_related("engagement__purchase", "engagement__customer", "assignee__user")

    def list(self, request):
        alerts = self.get_queryset()
        state = request.query_params.get("state", "")
        if state:
            if state not in AlertState.values:
                raise Invalid({"state": [f"{state!r} is not one of: {', '.join(AlertState.values)}."]})
            alerts = alerts.filter(state=state)
        page = self.paginate_queryset(alerts)
        return self.get_paginated_response(AlertOut(page, many=True).data)

    def _alert(self, pk):
        return get_or_404(self.get_queryset(), id=engagement_queries.uuid_or_404(pk))

    @extend_schema(summary="Acknowledge an alert (optionally assign it)", request=AcknowledgeIn, responses=AlertOut,
                   parameters=[ALERT_ID])  # fmt: skip
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        alert = self._alert(pk)
        data = AcknowledgeIn(data=request.data or {})
        data.is_valid(raise_exception=True)
        assignee = engagement_queries.member_by_email(data.validated_data["assignee"], "assignee")
        alert = alert_acknowledge(tenant=self.tenant, alert=alert, actor=self.actor, assignee=assignee)
        return Response(AlertOut(self._alert(alert.pk)).data)

    @extend_schema(summary="Resolve an alert by hand", request=None, responses=AlertOut, parameters=[ALERT_ID])
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        alert = alert_resolve(tenant=self.tenant, alert=self._alert(pk), actor=self.actor)
        return Response(AlertOut(self._alert(alert.pk)).data)
