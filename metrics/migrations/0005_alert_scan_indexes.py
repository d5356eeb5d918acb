# The stalled scan's indexes on alerts. Escalation reads the live alerts not escalated yet through a partial
# index of its own. Each index costs an index write per alert opened or escalated, so the ones no query needs
# go: the live-alert index (the old scan's join), the tenant column's own index (every other index starts
# with the tenant) and the assignee index's entries for unassigned alerts (it becomes partial).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('metrics', '0004_row_level_security'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='alert',
            name='alert_live_idx',
        ),
        migrations.AlterField(
            model_name='alert',
            name='assignee',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tenants.member'),
        ),
        migrations.AlterField(
            model_name='alert',
            name='tenant',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant'),
        ),
        migrations.AddIndex(
            model_name='alert',
            index=models.Index(condition=models.Q(('assignee__isnull', False)), fields=['assignee'], name='alert_assignee_idx'),
        ),
        migrations.AddIndex(
            model_name='alert',
            index=models.Index(condition=models.Q(('escalated_at__isnull', True), ('state__in', ('open', 'acknowledged'))), fields=['tenant', 'opened_at'], name='alert_escalation_idx'),
        ),
    ]
