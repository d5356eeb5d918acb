"""A member row is written only inside its own tenant's scope. Reading one's own memberships by user id
(sign-in, the switcher) stays; writing by it let a session insert itself as admin of any company."""

from django.db import migrations

from tenants.rls import TENANT_MATCH, USER, policies

MEMBER_MATCH = f"{TENANT_MATCH} OR user_id::text = current_setting('{USER}', true)"


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_at_risk_threshold")]

    operations = [policies("tenants_member", using=MEMBER_MATCH, check=TENANT_MATCH)]
