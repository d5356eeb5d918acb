"""Row-level security on the tenant-owned tables of this app (tenants/rls.py)."""

from django.db import migrations

from tenants.rls import policies


class Migration(migrations.Migration):
    dependencies = [("engagement", "0005_due_order_index"), ("tenants", "0003_row_level_security")]

    operations = [
        policies(
            "engagement_customer",
            "engagement_offering",
            "engagement_milestone",
            "engagement_purchase",
            "engagement_engagement",
            "engagement_milestonereach",
            "engagement_event",
            "engagement_note",
            "engagement_outboxmessage",
        )
    ]
