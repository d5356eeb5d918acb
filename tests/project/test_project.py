"""The project shell: /healthz, configuration from the environment, docker-compose.yml, .env.example."""

import copy
import os
import re
import subprocess
import sys

import pytest
import yaml
from django.conf import settings
from django.db import OperationalError

from tests.engagement.test_outbox import broker_unreachable

ROOT = settings.BASE_DIR
APP_SERVICES = ("web", "worker", "beat")


# /healthz ----------------------------------------------------------------------------------------


def test_healthz_is_200_when_database_and_broker_answer(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"db": "ok", "broker": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_is_503_when_the_broker_is_unreachable(client, db):
    with broker_unreachable():
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"db": "ok", "broker": "error"}
    # And healthy again once the broker is back.
    assert client.get("/healthz").status_code == 200


class _BrokenConnection:
    def cursor(self):
        raise OperationalError("database is gone")


def test_healthz_is_503_when_the_database_fails(client, db, monkeypatch):
    monkeypatch.setattr("pov.health.connection", _BrokenConnection())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"db": "error", "broker": "ok"}


# Settings: a malformed variable stops start-up, naming it ------------------------------------------

CONFIG_VARIABLES = (
    "DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "EMAIL_URL", "SITE_URL", "ALLOWED_HOSTS",
    "CONN_MAX_AGE", "DEFAULT_FROM_EMAIL", "CELERY_QUEUE", "OUTBOX_DRAIN_SECONDS", "STALLED_SCAN_SECONDS",
    "API_RATE_LIMIT", "API_BAD_KEY_LIMIT", "DATABASE_OWNER_URL", "SECURE_SSL_REDIRECT", "TRUSTED_PROXY_COUNT",
    "DATABASE_PREPARED_STATEMENTS",
)  # fmt: skip
VALID = {
    "DJANGO_SETTINGS_MODULE": "pov.settings",
    "DEBUG": "1",
    "SECRET_KEY": "a-test-secret-key",
    "EMAIL_URL": "consolemail://",
    # Never connected to: django.setup() opens no connection.
    "DATABASE_URL": "postgres://pov@db.invalid/pov",
}
UNSET = None


def _start_up(code="", **overrides):
    """`django.setup()` in a fresh interpreter with only the given configuration, then `code`."""
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(VALID)
    for name, value in overrides.items():
        if value is UNSET:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _dot_env_sets(name):
    dot_env = ROOT / ".env"
    return dot_env.exists() and re.search(rf"^\s*{name}\s*=", dot_env.read_text(), re.MULTILINE)


def test_valid_configuration_starts():
    result = _start_up()
    assert result.returncode == 0, result.stderr
    result = _start_up(DEBUG="0", SITE_URL="https://pov.example.com", EMAIL_URL="smtp://mail.example.com:25")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("variable", "overrides"),
    [
        pytest.param("DEBUG", {"DEBUG": "maybe"}, id="DEBUG=maybe"),
        pytest.param("DATABASE_URL", {"DATABASE_URL": "mysql://x"}, id="DATABASE_URL=mysql"),
        pytest.param("DATABASE_URL", {"DATABASE_URL": "postgres://pov@db:port/pov"}, id="DATABASE_URL-bad-port"),
        pytest.param("REDIS_URL", {"REDIS_URL": "notaurl"}, id="REDIS_URL=notaurl"),
        pytest.param("CONN_MAX_AGE", {"CONN_MAX_AGE": "abc"}, id="CONN_MAX_AGE=abc"),
        pytest.param("SITE_URL", {"SITE_URL": "ftp://x"}, id="SITE_URL=ftp"),
        pytest.param("SECRET_KEY", {"DEBUG": "0", "SECRET_KEY": UNSET}, id="DEBUG=0-without-SECRET_KEY"),
        pytest.param("EMAIL_URL", {"DEBUG": "0", "EMAIL_URL": UNSET}, id="DEBUG=0-without-EMAIL_URL"),
        pytest.param("EMAIL_URL", {"EMAIL_URL": "pigeon://coop"}, id="EMAIL_URL=pigeon"),
        pytest.param("EMAIL_URL", {"EMAIL_URL": "smtp://mail:port"}, id="EMAIL_URL-bad-port"),
        pytest.param("OUTBOX_DRAIN_SECONDS", {"OUTBOX_DRAIN_SECONDS": "soon"}, id="OUTBOX_DRAIN_SECONDS=soon"),
        pytest.param("API_RATE_LIMIT", {"API_RATE_LIMIT": "lots"}, id="API_RATE_LIMIT=lots"),
        pytest.param("API_BAD_KEY_LIMIT", {"API_BAD_KEY_LIMIT": "0/minute"}, id="API_BAD_KEY_LIMIT=0"),
        pytest.param("OUTBOX_DRAIN_SECONDS", {"OUTBOX_DRAIN_SECONDS": "0"}, id="OUTBOX_DRAIN_SECONDS=0"),
        pytest.param("CONN_MAX_AGE", {"CONN_MAX_AGE": "-3"}, id="CONN_MAX_AGE=-3"),
        pytest.param(
            "DATABASE_PREPARED_STATEMENTS",
            {"DATABASE_URL": "postgres://pov@db/pov", "DATABASE_PREPARED_STATEMENTS": "sometimes"},
            id="DATABASE_PREPARED_STATEMENTS=sometimes",
        ),
        pytest.param("SITE_URL", {"SITE_URL": "http://"}, id="SITE_URL-without-host"),
        pytest.param("REDIS_URL", {"REDIS_URL": "redis://h:port/0"}, id="REDIS_URL-bad-port"),
        pytest.param("DATABASE_OWNER_URL", {"DATABASE_OWNER_URL": "mysql://x"}, id="DATABASE_OWNER_URL=mysql"),
        pytest.param(
            "DATABASE_OWNER_URL",
            {"DATABASE_URL": "postgres://pov_app@db/pov", "DATABASE_OWNER_URL": "postgres://pov@db:port/pov"},
            id="DATABASE_OWNER_URL-bad-port",
        ),
    ],
)  # fmt: skip
def test_malformed_variable_stops_start_up_naming_it(variable, overrides):
    for name, value in overrides.items():
        if value is UNSET and _dot_env_sets(name):
            pytest.skip(f".env sets {name}")
    result = _start_up(**overrides)
    assert result.returncode != 0, f"started with {overrides}"
    message = result.stderr.strip().splitlines()[-1]
    # The last line is what an operator reads: the exception, naming the variable (not a traceback frame).
    assert message.startswith("django.core.exceptions.ImproperlyConfigured:"), result.stderr[-2000:]
    assert variable in message


@pytest.mark.parametrize(
    ("value", "prepared"), [(UNSET, True), ("1", True), ("0", False)], ids=["default", "on", "off"]
)
def test_prepared_statements_are_on_for_postgresql_unless_turned_off(value, prepared):
    show = "from django.conf import settings; print(settings.DATABASES['default'].get('OPTIONS', {}))"
    overrides = {"DATABASE_URL": "postgres://pov@db/pov", "DATABASE_PREPARED_STATEMENTS": value}
    if value is UNSET and _dot_env_sets("DATABASE_PREPARED_STATEMENTS"):
        pytest.skip(".env sets DATABASE_PREPARED_STATEMENTS")
    result = _start_up(show, **overrides)
    assert result.returncode == 0, result.stderr
    options = result.stdout.strip()
    assert ("'server_side_binding': True" in options and "'prepare_threshold': 5" in options) is prepared, options


@pytest.mark.parametrize("name", ["DATABASE_URL", "DATABASE_OWNER_URL"])
def test_sqlite_is_refused_naming_the_variable(name):
    result = _start_up(**{name: "sqlite:///var/pov.sqlite3"})
    assert result.returncode != 0
    assert f"{name} must be a PostgreSQL URL" in result.stderr


# docker-compose.yml ---------------------------------------------------------------------------------


def _command(service):
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def compose_problems(doc):
    """What keeps `doc` from being the production-like stack the README promises."""
    problems = []
    services = doc.get("services") or {}
    for name in ("postgres", "redis", *APP_SERVICES):
        if name not in services:
            problems.append(f"no {name} service")
        elif not (services[name].get("healthcheck") or {}).get("test"):
            problems.append(f"{name} has no healthcheck")
    for name in APP_SERVICES:
        service = services.get(name) or {}
        depends = service.get("depends_on") or {}
        for needed in ("postgres", "redis"):
            if not isinstance(depends, dict) or (depends.get(needed) or {}).get("condition") != "service_healthy":
                problems.append(f"{name} does not wait for {needed} to be healthy")
        if (service.get("environment") or {}).get("DEBUG") != "0":
            problems.append(f"{name} does not run with DEBUG '0'")
    expectations = {"web": ("gunicorn",), "worker": ("celery", " worker"), "beat": ("celery", " beat")}
    for name, words in expectations.items():
        if name in services and not all(word in _command(services[name]) for word in words):
            problems.append(f"{name} does not run {' '.join(w.strip() for w in words)}")
    return problems


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_docker_compose_runs_the_production_like_stack(compose):
    assert compose_problems(compose) == []


@pytest.mark.parametrize(
    ("break_it", "problem"),
    [
        (lambda d: d["services"].pop("beat"), "no beat service"),
        (lambda d: d["services"]["worker"].pop("healthcheck"), "worker has no healthcheck"),
        (lambda d: d["services"]["web"].update(depends_on=["postgres", "redis"]), "web does not wait for postgres"),
        (lambda d: d["services"]["beat"]["depends_on"].pop("redis"), "beat does not wait for redis"),
        (lambda d: d["services"]["web"].update(command="python manage.py runserver"), "web does not run gunicorn"),
        (lambda d: d["services"]["web"].update(environment={"DEBUG": "1"}), "web does not run with DEBUG"),
        (lambda d: d["services"]["worker"].update(command=["celery", "-A", "pov", "beat"]), "worker does not run"),
    ],
    ids=["no-beat", "no-healthcheck", "depends-without-health", "no-redis", "runserver", "debug", "wrong-command"],
)
def test_compose_check_catches_a_broken_stack(compose, break_it, problem):
    broken = copy.deepcopy(compose)
    break_it(broken)
    assert any(p.startswith(problem) for p in compose_problems(broken)), compose_problems(broken)


# .env.example ----------------------------------------------------------------------------------------

READ_CALL = re.compile(r"\b_(?:read|url|rate|bool|positive|database_url)\(\s*\"([A-Z][A-Z0-9_]*)\"")


def variables_read(settings_source):
    return sorted(set(READ_CALL.findall(settings_source)))


def documented(name, example_source):
    return re.search(rf"^#?\s*{name}=", example_source, re.MULTILINE) is not None


def test_settings_read_the_contracts_variables():
    names = variables_read((ROOT / "pov" / "settings.py").read_text())
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "EMAIL_URL", "SITE_URL"} <= set(names)
    assert "DEFAULT_FROM_EMAIL" in names


@pytest.mark.parametrize("name", variables_read((ROOT / "pov" / "settings.py").read_text()))
def test_env_example_mentions_every_variable_the_settings_read(name):
    assert documented(name, (ROOT / ".env.example").read_text())


def test_env_example_check_catches_a_missing_variable():
    source = 'A = _read("ALPHA", env.str, "")\nB = _url(\n    "BRAVO_URL", None, {"http"})\n'
    assert variables_read(source) == ["ALPHA", "BRAVO_URL"]
    assert documented("ALPHA", "# ALPHA=1\n")
    assert not documented("BRAVO_URL", "# ALPHA=1\n# BRAVO=2\n")


def test_a_malformed_url_never_shows_its_password():
    result = _start_up(DATABASE_URL="postgres://pov:s3cret-pw@db:port/pov")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr.strip().splitlines()[-1]
    assert "s3cret-pw" not in result.stderr


def test_every_beat_entry_names_a_registered_task_with_a_retry_policy():
    from pov.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"metrics.tasks.reconcile_metrics", "metrics.tasks.scan_stalled_all"} <= scheduled
    assert {"engagement.tasks.purge_outbox_all", "tenants.tasks.purge_idempotency_keys_all"} <= scheduled
    assert scheduled <= set(app.tasks), scheduled - set(app.tasks)
    recompute = app.tasks["metrics.tasks.recompute_metrics"]
    # Bounded retries with backoff on database and connection errors, as every tenant task has.
    assert recompute.max_retries == 5 and recompute.retry_backoff and OSError in recompute.autoretry_for
