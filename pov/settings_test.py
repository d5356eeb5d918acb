"""Settings for the test suite: the real settings with test-friendly defaults for what is unset."""

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("EMAIL_URL", "memorymail://")
# The tests' webhook receivers listen on 127.0.0.1.
os.environ.setdefault("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", "1")
# Every test client is 127.0.0.1, and the suite sends many bad keys on purpose; tests/api/test_limits.py
# sets the limit it tests.
os.environ.setdefault("API_BAD_KEY_LIMIT", "1000000/minute")
# A queue of its own, so a worker started by the tests never takes tasks of a dev server (or vice versa);
# each process of `make test` (pytest-xdist's workers start with the first process's environment) its own,
# which the workers and servers it starts inherit.
_queue = os.environ.setdefault("CELERY_QUEUE", f"pov-test-{uuid.uuid4().hex[:8]}")
_process = os.environ.get("PYTEST_XDIST_WORKER", "")
if _process and not _queue.endswith(f"-{_process}"):
    os.environ["CELERY_QUEUE"] = f"{_queue}-{_process}"
TEST_APPLICATION_ROLE = "pov_test_app"


def _as_role(url, role):
    """`url` with its user replaced by `role` (same password, host and database)."""
    parts = urlsplit(url)
    credentials, _, host = parts.netloc.rpartition("@")
    password = credentials.partition(":")[2] if ":" in credentials else ""
    user = f"{role}:{password}" if password else role
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


# Given only DATABASE_URL (say a local PostgreSQL's superuser), the suite treats it as the owner, which
# migrates the test database and creates the application's role, and connects as that role: row-level
# security then applies in the tests as in production.
if os.environ.get("DATABASE_URL") and not os.environ.get("DATABASE_OWNER_URL"):
    os.environ["DATABASE_OWNER_URL"] = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = _as_role(os.environ["DATABASE_URL"], TEST_APPLICATION_ROLE)

from pov.settings import *  # noqa: E402, F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # noqa: F405 - `manage.py bench` is tested too
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
# The tests serve static files from their source folders; WhiteNoise still scans STATIC_ROOT when a client
# starts, so it is a folder of their own that nobody collects into (the benchmark's and load test's
# servers run `collectstatic` into var/staticfiles while other tests run).
STATIC_ROOT = VAR_DIR / "test-static"  # noqa: F405
STATIC_ROOT.mkdir(exist_ok=True)

# One test database per pytest process, so two runs on one machine never share one.
DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405
# The cache keys of one run (and of the workers it starts, which inherit CELERY_QUEUE) apart from those
# of another run or of the suite's other process: their databases number rows alike.
CACHES["default"]["KEY_PREFIX"] = os.environ["CELERY_QUEUE"]  # noqa: F405
