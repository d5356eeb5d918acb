"""`manage.py check --database default`: warn when the application's role would bypass row-level security."""

from django.core.checks import Tags, Warning, register
from django.db import DatabaseError, connections


@register(Tags.database)
def application_role_is_subject_to_rls(app_configs=None, databases=None, **kwargs):
    connection = connections["default"]
    if "default" not in (databases or ()) or connection.vendor != "postgresql":
        return []
    if hasattr(connection, "pov_application_login"):
        return []  # connected as the owner, on purpose (migrate)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
            bypasses = cursor.fetchone()[0]
    except DatabaseError:
        return []  # not reachable, or the role is created by the first migrate: nothing to judge yet
    if not bypasses:
        return []
    return [
        Warning(
            "DATABASE_URL connects as a superuser or a role with BYPASSRLS, so row-level security does not apply.",
            hint="Connect as a role that owns no tables and set DATABASE_OWNER_URL for migrations.",
            id="tenants.W001",
        )
    ]
