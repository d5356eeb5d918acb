from django.contrib import admin

from metrics.models import Alert
from pov.admin_site import TenantAdmin


@admin.register(Alert)
class AlertAdmin(TenantAdmin):
    list_display = ["engagement", "step", "state", "due_at", "opened_at", "escalated_at", "tenant"]
    list_filter = ["state"]
    list_select_related = ["engagement__purchase", "tenant"]
    raw_id_fields = ["engagement", "assignee"]
