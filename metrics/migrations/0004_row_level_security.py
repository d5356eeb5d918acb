"""Row-level security on the tenant-owned tables of this app (tenants/rls.py)."""

from django.db import migrations

from tenants.rls import policies


class Migration(migrations.Migration):
    dependencies = [("metrics", "0003_live_alert_index"), ("tenants", "0003_row_level_security")]

    operations = [policies("metrics_alert", "metrics_metricrollup", "metrics_rollupstate")]
