"""PostgreSQL row-level security: the second wall behind django-scopes.

Every tenant-owned table carries a policy `tenant_id = app.tenant_id` with FORCE ROW LEVEL SECURITY
(`policies`, used by the migrations). The application connects as a role that owns no tables and
cannot bypass policies; migrations run as the owner (`as_owner`, DATABASE_OWNER_URL).

The settings a policy reads are transaction-local (`set_config(name, value, true)`), so a pooled
connection never carries one tenant's setting into the next transaction. `rls_context` names the
values for the code inside it (`tenant_scope` sets the tenant); `apply_settings`, installed on every
PostgreSQL connection as an execute wrapper, sets them at the start of each transaction that runs a
query inside the context. A query outside any context runs with no tenant and sees no tenant rows.
"""

from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import connections

TENANT = "app.tenant_id"
USER = "app.user_id"
API_KEY_PREFIX = "app.api_key_prefix"

# The policy expressions. NULLIF turns "unset" into NULL, so nothing matches without a context.
CURRENT_TENANT = f"NULLIF(current_setting('{TENANT}', true), '')::uuid"
TENANT_MATCH = f"tenant_id = {CURRENT_TENANT}"

_wanted = ContextVar("pov_rls_settings", default=())


@contextmanager
def rls_context(**values):
    """Run the enclosed queries with these policy settings (`tenant_id=`, `user_id=`, `api_key_prefix=`)."""
    merged = dict(_wanted.get())
    merged.update({f"app.{name}": str(value) for name, value in values.items()})
    token = _wanted.set(tuple(sorted(merged.items())))
    try:
        yield
    finally:
        _wanted.reset(token)


# --- the execute wrapper ---------------------------------------------------------------------------


def install(sender=None, connection=None, **kwargs):
    """`connection_created` receiver: wrap every query of a PostgreSQL connection."""
    if apply_settings not in connection.execute_wrappers:
        connection.execute_wrappers.append(apply_settings)


def apply_settings(execute, sql, params, many, context):
    connection = context["connection"]
    wanted = _wanted.get()
    if connection.get_autocommit():
        if not wanted or _outside_transactions(sql):
            return execute(sql, params, many, context)
        # An autocommit statement is its own transaction: give it one that starts with the settings.
        raw = connection.connection
        with raw.transaction():
            _set(raw, wanted, ())
            return execute(sql, params, many, context)
    _apply_in_transaction(connection, wanted)
    return execute(sql, params, many, context)


def _outside_transactions(sql):
    """Maintenance statements PostgreSQL refuses inside a transaction; they read no tenant rows."""
    return isinstance(sql, str) and sql.lstrip()[:6].upper() == "VACUUM"


def _apply_in_transaction(connection, wanted):
    from psycopg.pq import TransactionStatus

    raw = connection.connection
    status = raw.info.transaction_status
    if status == TransactionStatus.INERROR:
        return  # the statement will fail anyway; a set_config would only add a second error
    applied, savepoints = getattr(connection, "pov_rls_applied", ((), ()))
    if status == TransactionStatus.IDLE:
        applied, savepoints = (), ()  # a new transaction starts with this statement: nothing is set yet
    # A setting made inside a savepoint is undone if that savepoint rolls back: only trust it while
    # the savepoints it was made in are still open.
    current = tuple(connection.savepoint_ids)
    if applied == wanted and current[: len(savepoints)] == savepoints:
        return
    if not wanted and not applied:
        connection.pov_rls_applied = ((), ())
        return
    _set(raw, wanted, applied)
    connection.pov_rls_applied = (wanted, current)


def _set(raw, wanted, applied):
    values = dict.fromkeys(dict(applied), "") | dict(wanted)
    calls = ", ".join("set_config(%s, %s, true)" for _ in values)
    raw.execute(f"SELECT {calls}", [item for pair in values.items() for item in pair])


# --- roles and policies ------------------------------------------------------------------------------


@contextmanager
def as_owner(alias="default"):
    """Connect as the table owner (DATABASE_OWNER_URL) for migrations and test-database set-up."""
    owner = getattr(settings, "DATABASE_OWNER", None)
    connection = connections[alias]
    if not owner or hasattr(connection, "pov_application_login"):
        yield connection  # no separate owner, or already connected as the owner
        return
    saved = {key: connection.settings_dict.get(key) for key in owner}
    connection.close()
    connection.settings_dict.update(owner)
    connection.pov_application_login = saved
    try:
        yield connection
    finally:
        connection.close()
        connection.settings_dict.update(saved)
        del connection.pov_application_login


def grant_application_role(sender=None, using="default", **kwargs):
    """`post_migrate` receiver: the application's role may read and write rows, and owns nothing.

    Runs as the owner after every migrate, so tables added later are granted too. Creates the role
    (passwordless unless DATABASE_URL has one) when it does not exist yet.
    """
    connection = connections[using]
    app = getattr(connection, "pov_application_login", None)
    if not app or app["USER"] == connection.settings_dict.get("USER"):
        return
    with connection.cursor() as cursor:
        role = connection.ops.quote_name(app["USER"])
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [app["USER"]])
        if cursor.fetchone() is None:
            password = app.get("PASSWORD") or None
            # DDL takes no bound parameters: the password is quoted into the statement as a literal.
            create = f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD %s"
            cursor.execute(connection.ops.compose_sql(create, [password]))
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        cursor.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}")


def policies(*tables, using=TENANT_MATCH, check=None):
    """The migration operation putting the tenant policy on `tables`: row-level security enabled and
    forced, one policy for all commands. Rows are seen where `using` holds and written where `check`
    does (by default the same)."""
    check = check or using
    from django.db import migrations

    def forward(apps, schema_editor):
        for table in tables:
            schema_editor.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
            schema_editor.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
            schema_editor.execute(f'DROP POLICY IF EXISTS tenant_isolation ON "{table}"')
            schema_editor.execute(f'CREATE POLICY tenant_isolation ON "{table}" USING ({using}) WITH CHECK ({check})')

    def backward(apps, schema_editor):
        for table in tables:
            schema_editor.execute(f'DROP POLICY IF EXISTS tenant_isolation ON "{table}"')
            schema_editor.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
            schema_editor.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')

    return migrations.RunPython(forward, backward)
