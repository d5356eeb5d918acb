from django.apps import AppConfig


class EngagementConfig(AppConfig):
    name = "engagement"
    verbose_name = "Engagement"

    def ready(self):
        from engagement.tasks import on_tenant_settings_changed
        from tenants.services import settings_changed_hooks

        # Stalled depends on the tenant's grace days: a change re-derives every projection.
        if on_tenant_settings_changed not in settings_changed_hooks:
            settings_changed_hooks.append(on_tenant_settings_changed)
