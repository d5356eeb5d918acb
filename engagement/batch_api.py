from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from engagement.batch import MAX_ITEMS, batch_ingest
from pov.api_errors import PayloadTooLarge, StrictSerializer
from tenants.api_base import TenantAPIView


class TooManyItems(PayloadTooLarge):
    default_detail = f"A batch holds at most {MAX_ITEMS} items; split it."


class BatchItemIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["customer", "purchase", "event"])
    data = serializers.DictField(help_text="The body the single endpoint for this kind takes.")


class BatchIn(StrictSerializer):
    items = BatchItemIn(many=True)


class BatchItemError(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class BatchResult(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.IntegerField(help_text="The status the single endpoint would have answered.")
    id = serializers.CharField(required=False, help_text="external_id of a customer or purchase; id of an event.")
    engagement = serializers.UUIDField(required=False, allow_null=True)
    error = BatchItemError(required=False)


class BatchOut(serializers.Serializer):
    results = BatchResult(many=True)


class BatchView(TenantAPIView, APIView):
    @extend_schema(
        summary=f"Send up to {MAX_ITEMS} customers, purchases and events in one call",
        description="Items are processed in order; each gets its own result, and valid items are kept when others "
        "fail. The body may be at most 1 MiB.",
        request=BatchIn,
        responses={200: BatchOut},
        examples=[
            OpenApiExample(
                "A purchase and its first milestone",
                request_only=True,
                value={
                    "items": [
                        {"kind": "purchase", "data": {"external_id": "INV-1001", "customer": {"external_id": "C-77",
                         "name": "Ada Lovelace"}, "offering": "software", "purchased_at": "2026-05-01T09:00:00Z"}},
                        {"kind": "event", "data": {"type": "milestone", "purchase": "INV-1001",
                         "milestone": "kickoff", "occurred_at": "2026-05-03T10:00:00Z"}},
                    ]
                },
            )
        ],
    )  # fmt: skip
    def post(self, request):
        items = request.data.get("items") if isinstance(request.data, dict) else None
        unknown = sorted(set(request.data) - {"items"}) if isinstance(request.data, dict) else []
        if unknown:
            raise ValidationError({name: ["Unknown field."] for name in unknown})
        if not isinstance(items, list):
            raise ValidationError({"items": ["A list of {kind, data} objects is required."]})
        if len(items) > MAX_ITEMS:
            raise TooManyItems()
        return Response({"results": batch_ingest(tenant=self.tenant, items=items, actor=self.actor)})
