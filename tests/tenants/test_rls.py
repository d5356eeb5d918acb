"""PostgreSQL row-level security, the wall behind django-scopes (tenants/rls.py).

Every query here is raw SQL, which django-scopes never sees: only the database's policies stand
between one tenant's rows and another's.
"""

import os

import pytest
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from tenants.rls import rls_context
from tenants.scoping import tenant_scope
from tests.factories import CustomerFactory, MemberFactory


def _count(table, where="", params=()):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} {where}", params)
        return cursor.fetchone()[0]


def _setting():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.tenant_id', true)")
        return cursor.fetchone()[0]


@pytest.fixture
def customers(tenant, other_tenant):
    with tenant_scope(tenant):
        CustomerFactory(tenant=tenant, external_id="a-1")
    with tenant_scope(other_tenant):
        CustomerFactory(tenant=other_tenant, external_id="b-1")
        CustomerFactory(tenant=other_tenant, external_id="b-2")


def _tenant_tables():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY table_name"
        )
        return [row[0] for row in cursor.fetchall()]


def test_every_tenant_owned_table_has_a_forced_policy(db):
    tables = _tenant_tables()
    models = {m._meta.db_table for m in apps.get_models() if any(f.attname == "tenant_id" for f in m._meta.fields)}
    assert set(tables) >= models and "engagement_event" in tables
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relname = ANY(%s) AND c.relrowsecurity AND c.relforcerowsecurity"
            " AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)",
            [tables],
        )
        protected = {row[0] for row in cursor.fetchall()}
    assert sorted(set(tables) - protected) == [], "tenant-owned tables without a forced row-level policy"


def test_the_application_role_owns_nothing_and_cannot_bypass_policies(db):
    if not settings.DATABASE_OWNER and os.environ.get("POV_REQUIRE_SERVICES") != "1":
        pytest.skip("DATABASE_OWNER_URL is unset: the application connects as the owner")
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user"
        )
        assert cursor.fetchone()[0] == 0


def test_outside_any_tenant_raw_sql_sees_no_tenant_rows(customers):
    assert _count("engagement_customer") == 0
    assert _count("tenants_member") == 0


def test_inside_a_tenant_raw_sql_sees_only_that_tenants_rows(customers, tenant, other_tenant):
    with tenant_scope(tenant):
        assert _count("engagement_customer") == 1
        assert _count("engagement_customer", "WHERE tenant_id = %s", [other_tenant.pk]) == 0
    with tenant_scope(other_tenant):
        assert _count("engagement_customer") == 2


def test_a_row_for_another_tenant_cannot_be_written(customers, tenant, other_tenant):
    move = "UPDATE engagement_customer SET tenant_id = %s WHERE external_id = 'a-1'"
    insert = (
        "INSERT INTO engagement_customer (id, tenant_id, external_id, name, segment, email, attributes,"
        " created_at, updated_at) VALUES (gen_random_uuid(), %s, 'x', 'x', '', '', '{}', now(), now())"
    )
    for scope, sql, target in ((tenant, move, other_tenant), (other_tenant, insert, tenant)):
        with (
            tenant_scope(scope),
            pytest.raises(DatabaseError, match="row-level security"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [target.pk])


def test_the_setting_lasts_one_transaction_and_never_leaks_to_the_next(customers, tenant):
    with transaction.atomic():
        with tenant_scope(tenant):
            assert _count("engagement_customer") == 1
        # Same transaction, scope left: the setting is cleared, not carried on.
        assert _setting() in ("", None)
        assert _count("engagement_customer") == 0
    with tenant_scope(tenant):
        assert _count("engagement_customer") == 1
    assert _setting() in ("", None)
    assert _count("engagement_customer") == 0


def test_a_setting_undone_by_a_savepoint_rollback_is_set_again(customers, tenant):
    with transaction.atomic():
        assert _count("engagement_customer") == 0  # the transaction starts outside any tenant
        with pytest.raises(DatabaseError), transaction.atomic(), tenant_scope(tenant):
            # Set inside this savepoint, so its rollback takes the setting along.
            assert _count("engagement_customer") == 1
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 / 0")
        with tenant_scope(tenant):
            assert _count("engagement_customer") == 1


def test_the_policy_settings_are_named_values_only(tenant):
    with rls_context(tenant_id=tenant.pk, user_id=7), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.tenant_id', true), current_setting('app.user_id', true)")
        assert cursor.fetchone() == (str(tenant.pk), "7")


def test_a_user_cannot_write_themselves_into_another_company(tenant, other_tenant):
    """The members policy shows a user their own memberships everywhere, but writes only in the tenant's scope."""
    member = MemberFactory(tenant=tenant, role="viewer")
    insert = (
        "INSERT INTO tenants_member (id, tenant_id, user_id, role, is_active, created_at)"
        " VALUES (gen_random_uuid(), %s, %s, 'admin', true, now())"
    )
    promote = "UPDATE tenants_member SET tenant_id = %s, role = 'admin' WHERE user_id = %s"
    for context, sql in (
        ({"user_id": member.user_id}, insert),  # signed in, before choosing a company
        ({"user_id": member.user_id, "tenant_id": tenant.pk}, insert),  # inside their own company
        ({"user_id": member.user_id, "tenant_id": tenant.pk}, promote),
    ):
        with (
            rls_context(**context),
            pytest.raises(DatabaseError, match="row-level security"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [other_tenant.pk, member.user_id])
    with rls_context(user_id=member.user_id), connection.cursor() as cursor:
        cursor.execute("SELECT tenant_id, role FROM tenants_member")
        assert cursor.fetchall() == [(tenant.pk, "viewer")], "the user still reads their own membership"
