"""Outbox handlers of the metrics app (registered in MetricsConfig.ready). Idempotent."""

from metrics.alerts import sync_alerts


def resync_alerts(tenant, messages):
    sync_alerts(tenant)
