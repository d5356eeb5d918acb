import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection

from bench.processes import stop_process
from tenants.actors import Actor
from tenants.rls import as_owner
from tenants.scoping import tenant_scope
from tests.factories import MemberFactory, TenantFactory

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("POV_REQUIRE_SERVICES") == "1"


def _reachable(url, default_port):
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_sessionstart(session):
    """With POV_REQUIRE_SERVICES=1, a missing PostgreSQL or Redis fails the run instead of skipping."""
    if not REQUIRE_SERVICES:
        return
    problems = []
    if not _reachable(settings.DATABASE_URL, 5432):
        problems.append(f"PostgreSQL at {settings.DATABASE_URL} is unreachable")
    if not settings.REDIS_URL:
        problems.append("REDIS_URL is unset")
    elif not _reachable(settings.REDIS_URL, 6379):
        problems.append(f"Redis at {settings.REDIS_URL} is unreachable")
    if problems:
        pytest.exit("POV_REQUIRE_SERVICES=1 but " + "; ".join(problems), returncode=3)


def pytest_sessionfinish(session, exitstatus):
    """Drop what this run left on its own queue (a drain nobody consumed), in Redis or under var/."""
    from pov.celery import app

    try:
        with app.connection_for_write() as conn:
            for queue in settings.CELERY_QUEUES.values():
                conn.default_channel.queue_purge(queue)
    except Exception:  # noqa: BLE001 - best effort: the queue may not exist or the broker be gone
        pass


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    """pytest-django's set-up, run as the table owner (DATABASE_OWNER_URL): the application's role
    owns no tables, so it can neither create the test database nor migrate it."""
    from django.test.utils import setup_databases, teardown_databases

    verbosity = request.config.option.verbose
    with django_db_blocker.unblock(), as_owner() as owner:
        db_cfg = setup_databases(verbosity=verbosity, interactive=False)
        _let_tests_empty_tables(owner)
    yield
    with django_db_blocker.unblock(), as_owner():
        teardown_databases(db_cfg, verbosity=verbosity)


def _let_tests_empty_tables(owner):
    """Transactional tests empty every table between tests with TRUNCATE, which the application's
    role is never granted outside the test database."""
    app = getattr(owner, "pov_application_login", None)
    if app:
        with owner.cursor() as cursor:
            cursor.execute(f"GRANT TRUNCATE ON ALL TABLES IN SCHEMA public TO {owner.ops.quote_name(app['USER'])}")


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme", name="Acme")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(slug="charlie", name="Charlie Corp")


@pytest.fixture
def scoped(tenant):
    """Run the test inside the tenant's scope."""
    with tenant_scope(tenant):
        yield tenant


@pytest.fixture
def actor():
    return Actor.system("tests")


@pytest.fixture
def owner_member(tenant):
    return MemberFactory(tenant=tenant, user__email="owner@acme.test", role="owner")


# A real Celery worker ----------------------------------------------------------------------------


def on_test_database(url):
    """`url` pointing at the test database this process uses."""
    return urlparse(url)._replace(path=f"/{settings.DATABASES['default']['NAME']}").geturl()


def database_env_of_tests():
    """The database settings of a subprocess that should use the test database as this process does."""
    return {
        "DATABASE_URL": on_test_database(settings.DATABASE_URL),
        "DATABASE_OWNER_URL": on_test_database(settings.DATABASE_OWNER_URL or settings.DATABASE_URL),
    }


class WorkerProcess:
    def __init__(self):
        self.proc = None
        self.log = ROOT / "var" / "test-worker.log"

    def start(self, extra_env=None):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "pov.settings_test",
            **database_env_of_tests(),
            "CELERY_QUEUE": settings.CELERY_QUEUE,
            **(extra_env or {}),
        }
        # No -Q: the worker consumes every queue of its CELERY_QUEUE (settings.CELERY_TASK_QUEUES).
        cmd = [
            sys.executable, "-m", "celery", "-A", "pov", "worker", "--pool=solo", "--loglevel=INFO",
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        ]  # fmt: skip
        self.log.parent.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        return self

    def stop(self):
        stop_process(self.proc)
        self.proc = None


@pytest.fixture
def celery_worker(transactional_db):
    """A real worker process on the configured broker, reading the test database."""
    worker = WorkerProcess().start()
    yield worker
    worker.stop()


@pytest.fixture
def fast_worker(transactional_db):
    """A real worker whose metric rollups follow writes after one second instead of a minute."""
    worker = WorkerProcess().start({"METRICS_DEBOUNCE_SECONDS": "1"})
    yield worker
    worker.stop()


def run_concurrently(work, times=2, timeout=60):
    """Run `work()` in `times` threads at once, each on its own database connection (closed at the end);
    returns their results, or raises the first error one of them met."""
    start, results, errors = threading.Barrier(times), [], []

    def runner():
        try:
            start.wait(timeout=10)
            results.append(work())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a concurrent run did not finish"
    if errors:
        raise errors[0]
    return results


def wait_for(predicate, timeout=30.0, interval=0.2):
    """Poll until `predicate()` is truthy; returns its value or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s: {predicate.__doc__ or predicate}")


@pytest.fixture
def login(client):
    """Sign the test client in as a member and return the client."""

    def as_member(member):
        # The factory sets the password after saving and does not save again; the session must carry
        # the hash of the stored password, or the next request signs the user out.
        member.user.refresh_from_db()
        client.force_login(member.user)
        return client

    return as_member


# The slowest tests (a few minutes of fuzzing, a minute of load, killed processes, a benchmark run) first:
# with `make test`'s two processes, the other one meanwhile runs the many short tests, and no long test is
# left to run alone at the end.
SLOW_FIRST = ("tests/api_fuzz/", "tests/load/", "tests/faults/", "tests/bench/")


def pytest_collection_modifyitems(session, config, items):
    def slow_first(item):
        path = item.nodeid
        return next((i for i, prefix in enumerate(SLOW_FIRST) if path.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=slow_first)  # stable: the order within each part stays the collected one
