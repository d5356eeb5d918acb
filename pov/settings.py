"""PoV settings, read from the environment (README, Configuration).

Every variable is parsed here, once, and a malformed value stops start-up with an
ImproperlyConfigured naming the variable, so a typo never becomes a silent default.
"""

import re
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import environ
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _redact(value):
    """A URL with its password hidden, for error messages that end up in logs."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", str(value))


def _read(name, parse, default):
    """Parse one variable; name it in the error when its value is malformed."""
    try:
        return parse(name, default=default)
    except (ValueError, TypeError, KeyError, ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(f"{name} is malformed: {_redact(env.str(name, default=''))!r}") from exc


def _positive(name, default, minimum=1):
    value = _read(name, env.int, default)
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be a whole number of at least {minimum}: {value}")
    return value


def _url(name, default, schemes):
    value = _read(name, env.str, default)
    if value is None:
        return None
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise ImproperlyConfigured(f"{name} must be a URL starting with one of {sorted(schemes)}: {_redact(value)!r}")
    parsed = urlparse(value)
    try:
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} has a malformed port: {_redact(value)!r}") from exc
    if scheme in ("http", "https", "redis", "rediss", "postgres", "postgresql") and not parsed.hostname:
        raise ImproperlyConfigured(f"{name} needs a host name: {_redact(value)!r}")
    return value


def _bool(name, default):
    """A strict boolean: an unknown word stops start-up instead of silently meaning False."""
    raw = env.str(name, default="").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off: {raw!r}")


DEBUG = _bool("DEBUG", False)
SECRET_KEY = _read("SECRET_KEY", env.str, "dev-insecure-change-me" if DEBUG else None)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
ALLOWED_HOSTS = _read("ALLOWED_HOSTS", env.list, ["127.0.0.1", "localhost", "testserver"])
SITE_URL = _url("SITE_URL", "http://127.0.0.1:8000", {"http", "https"}).rstrip("/")
CSRF_TRUSTED_ORIGINS = [SITE_URL]

VAR_DIR.mkdir(exist_ok=True)
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql"}


def _database_url(name):
    """A PostgreSQL URL, or None when unset; anything else (SQLite included) stops start-up."""
    value = _read(name, env.str, None)
    if value is not None and value.split("://", 1)[0] not in POSTGRES_SCHEMES:
        raise ImproperlyConfigured(
            f"{name} must be a PostgreSQL URL (postgres://user:password@host:5432/name), the only database PoV "
            f"runs on: {_redact(value)!r}. Unset DATABASE_URL to use the embedded PostgreSQL under var/."
        )
    return _url(name, None, POSTGRES_SCHEMES)


def _url_config(name, url, parse):
    """`parse(url)` (env.db_url_config or env.email_url_config); a malformed URL stops start-up, naming it."""
    try:
        return parse(url)
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"{name} is malformed ({exc}): {_redact(url)!r}") from exc


DATABASE_URL = _database_url("DATABASE_URL")
# The role that owns the tables and runs migrations; the application's own role owns none and is subject
# to row-level security (tenants/rls.py). Unset: DATABASE_URL's role does both, which the start-up check
# refuses when that role is privileged.
DATABASE_OWNER_URL = _database_url("DATABASE_OWNER_URL")
if DATABASE_URL is None:
    # make run, make test: the embedded PostgreSQL under var/ (pov/localdb.py), started when not running.
    from pov import localdb

    _embedded = localdb.default()
    if _embedded.ensure_running():
        print(f"Started the embedded PostgreSQL ({_embedded.data}).", file=sys.stderr)
    DATABASE_URL, DATABASE_OWNER_URL = _embedded.app_url, _embedded.owner_url
DATABASES = {"default": _url_config("DATABASE_URL", DATABASE_URL, env.db_url_config)}
DATABASES["default"]["CONN_MAX_AGE"] = _positive("CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASE_OWNER = None
if DATABASE_OWNER_URL:
    _owner = _url_config("DATABASE_OWNER_URL", DATABASE_OWNER_URL, env.db_url_config)
    DATABASE_OWNER = {key: _owner[key] for key in ("USER", "PASSWORD", "HOST", "PORT")}
# For one-off maintenance only: let the application connect as a superuser, a role with BYPASSRLS or the
# tables' owner, which row-level security does not hold back (tenants/checks.py refuses it otherwise).
DATABASE_ALLOW_PRIVILEGED_ROLE = _bool("DATABASE_ALLOW_PRIVILEGED_ROLE", False)
if _bool("DATABASE_PREPARED_STATEMENTS", True):
    # Parameters bound by the server, and a statement run a few times on a connection is prepared:
    # PostgreSQL then plans it once instead of on every request. Off behind a pooler in transaction mode.
    DATABASES["default"]["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}

REDIS_URL = _url("REDIS_URL", None, {"redis", "rediss", "unix"})

INSTALLED_APPS = [
    "pov.apps.PovAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "csp",
    "axes",
    "tenants",
    "engagement",
    "metrics",
    "notify",
    "intake",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tenants.middleware.TenantScopeMiddleware",
    # Last, as django-axes asks: turns a refused sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "pov.urls"
CSRF_FAILURE_VIEW = "pov.api_errors.csrf_failure"
WSGI_APPLICATION = "pov.wsgi.application"
AUTH_USER_MODEL = "tenants.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.tenant",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
# Before `collectstatic` has run (tests, a first start) fall back to unhashed names instead of failing.
WHITENOISE_MANIFEST_STRICT = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

EMAIL_URL = _url(
    "EMAIL_URL",
    "consolemail://" if DEBUG else None,
    {"smtp", "smtps", "smtp+tls", "smtp+ssl", "consolemail", "filemail", "memorymail", "dummymail"},
)
if EMAIL_URL is None:
    raise ImproperlyConfigured("EMAIL_URL is required when DEBUG is off (e.g. smtp://user:pass@host:587)")
_email = _url_config("EMAIL_URL", EMAIL_URL, env.email_url_config)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "localhost")
EMAIL_PORT = _email.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = _read("DEFAULT_FROM_EMAIL", env.str, "PoV <pov@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Celery. Embedded default: a filesystem broker under var/ so `make run` needs no Redis.
CELERY_QUEUE = _read("CELERY_QUEUE", env.str, "pov")
CELERY_DATA_DIR = VAR_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Above the longest task's hard time limit, so a late-acked task is not redelivered while it runs.
        "visibility_timeout": 3600,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        # Publishing tries the broker once: kombu's default retries until broker_connection_timeout (2 s),
        # which every write would wait while Redis is down. Workers reconnect with their own retry policy.
        "max_retries": 0,
    }
else:
    CELERY_BROKER_URL = "filesystem://"
    for folder in ("queue", "processed", "control"):
        (CELERY_DATA_DIR / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DATA_DIR / "queue"),
        "data_folder_out": str(CELERY_DATA_DIR / "queue"),
        "processed_folder": str(CELERY_DATA_DIR / "processed"),
        "control_folder": str(CELERY_DATA_DIR / "control"),
        "store_processed": False,
    }
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
STALLED_SCAN_SECONDS = _positive("STALLED_SCAN_SECONDS", 300)
OUTBOX_DRAIN_SECONDS = _positive("OUTBOX_DRAIN_SECONDS", 30)
# Metric rollups are recomputed at most once per this many seconds per tenant after writes.
METRICS_DEBOUNCE_SECONDS = _positive("METRICS_DEBOUNCE_SECONDS", 60)
# Queues by kind, so one slow kind cannot starve another (README, "Workers and queues"): the record's
# drain and the stalled scan on CELERY_QUEUE itself, metrics, mail and outgoing HTTP on their own.
CELERY_QUEUES = {
    "record": CELERY_QUEUE,
    **{kind: f"{CELERY_QUEUE}.{kind}" for kind in ("metrics", "mail", "http", "import")},
}
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in CELERY_QUEUES.values()]
CELERY_TASK_DEFAULT_QUEUE = CELERY_QUEUES["record"]
CELERY_TASK_ROUTES = {
    "metrics.tasks.recompute_metrics": {"queue": CELERY_QUEUES["metrics"]},
    "metrics.tasks.reconcile_metrics": {"queue": CELERY_QUEUES["metrics"]},
    "notify.digest_tasks.*": {"queue": CELERY_QUEUES["mail"]},
    "notify.confirmation_tasks.*": {"queue": CELERY_QUEUES["mail"]},
    "notify.webhook_tasks.*": {"queue": CELERY_QUEUES["http"]},
    "engagement.tasks.run_import": {"queue": CELERY_QUEUES["import"]},
}
# Webhook endpoints may not resolve to loopback/private/link-local addresses unless this is on (dev, tests).
WEBHOOKS_ALLOW_PRIVATE_NETWORKS = _bool("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", DEBUG)
CELERY_BEAT_SCHEDULE = {
    # Catches up whatever an on-commit enqueue could not deliver (broker down, worker stopped).
    "outbox-drain": {"task": "engagement.tasks.drain_outbox_all", "schedule": float(OUTBOX_DRAIN_SECONDS)},
    "stalled-scan": {"task": "metrics.tasks.scan_stalled_all", "schedule": float(STALLED_SCAN_SECONDS)},
    # Stale rollups whose task was lost, and each tenant's first recompute of its day (the nightly snapshot).
    "metrics-reconcile": {"task": "metrics.tasks.reconcile_metrics", "schedule": 60.0},
    # Value confirmations whose on-commit send was lost, or whose SMTP retries outlived the task's.
    "value-confirmations": {"task": "notify.confirmation_tasks.send_confirmations_all", "schedule": 600.0},
    # On the hour (UTC): 08:00-08:59 local time holds exactly one run in every time zone.
    "digests": {"task": "notify.digest_tasks.send_due_digests", "schedule": crontab(minute=0)},
    # Webhook retries that came due, and deliveries whose on-commit enqueue was lost.
    "webhook-retries": {"task": "notify.webhook_tasks.retry_webhooks", "schedule": 60.0},
    # Housekeeping: outbox rows handled a week ago, idempotency keys past their 24 h, connection logs past 30 days.
    "outbox-purge": {"task": "engagement.tasks.purge_outbox_all", "schedule": 3600.0},
    "idempotency-purge": {"task": "tenants.tasks.purge_idempotency_keys_all", "schedule": 3600.0},
    "connection-log-purge": {"task": "intake.tasks.purge_arrivals_all", "schedule": 3600.0},
    # Imports whose task a broker restart lost, or whose worker died: queued again where they stopped.
    "imports-resume": {"task": "engagement.tasks.resume_imports_all", "schedule": 120.0},
}


def _rate(name, default):
    """'600/minute' -> (600, 60)."""
    value = _read(name, env.str, default)
    count, _, unit = value.partition("/")
    seconds = {"second": 1, "s": 1, "minute": 60, "m": 60, "min": 60, "hour": 3600, "h": 3600}.get(unit)
    if not count.isdigit() or seconds is None or int(count) < 1:
        raise ImproperlyConfigured(f"{name} must look like 600/minute (per second, minute or hour): {value!r}")
    return int(count), seconds


API_RATE_LIMIT = _rate("API_RATE_LIMIT", "3000/minute")
# Unknown API keys per client address; past it the address gets 429 until the window ends.
API_BAD_KEY_LIMIT = _rate("API_BAD_KEY_LIMIT", "30/minute")
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.api_base.ApiKeyAuthentication",
        "tenants.api_base.MemberSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.api_base.TenantScopePermission"],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.api_base.KeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["pov.api_errors.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "EXCEPTION_HANDLER": "pov.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PoV API",
    "DESCRIPTION": "Point of sale to point of value: purchases, milestones, engagements and metrics.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two request fields are called "kind": each enum gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "ImportKindEnum": "engagement.import_api.IMPORT_KINDS",
        "ConnectionKindEnum": "intake.api.CONNECTION_KINDS",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pov.api_schema_hooks.add_error_responses",
    ],
}

# Transport security. "Served over HTTPS" is what SITE_URL says; plain-HTTP development (DEBUG, or an
# http:// SITE_URL such as the test suite's) keeps working without certificates.
SERVED_OVER_HTTPS = not DEBUG and SITE_URL.startswith("https://")
SECURE_SSL_REDIRECT = _bool("SECURE_SSL_REDIRECT", SERVED_OVER_HTTPS)
# Load balancers probe the health endpoint over plain HTTP; a redirect would read as "down".
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if SERVED_OVER_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = SERVED_OVER_HTTPS
CSRF_COOKIE_SECURE = SERVED_OVER_HTTPS

# TLS usually ends at a reverse proxy: with TRUSTED_PROXY_COUNT proxies in front (each appending to
# X-Forwarded-For and setting X-Forwarded-Proto), trust those headers; with none, nobody can forge them.
TRUSTED_PROXY_COUNT = _positive("TRUSTED_PROXY_COUNT", 0, minimum=0)
if TRUSTED_PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy (django-csp): only our own files run or style a page; no inline code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    },
}

# Sign-in throttling (django-axes): failures are counted per username *and* client address together, so
# an attacker can neither lock a person out from elsewhere nor try one password on many accounts at once.
AUTHENTICATION_BACKENDS = [
    "tenants.forms.SignInThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "tenants.views.locked_out"
AXES_CLIENT_IP_CALLABLE = "tenants.forms.client_ip"
# One account, however its email is capitalised.
AXES_USERNAME_CALLABLE = "tenants.forms.sign_in_name"
# Lockouts are logged either way; the start-up banner and per-login lines would only add noise.
AXES_VERBOSE = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
if not REDIS_URL:
    # The filesystem broker has no host; kombu warns about that on every connection.
    LOGGING["loggers"]["kombu.connection"] = {"level": "ERROR"}
