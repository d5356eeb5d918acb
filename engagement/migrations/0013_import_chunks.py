import django.contrib.postgres.fields
from django.db import migrations, models

# Imports stored before chunks were marked went on from done_rows, a thousand rows a chunk, one chunk after
# another: their chunks up to there are done. Row-level security is forced on the table, for its owner
# too, and a migration runs in no tenant, so it is lifted for this statement only (in the migration's
# transaction).
MARK_DONE_CHUNKS = """
ALTER TABLE engagement_import NO FORCE ROW LEVEL SECURITY;
UPDATE engagement_import
SET next_chunk = ceil(done_rows / 1000.0)::int,
    done_chunks = ARRAY(SELECT generate_series(0, ceil(done_rows / 1000.0)::int - 1))
WHERE done_rows > 0;
ALTER TABLE engagement_import FORCE ROW LEVEL SECURITY;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("engagement", "0012_imports"),
    ]

    operations = [
        migrations.AddField(
            model_name="import",
            name="done_chunks",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.PositiveIntegerField(), default=list, size=None
            ),
        ),
        migrations.AddField(
            model_name="import",
            name="next_chunk",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="import",
            name="in_order",
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name="import",
            name="attempt",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunSQL(MARK_DONE_CHUNKS, migrations.RunSQL.noop),
    ]
