"""Outbox handlers, recompute and timeline hooks of the metrics app (registered in MetricsConfig.ready). Idempotent."""

from tqdm import tqdm

from engagement.queries import milestone_name
from metrics.alerts import stalled_scan, sync_alerts
from metrics.models import Alert
from metrics.rollups import recompute_rollups, request_recompute


def on_engagements_changed(tenant, messages):
    """Alerts follow the projection at once; the metric rollups are recomputed debounced."""
    sync_alerts(tenant)
    request_recompute(tenant)


def on_tenant_settings_changed(tenant, changed):
    """Who is at risk depends on the threshold: the next recompute flags them anew."""
    if "at_risk_threshold" in changed:
        request_recompute(tenant)


def rebuild_alerts(tenant, progress_file=None):
    result = stalled_scan(tenant, reconcile=True)
    if progress_file:
        progress_file.write(f"{tenant.slug}: alerts {result}\n")


def rebuild_metrics(tenant, progress_file=None):
    with tqdm(total=1, desc=f"{tenant.slug}: metrics", unit=" rollup set", file=progress_file) as bar:
        rows = recompute_rollups(tenant)
        bar.update(1)
    return rows


def alert_timeline(engagement):
    alerts = Alert.objects.filter(engagement=engagement).select_related("assignee__user")
    alerts = alerts.annotate(step_name=milestone_name("engagement__offering_id", "step"))
    return [(alert.opened_at, "alert", alert) for alert in alerts]
