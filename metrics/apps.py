from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics"

    def ready(self):
        from engagement import outbox
        from engagement.projections import derived_rebuilders
        from engagement.queries import timeline_sources
        from metrics.handlers import (
            alert_timeline,
            on_engagements_changed,
            on_tenant_settings_changed,
            rebuild_alerts,
            rebuild_metrics,
        )
        from tenants.services import settings_changed_hooks

        # Every write that changes a projection publishes CHANGED; one handling per drained batch.
        outbox.register(outbox.CHANGED, on_engagements_changed, batch=True)
        # `recompute` rebuilds alerts (after the projections) and then the rollups.
        for rebuilder in (rebuild_alerts, rebuild_metrics):
            if rebuilder not in derived_rebuilders:
                derived_rebuilders.append(rebuilder)
        # An engagement's timeline shows its alerts.
        if alert_timeline not in timeline_sources:
            timeline_sources.append(alert_timeline)
        # A new at-risk threshold flags the forecasts anew.
        if on_tenant_settings_changed not in settings_changed_hooks:
            settings_changed_hooks.append(on_tenant_settings_changed)
