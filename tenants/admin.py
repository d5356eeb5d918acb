from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from pov.admin_site import TenantAdmin, companies_for
from tenants.models import ApiKey, AuditEntry, Member, Tenant, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Name", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        ids = [company.pk for company in companies_for(request.user)]
        return qs.filter(memberships__tenant_id__in=ids).distinct()


@admin.register(Tenant)
class TenantModelAdmin(TenantAdmin):
    tenant_path = "id"
    list_display = ["name", "slug", "time_zone", "grace_days", "escalation_days", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request):
        """Companies themselves are listed across the board: superusers see all, staff their own."""
        ids = [company.pk for company in companies_for(request.user)]
        return Tenant.objects.filter(pk__in=ids).order_by(*(self.get_ordering(request) or ["name"]))


@admin.register(Member)
class MemberAdmin(TenantAdmin):
    list_display = ["user", "tenant", "role", "is_active"]
    list_filter = ["role", "is_active"]
    search_fields = ["user__email"]
    list_select_related = ["user", "tenant"]
    autocomplete_fields = ["user"]


@admin.register(AuditEntry)
class AuditEntryAdmin(TenantAdmin):
    list_display = ["created_at", "tenant", "actor_label", "action", "target_type", "target_id"]
    list_filter = ["action"]
    readonly_fields = [f.name for f in AuditEntry._meta.fields]
    list_select_related = ["tenant"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(TenantAdmin):
    list_display = ["name", "prefix", "scope", "tenant", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope"]
    readonly_fields = ["prefix", "hashed_key", "created_at", "created_by", "last_used_at"]
    list_select_related = ["tenant"]

    def has_add_permission(self, request):
        # Keys are created with `manage.py create_api_key` or in settings, where the raw key is shown once.
        return False
