from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = "Metrics"

    def ready(self):
        from engagement import outbox
        from metrics.handlers import resync_alerts

        # Alerts follow the projection: a stalled engagement opens one, a reached step resolves it.
        # Every write that changes a projection publishes CHANGED; one re-sync per drained batch.
        outbox.register(outbox.CHANGED, resync_alerts, batch=True)
