"""/healthz: 200 when the database and the broker answer, 503 otherwise (README)."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from pov.celery import app


def _database_ok():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:  # noqa: BLE001 - any failure means "not ok"
        return False


def _broker_ok():
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:  # noqa: BLE001
        return False


@never_cache
def healthz(request):
    checks = {"db": "ok" if _database_ok() else "error", "broker": "ok" if _broker_ok() else "error"}
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse(checks, status=200 if healthy else 503)
