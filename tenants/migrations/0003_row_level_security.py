"""Row-level security on the tenant-owned tables of this app (tenants/rls.py)."""

from django.db import migrations

from tenants.rls import API_KEY_PREFIX, TENANT_MATCH, USER, policies

# A user reads their own memberships before choosing a tenant (sign-in, the switcher).
MEMBER_MATCH = f"{TENANT_MATCH} OR user_id::text = current_setting('{USER}', true)"
# API-key authentication finds the one key named by its prefix before the tenant is known.
API_KEY_MATCH = f"{TENANT_MATCH} OR prefix = NULLIF(current_setting('{API_KEY_PREFIX}', true), '')"


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_apikey_idempotencykey")]

    operations = [
        policies("tenants_auditentry", "tenants_idempotencykey"),
        policies("tenants_member", using=MEMBER_MATCH),
        policies("tenants_apikey", using=API_KEY_MATCH),
    ]
