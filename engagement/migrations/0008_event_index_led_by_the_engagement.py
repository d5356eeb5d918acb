import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """event_engagement_time_idx becomes (engagement, occurred_at) and serves the engagement's foreign key,
    so the engagement key's separate index goes: one index less for every event written."""

    dependencies = [
        ("engagement", "0007_drop_indexes_the_tenant_indexes_serve"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="event", name="event_engagement_time_idx"),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["engagement", "occurred_at"], name="event_engagement_time_idx"),
        ),
        migrations.AlterField(
            model_name="event",
            name="engagement",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="engagement.engagement",
            ),
        ),
    ]
