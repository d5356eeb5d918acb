"""Row-level security on the tenant-owned tables of this app (tenants/rls.py)."""

from django.db import migrations

from tenants.rls import policies


class Migration(migrations.Migration):
    dependencies = [("notify", "0001_initial"), ("tenants", "0003_row_level_security")]

    operations = [
        policies(
            "notify_digestpreference",
            "notify_digestsend",
            "notify_valueconfirmation",
            "notify_webhookendpoint",
            "notify_webhookdelivery",
            "notify_webhookattempt",
        )
    ]
