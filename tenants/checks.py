"""Start-up refusal of a database role that row-level security would not hold back.

Row-level security (tenants/rls.py) keeps companies apart in the database, behind django-scopes. It does
not apply to a superuser, to a role with BYPASSRLS or to the tables' owner: an application connected as
one of those would run with the second wall switched off, silently. So `manage.py` commands (runserver,
migrate, ...) fail their system checks, and gunicorn and the Celery worker refuse to start, unless
DATABASE_ALLOW_PRIVILEGED_ROLE is set for one-off maintenance.
"""

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections

ROLE_SQL = """
SELECT r.rolname, r.rolsuper, r.rolbypassrls,
       EXISTS (SELECT 1 FROM pg_tables t WHERE t.tableowner = current_user AND t.schemaname = current_schema())
FROM pg_roles r WHERE r.rolname = current_user
"""


def privileged_role_problem(alias: str = "default") -> str | None:
    """Why the application's role escapes row-level security, or None (also when it cannot be asked)."""
    connection = connections[alias]
    if settings.DATABASE_ALLOW_PRIVILEGED_ROLE or hasattr(connection, "pov_application_login"):
        return None  # allowed on purpose, or connected as the owner on purpose (migrate)
    try:
        with connection.cursor() as cursor:
            cursor.execute(ROLE_SQL)
            row = cursor.fetchone()
    except (DatabaseError, RuntimeError):
        # Unreachable, the role not created yet (the first migrate creates it), or database access not
        # allowed here (the test runner outside a database test): nothing to judge.
        return None
    if row is None:
        return None
    role, superuser, bypasses, owns = row
    why = "is a superuser" if superuser else "has BYPASSRLS" if bypasses else "owns the tables" if owns else None
    if why is None:
        return None
    return (
        f"DATABASE_URL connects as {role!r}, which {why}, so row-level security would not keep companies apart. "
        "Point DATABASE_URL at a role that owns nothing (the first migrate creates it, e.g. pov_app) and "
        "DATABASE_OWNER_URL at the owner; for one-off maintenance only, set DATABASE_ALLOW_PRIVILEGED_ROLE=1."
    )


@register()
def application_role_is_held_back(app_configs: object = None, **kwargs: object) -> list[Error]:
    problem = privileged_role_problem()
    return [Error(problem, id="tenants.E001")] if problem else []


def refuse_privileged_role() -> None:
    """For processes that run no system checks (gunicorn, the Celery worker)."""
    problem = privileged_role_problem()
    if problem:
        raise ImproperlyConfigured(problem)
