from django.contrib import admin

from engagement.models import (
    Customer,
    Engagement,
    Event,
    Milestone,
    MilestoneReach,
    Note,
    Offering,
    OutboxMessage,
    Purchase,
)
from pov.admin_site import TenantAdmin, ViewOnlyAdmin


class MilestoneInline(ViewOnlyAdmin, admin.TabularInline):
    """Read-only: journeys are edited on the Journeys page, whose service re-derives the projections
    and the offering's target; editing rows here would bypass both."""

    model = Milestone
    extra = 0
    fields = ["order", "key", "name", "due_day", "is_pov"]
    readonly_fields = fields
    ordering = ["order"]


@admin.register(Customer)
class CustomerAdmin(TenantAdmin):
    list_display = ["name", "external_id", "segment", "email", "tenant"]
    search_fields = ["name", "external_id", "email"]
    list_filter = ["segment"]
    list_select_related = ["tenant"]


@admin.register(Offering)
class OfferingAdmin(TenantAdmin):
    list_display = ["name", "key", "target_days", "requires_satisfaction", "tenant"]
    readonly_fields = ["target_days", "requires_satisfaction", "satisfaction_threshold"]
    search_fields = ["name", "key"]
    inlines = [MilestoneInline]
    list_select_related = ["tenant"]


@admin.register(Purchase)
class PurchaseAdmin(TenantAdmin):
    list_display = ["external_id", "customer", "offering", "purchased_at", "amount", "currency", "tenant"]
    search_fields = ["external_id", "customer__name"]
    list_select_related = ["customer", "offering", "tenant"]
    raw_id_fields = ["customer"]


class EventInline(ViewOnlyAdmin, admin.TabularInline):
    model = Event
    extra = 0
    fields = ["type", "occurred_at", "milestone", "score", "reason", "source", "recorded_by"]
    readonly_fields = fields


@admin.register(Engagement)
class EngagementAdmin(TenantAdmin):
    """Derived rows: read-only here; change them through events."""

    list_display = ["purchase", "customer", "offering", "status", "next_step", "next_due_at", "owner", "tenant"]
    list_filter = ["status"]
    search_fields = ["purchase__external_id", "customer__name"]
    list_select_related = ["purchase", "customer", "offering", "owner__user", "tenant"]
    readonly_fields = [f.name for f in Engagement._meta.fields]
    inlines = [EventInline]

    def has_add_permission(self, request):
        return False


@admin.register(Event)
class EventAdmin(ViewOnlyAdmin, TenantAdmin):
    """Append-only: viewable, never edited."""

    list_display = ["type", "occurred_at", "engagement", "milestone", "score", "source", "tenant"]
    list_filter = ["type", "source"]
    list_select_related = ["engagement__purchase", "milestone__offering", "tenant"]
    readonly_fields = [f.name for f in Event._meta.fields]


@admin.register(Note)
class NoteAdmin(TenantAdmin):
    list_display = ["kind", "author_label", "engagement", "created_at", "tenant"]
    list_filter = ["kind"]
    list_select_related = ["engagement__purchase", "tenant"]
    raw_id_fields = ["engagement"]


@admin.register(Milestone)
class MilestoneAdmin(ViewOnlyAdmin, TenantAdmin):
    """Read-only, like the offering's inline: journeys change through the Journeys page only."""

    list_display = ["offering", "order", "key", "name", "due_day", "is_pov", "tenant"]
    list_select_related = ["offering", "tenant"]


@admin.register(MilestoneReach)
class MilestoneReachAdmin(TenantAdmin):
    list_display = ["engagement", "milestone", "reached_at", "clock_days", "tenant"]
    list_select_related = ["engagement__purchase", "milestone__offering", "tenant"]
    readonly_fields = ["engagement", "milestone", "reached_at", "clock_days", "tenant"]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(TenantAdmin):
    list_display = ["id", "kind", "created_at", "handled_at", "attempts", "tenant"]
    list_filter = ["kind"]
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]
    list_select_related = ["tenant"]
