"""REST API for CRM and billing systems (the API reference at /api/docs/): thin over services and queries."""

from django.db import transaction
from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from engagement import api_examples as examples
from engagement import cleaners, intake, queries
from engagement.errors import Invalid
from engagement.filters import FILTER_NAMES, filtered_engagements, parse_filters
from engagement.models import Customer, Offering
from engagement.serializers import (
    CustomerIn,
    CustomerOut,
    EngagementDetailOut,
    EngagementOut,
    EngagementPatchIn,
    EventIn,
    EventRecorded,
    OfferingIn,
    OfferingOut,
    PurchaseIn,
    PurchaseOut,
    timeline_rows,
)
from engagement.services import UNSET, engagement_reassign, offering_save, success_criteria_set
from tenants.api_base import CursorPage, TenantAPIView
from tenants.models import ADMIN_ONLY

EXTERNAL_ID_PATTERN = "[^/]+"


def _validated(serializer_class, data):
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _code(created):
    return status.HTTP_201_CREATED if created else status.HTTP_200_OK


class CustomerPage(CursorPage):
    ordering = ("-created_at", "-id")


@extend_schema_view(
    list=extend_schema(
        summary="List customers",
        parameters=[
            OpenApiParameter("search", description="Part of the name, email or external_id."),
            OpenApiParameter("segment", description="Exact segment."),
        ],
    ),
    retrieve=extend_schema(summary="A customer by external_id"),
)
class CustomerViewSet(TenantAPIView, viewsets.GenericViewSet):
    lookup_field = "external_id"
    lookup_value_regex = EXTERNAL_ID_PATTERN
    pagination_class = CustomerPage
    serializer_class = CustomerOut

    def get_queryset(self):
        return Customer.objects.all()

    def list(self, request):
        customers = self.get_queryset()
        search = request.query_params.get("search", "").strip()[:200]
        if search:
            customers = customers.filter(
                Q(name__icontains=search) | Q(email__icontains=search) | Q(external_id__icontains=search)
            )
        segment = request.query_params.get("segment", "").strip()
        if segment:
            customers = customers.filter(segment=segment)
        page = self.paginate_queryset(customers)
        return self.get_paginated_response(CustomerOut(page, many=True).data)

    def retrieve(self, request, external_id=None):
        return Response(CustomerOut(queries.customer_for(external_id)).data)

    @extend_schema(
        summary="Create or update a customer by external_id",
        request=CustomerIn,
        examples=[examples.CUSTOMER],
        responses={201: CustomerOut, 200: CustomerOut},
    )
    def create(self, request):
        data = cleaners.clean_customer(request.data)
        customer, created = intake.upsert_customer(tenant=self.tenant, actor=self.actor, data=data)
        return Response(CustomerOut(customer).data, status=_code(created))


class OfferingPage(CursorPage):
    ordering = ("key",)


@extend_schema_view(
    list=extend_schema(summary="List offerings with their journeys"),
    retrieve=extend_schema(summary="An offering by key"),
)
class OfferingViewSet(TenantAPIView, viewsets.GenericViewSet):
    write_roles = ADMIN_ONLY  # journeys are the admins' (as on the Journeys page)
    lookup_field = "key"
    lookup_value_regex = EXTERNAL_ID_PATTERN
    pagination_class = OfferingPage
    serializer_class = OfferingOut

    def get_queryset(self):
        return Offering.objects.prefetch_related("milestones")

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(OfferingOut(page, many=True).data)

    def retrieve(self, request, key=None):
        return Response(OfferingOut(queries.offering_for(key)).data)

    @extend_schema(
        summary="Create an offering and its journey (list order = milestone order; the last is the PoV milestone)",
        request=OfferingIn,
        examples=[examples.OFFERING],
        responses={201: OfferingOut},
    )
    def create(self, request):
        return self._save(_validated(OfferingIn, request.data), new=True)

    @extend_schema(
        summary="Replace an offering and its journey (creates it when new)",
        request=OfferingIn,
        examples=[examples.OFFERING],
        responses={200: OfferingOut, 201: OfferingOut},
    )
    def update(self, request, key=None):
        data = _validated(OfferingIn, request.data)
        if data["key"] != key:
            raise Invalid({"key": [f"The body's key {data['key']!r} differs from the URL's {key!r}."]})
        return self._save(data)

    def _save(self, data, new=False):
        milestones = [dict(m) for m in data.pop("milestones")]
        offering, created = offering_save(tenant=self.tenant, actor=self.actor, milestones=milestones, new=new, **data)
        return Response(OfferingOut(queries.offering_for(offering.key)).data, status=_code(created))


class PurchaseViewSet(TenantAPIView, viewsets.GenericViewSet):
    serializer_class = PurchaseOut

    @extend_schema(
        summary="Record a purchase (the point of sale); opens its engagement",
        request=PurchaseIn,
        examples=[examples.PURCHASE],
        responses={
            201: PurchaseOut,
            200: OpenApiResponse(PurchaseOut, description="The same purchase was already recorded."),
            409: OpenApiResponse(description="The external_id exists with other values."),
        },
    )
    def create(self, request):
        data = cleaners.clean_purchase(request.data)
        purchase, created = intake.record_purchase(tenant=self.tenant, actor=self.actor, data=data)
        purchase = queries.purchase_for(purchase.external_id)
        purchase.engagement = queries.engagement_for(purchase.engagement.id)
        return Response(PurchaseOut(purchase).data, status=_code(created))


class EventViewSet(TenantAPIView, viewsets.GenericViewSet):
    serializer_class = EventRecorded

    @extend_schema(
        summary="Record an event (milestone, satisfaction, lost, reopened, paused, resumed)",
        request=EventIn,
        examples=[examples.MILESTONE, examples.SATISFACTION, examples.LOST],
        responses={
            201: EventRecorded,
            200: OpenApiResponse(EventRecorded, description="An event with this external_id was already recorded."),
        },
    )
    def create(self, request):
        data = cleaners.clean_event(request.data)
        event, created = intake.record_event(tenant=self.tenant, actor=self.actor, data=data)
        return Response(EventRecorded(event).data, status=_code(created))


class EngagementPage(CursorPage):
    ordering = ("-pos_at", "-id")


FILTER_PARAMETERS = [
    OpenApiParameter("status", enum=["on_track", "stalled", "paused", "reached", "lost"]),
    OpenApiParameter("offering", description="Offering key."),
    OpenApiParameter("owner", description="Owner's email."),
    OpenApiParameter("sales_rep", description="Sales rep's email."),
    OpenApiParameter("segment", description="Customer segment."),
    OpenApiParameter("purchased_from", type=str, description="Date (YYYY-MM-DD) in the tenant's time zone."),
    OpenApiParameter("purchased_to", type=str, description="Date (YYYY-MM-DD) in the tenant's time zone, inclusive."),
    OpenApiParameter(
        "at_risk",
        type=bool,
        description="true: open engagements whose forecast chance to reach PoV by the target day is under the "
        "company's threshold; false: every other engagement (docs/metrics.md, Forecast).",
    ),
]
assert {p.name for p in FILTER_PARAMETERS} == set(FILTER_NAMES)
ID_PARAMETER = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The engagement's id.")


@extend_schema_view(
    list=extend_schema(summary="List engagements", parameters=FILTER_PARAMETERS),
    retrieve=extend_schema(
        summary="An engagement with its journey and timeline", responses=EngagementDetailOut, parameters=[ID_PARAMETER]
    ),
    partial_update=extend_schema(
        summary="Reassign the owner and/or sales rep (recorded as a handoff), or set the success criteria",
        parameters=[ID_PARAMETER],
        examples=[examples.REASSIGN],
        request=EngagementPatchIn,
        responses=EngagementOut,
    ),
)
class EngagementViewSet(TenantAPIView, mixins.ListModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = EXTERNAL_ID_PATTERN
    serializer_class = EngagementOut
    pagination_class = EngagementPage
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        flt = parse_filters(self.request.query_params)
        return queries.with_related(filtered_engagements(flt, self.tenant))

    def retrieve(self, request, pk=None):
        engagement = queries.engagement_for(pk)
        engagement.journey = queries.journey_progress(engagement)
        engagement.timeline = timeline_rows(queries.timeline(engagement))
        return Response(EngagementDetailOut(engagement).data)

    def partial_update(self, request, pk=None):
        engagement = queries.engagement_for(pk)
        data = _validated(EngagementPatchIn, request.data)
        changes = {
            name: queries.member_by_email(data[name], name) if data[name] else None
            for name in ("owner", "sales_rep")
            if name in data
        }
        with transaction.atomic():
            engagement_reassign(
                tenant=self.tenant,
                actor=self.actor,
                engagement=engagement,
                owner=changes.get("owner", UNSET),
                sales_rep=changes.get("sales_rep", UNSET),
                note=data.get("note", ""),
            )
            if "success_criteria" in data:
                success_criteria_set(
                    tenant=self.tenant, actor=self.actor, engagement=engagement, criteria=data["success_criteria"]
                )
        return Response(EngagementOut(queries.engagement_for(pk)).data)
