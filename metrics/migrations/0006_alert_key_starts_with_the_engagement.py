import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """alert_one_per_step becomes (engagement, step, tenant) and serves the engagement's lookups, so the
    engagement key's separate index goes: one index less for the stalled scan to write per alert."""

    dependencies = [
        ("engagement", "0007_drop_indexes_the_tenant_indexes_serve"),
        ("metrics", "0005_alert_scan_indexes"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="alert", name="alert_one_per_step"),
        migrations.AddConstraint(
            model_name="alert",
            constraint=models.UniqueConstraint(fields=("engagement", "step", "tenant"), name="alert_one_per_step"),
        ),
        migrations.AlterField(
            model_name="alert",
            name="engagement",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="alerts",
                to="engagement.engagement",
            ),
        ),
    ]
