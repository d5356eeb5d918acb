"""API shapes (the OpenAPI document at /api/schema/). Input serializers are strict (unknown fields are
errors) and bound every string; output is built from model rows without extra queries per row.

CustomerIn, PurchaseIn and EventIn document the bodies that engagement.cleaners checks (for single calls
and batch items alike); a test holds the two to the same fields."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from engagement.cleaners import CRITERIA_MAX, CRITERION_MAX
from engagement.models import EventType, Status
from pov.api_errors import AwareDateTimeField, StrictSerializer

ID_MAX = 255


class CustomerIn(StrictSerializer):
    external_id = serializers.CharField(max_length=ID_MAX, help_text="Without '/': it names the customer in URLs.")
    name = serializers.CharField(max_length=255)
    # Omitted optional fields keep their stored values on an update.
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    segment = serializers.CharField(max_length=64, required=False, allow_blank=True)
    attributes = serializers.DictField(required=False, help_text="Free-form, under 10,000 characters.")


class CustomerOut(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField()
    email = serializers.CharField()
    segment = serializers.CharField()
    attributes = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class MilestoneIn(StrictSerializer):
    key = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    due_day = serializers.IntegerField(min_value=0, max_value=3650)


class OfferingIn(StrictSerializer):
    key = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    requires_satisfaction = serializers.BooleanField(required=False, default=False)
    satisfaction_threshold = serializers.IntegerField(min_value=1, max_value=5, required=False, default=4)
    confirm_value = serializers.BooleanField(
        required=False, default=False, help_text="Email the customer to confirm the value at the PoV milestone."
    )
    milestones = MilestoneIn(many=True, allow_empty=False, max_length=50)


class MilestoneOut(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    order = serializers.IntegerField()
    due_day = serializers.IntegerField()
    is_pov = serializers.BooleanField()


class OfferingOut(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    requires_satisfaction = serializers.BooleanField()
    satisfaction_threshold = serializers.IntegerField()
    confirm_value = serializers.BooleanField()
    target_days = serializers.IntegerField()
    milestones = MilestoneOut(many=True, source="milestones.all")


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "maxLength": ID_MAX, "description": "The customer's external_id."},
            {"$ref": "#/components/schemas/CustomerIn"},
        ]
    }
)
class CustomerRefField(serializers.Field):
    """A customer's external_id, or an object to upsert it."""


@extend_schema_field(
    {"type": "array", "items": {"type": "string", "maxLength": CRITERION_MAX}, "maxItems": CRITERIA_MAX}
)
class CriteriaField(serializers.JSONField):
    """Success criteria, as engagement.cleaners.success_criteria reads them (its messages name the item)."""

    def __init__(self, **kwargs):
        text = f'What the customer expects to get: up to {CRITERIA_MAX} short texts, e.g. ["Invoices out in one day"].'
        super().__init__(help_text=text, **kwargs)


class PurchaseIn(StrictSerializer):
    external_id = serializers.CharField(max_length=ID_MAX)
    customer = CustomerRefField()
    offering = serializers.CharField(max_length=64)
    purchased_at = AwareDateTimeField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, required=False, allow_null=True, default=None)
    currency = serializers.CharField(max_length=3, required=False, allow_blank=True, default="")
    owner = serializers.EmailField(max_length=254, required=False, allow_null=True, default=None)
    sales_rep = serializers.EmailField(max_length=254, required=False, allow_null=True, default=None)
    success_criteria = CriteriaField(required=False)


class EventIn(StrictSerializer):
    type = serializers.ChoiceField(choices=EventType.values)
    purchase = serializers.CharField(max_length=ID_MAX)
    occurred_at = AwareDateTimeField()
    milestone = serializers.CharField(max_length=64, required=False, allow_null=True, default=None)
    score = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1, max_value=5)
    comment = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    external_id = serializers.CharField(max_length=ID_MAX, required=False, allow_null=True, default=None)
    criteria_met = serializers.DictField(
        child=serializers.BooleanField(), required=False, allow_null=True, default=None,
        help_text="Satisfaction events: the customer's answer for each success criterion, {criterion: true or false}.",
    )  # fmt: skip


class EngagementPatchIn(StrictSerializer):
    owner = serializers.EmailField(max_length=254, required=False, allow_null=True)
    sales_rep = serializers.EmailField(max_length=254, required=False, allow_null=True)
    success_criteria = CriteriaField(required=False)
    note = serializers.CharField(max_length=10000, required=False, allow_blank=True, default="")


class NullableBlankCharField(serializers.CharField):
    """Shows "" as null."""

    def to_representation(self, value):
        return value or None


class PurchaseSummary(serializers.Serializer):
    external_id = serializers.CharField()
    purchased_at = serializers.DateTimeField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    currency = NullableBlankCharField(allow_null=True)


class CustomerSummary(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField()
    segment = serializers.CharField()


class ForecastOut(serializers.Serializer):
    """docs/metrics.md, "Forecast": recomputed with the metrics, at most a minute after a change."""

    reach_by_target = serializers.FloatField(
        allow_null=True,
        help_text="The chance, 0 to 1, to reach PoV by the offering's target day, given the engagement is still "
        "open on its clock day now: (F_pov(T) - F_pov(d)) / (1 - F_pov(d) - F_lost(d)) on the Aalen-Johansen "
        "curves of similar customers; 0 past the target day; null when none of them was still waiting.",
    )
    expected_pov_day = serializers.FloatField(
        allow_null=True, help_text="The clock day by which half of similar customers reached PoV; null: never."
    )
    at_risk = serializers.BooleanField(help_text="reach_by_target is under the company's at-risk threshold.")


class EngagementState(serializers.Serializer):
    """An engagement with the derived fields of docs/metrics.md; the row has ENGAGEMENT_RELATED selected."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Status.values)
    purchase = PurchaseSummary()
    customer = CustomerSummary()
    offering = serializers.CharField(source="offering.key")
    success_criteria = serializers.ListField(child=serializers.CharField(), source="purchase.success_criteria")
    owner = serializers.EmailField(source="owner.user.email", allow_null=True)
    sales_rep = serializers.EmailField(source="sales_rep.user.email", allow_null=True)
    pos_at = serializers.DateTimeField()
    next_milestone = NullableBlankCharField(source="next_step", allow_null=True)
    next_due_at = serializers.DateTimeField(allow_null=True)
    pov_at = serializers.DateTimeField(allow_null=True)
    days_to_value = serializers.FloatField(allow_null=True)
    calendar_days_to_value = serializers.FloatField(allow_null=True)
    lost_at = serializers.DateTimeField(allow_null=True)
    churned_at = serializers.DateTimeField(allow_null=True)
    paused_since = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()


class EngagementOut(EngagementState):
    """The engagement with its forecast (read through queries.with_related). Responses to a purchase or
    an event carry the engagement without it: the forecast follows with the next metrics recompute."""

    forecast = serializers.SerializerMethodField(help_text="Null once the engagement ended, or until first forecast.")

    @extend_schema_field(ForecastOut(allow_null=True))
    def get_forecast(self, engagement):
        forecast = getattr(engagement, "forecast", None)  # a missing reverse one-to-one raises AttributeError
        return ForecastOut(forecast).data if forecast else None


class EventOut(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=EventType.values)
    occurred_at = serializers.DateTimeField()
    milestone = serializers.CharField(source="milestone.key", allow_null=True)
    score = serializers.IntegerField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)
    reason = serializers.CharField(allow_blank=True)
    criteria_met = serializers.DictField(child=serializers.BooleanField(), allow_null=True)
    external_id = serializers.CharField(allow_null=True)
    source = serializers.CharField()
    recorded_by = serializers.CharField()


class EventRecorded(EventOut):
    engagement = EngagementState()


class TimelineItem(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=["event", "note"])
    type = serializers.CharField(help_text="Event type, or the note kind (note, handoff).")
    milestone = serializers.CharField(allow_null=True)
    score = serializers.IntegerField(allow_null=True)
    criteria_met = serializers.DictField(child=serializers.BooleanField(), allow_null=True)
    text = serializers.CharField(allow_blank=True, help_text="Comment/reason of an event, body of a note.")
    by = serializers.CharField()


class MilestoneProgress(serializers.Serializer):
    key = serializers.CharField(source="milestone.key")
    name = serializers.CharField(source="milestone.name")
    due_at = serializers.DateTimeField()
    reached_at = serializers.DateTimeField(allow_null=True)
    clock_days = serializers.FloatField(allow_null=True)
    overdue = serializers.BooleanField()


class EngagementDetailOut(EngagementOut):
    journey = MilestoneProgress(many=True)
    timeline = TimelineItem(many=True)


def timeline_rows(items):
    """queries.timeline() items as TimelineItem dicts."""
    rows = []
    for at, kind, obj in items:
        if kind == "event":
            text = obj.comment or obj.reason
            row = {"type": obj.type, "milestone": obj.milestone.key if obj.milestone_id else None, "score": obj.score,
                   "criteria_met": obj.criteria_met, "text": text, "by": obj.recorded_by}  # fmt: skip
        else:
            row = {"type": obj.kind, "milestone": None, "score": None, "criteria_met": None, "text": obj.body,
                   "by": obj.author_label}  # fmt: skip
        rows.append({"at": at, "kind": kind, **row})
    return rows


class PurchaseOut(serializers.Serializer):
    external_id = serializers.CharField()
    customer = serializers.CharField(source="customer.external_id")
    offering = serializers.CharField(source="offering.key")
    purchased_at = serializers.DateTimeField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    currency = NullableBlankCharField(allow_null=True)
    success_criteria = serializers.ListField(child=serializers.CharField())
    engagement = EngagementState()
