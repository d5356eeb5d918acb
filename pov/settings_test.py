"""Settings for the test suite: the real settings with test-friendly defaults for what is unset."""

import os
import uuid

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("EMAIL_URL", "memorymail://")
# The tests' webhook receivers listen on 127.0.0.1.
os.environ.setdefault("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", "1")
# A queue of its own, so a worker started by the tests never takes tasks of a dev server (or vice versa).
os.environ.setdefault("CELERY_QUEUE", f"pov-test-{uuid.uuid4().hex[:8]}")

from pov.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True

# One test database per pytest process, so two runs on one machine never share one; a file, not
# memory, so a real Celery worker started by the tests sees it.
if IS_SQLITE:  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}  # noqa: F405
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405
