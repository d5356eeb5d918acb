"""Settings for the test suite: the real settings with test-friendly defaults for what is unset."""

import os
import uuid

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("EMAIL_URL", "memorymail://")
# A queue of its own, so a worker started by the tests never takes tasks of a dev server (or vice versa).
os.environ.setdefault("CELERY_QUEUE", f"pov-test-{uuid.uuid4().hex[:8]}")

from pov.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
