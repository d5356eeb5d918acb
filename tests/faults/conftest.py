"""What the fault tests start, break and start again themselves: a private redis-server, the app under
gunicorn, real Celery workers and a private PostgreSQL cluster. The machine's shared PostgreSQL and
Redis are never stopped. Every process is ended (and the private cluster dropped) in teardown,
whatever the test did to it, and every wait has a deadline, so a fault never hangs the run."""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

import pytest
from django.conf import settings

from bench.processes import stop_process
from pov import localdb
from pov.celery import app as celery_app
from tests.conftest import REQUIRE_SERVICES, ROOT, WorkerProcess, database_env_of_tests, wait_for

LOG_DIR = ROOT / "var" / "faults"
# A request slower than this counts as hung.
REQUEST_TIMEOUT = 20
START_TIMEOUT = 60
COMMAND_TIMEOUT = 120
# The production settings with DEBUG off, except that static files are served from their source folders:
# `collectstatic` (hashing and compressing every file) takes minutes on a busy two-core machine.
APP_SETTINGS = "pov.settings_test"


def require(available, reason):
    """Skip when a tool is missing, or fail when the run demands every service (POV_REQUIRE_SERVICES=1)."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(reason)
    pytest.skip(reason)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_path(name):
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / f"{name}-{os.getpid()}.log"


def tail(path, size=4000):
    """The end of a log, for failure messages."""
    if not path.exists():
        return "(no log)"
    return path.read_bytes()[-size:].decode(errors="replace")


# HTTP -------------------------------------------------------------------------------------------


@dataclass(repr=False)
class Reply:
    status: int
    body: bytes
    headers: dict
    seconds: float

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} after {self.seconds:.2f}s: {self.body[:300]!r}>"


@dataclass
class Client:
    """One caller of the app: a fresh connection per request (a gunicorn worker may have died meanwhile),
    the session cookie kept between requests, and a timeout so a hung request fails the test."""

    port: int
    headers: dict = field(default_factory=dict)
    cookies: dict = field(default_factory=dict)

    def request(self, method, path, body=None, headers=None):
        all_headers = {**self.headers, **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if isinstance(body, dict):
            body = json.dumps(body)
            all_headers.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        start = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            self.cookies.update({name: morsel.value for name, morsel in SimpleCookie(header).items()})
        return Reply(response.status, data, dict(response.headers), time.monotonic() - start)

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body, headers=None):
        return self.request("POST", path, body, headers)


def api_client(port, key):
    return Client(port, headers={"Authorization": f"Bearer {key}"})


def sign_in(port, email, password):
    """A browser's sign-in: the form's CSRF token, then the credentials; returns the signed-in client."""
    client = Client(port)
    form = client.get("/accounts/login/")
    assert form.status == 200, f"sign-in page: {form}"
    token = client.cookies["csrftoken"]
    body = f"csrfmiddlewaretoken={token}&username={email}&password={password}"
    answer = client.post("/accounts/login/", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 302 and "sessionid" in client.cookies, f"sign-in refused: {answer}"
    return client


# Processes --------------------------------------------------------------------------------------


def _ready_or_stopped(server, **wait):
    """Wait until the server answers; a server that never does is stopped before the test fails."""
    try:
        wait_for(server.answers, **wait)
    except BaseException:
        server.stop()
        raise


class RedisServer:
    """A redis-server of the test's own on a fixed loopback port. Stopping it is a broker outage;
    starting it again brings back an empty broker on the same address (nothing is saved to disk)."""

    def __init__(self, workdir):
        self.port = free_port()
        self.workdir = workdir
        self.log = log_path(f"redis-{self.port}")
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        cmd = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _ready_or_stopped(self, timeout=10, interval=0.05)
        return self

    def answers(self):
        """redis-server answers PING."""
        if self.proc.poll() is not None:
            pytest.fail(f"redis-server exited with {self.proc.returncode}:\n{tail(self.log)}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        stop_process(self.proc, timeout=10)
        self.proc = None


class AppServer:
    """The app as production runs it: gunicorn with two sync workers, DEBUG off, on a free loopback port,
    against the database and broker given. `stop` ends it (and only it)."""

    def __init__(self, *, database, redis_url, name="app"):
        self.database, self.redis_url = database, redis_url  # {"DATABASE_URL": ..., "DATABASE_OWNER_URL": ...}
        self.port = free_port()
        self.log = log_path(f"{name}-{self.port}")
        self.proc = None

    def env(self):
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": APP_SETTINGS,
            **self.database,
            "REDIS_URL": self.redis_url,
            "DEBUG": "0",
            "SECRET_KEY": settings.SECRET_KEY,
            "EMAIL_URL": "consolemail://",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SITE_URL": f"http://127.0.0.1:{self.port}",
            "API_RATE_LIMIT": "1000000/minute",
            "CELERY_QUEUE": settings.CELERY_QUEUE,
        }

    def start(self):
        cmd = [
            sys.executable, "-m", "gunicorn", "pov.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
            "--workers", "2", "--timeout", "60", "--graceful-timeout", "5",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        _ready_or_stopped(self, timeout=START_TIMEOUT, interval=0.2)
        return self

    def answers(self):
        """gunicorn answers /healthz (healthy or not)."""
        if self.proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {self.proc.returncode}:\n{tail(self.log)}")
        try:
            return Client(self.port).get("/healthz").status in (200, 503)
        except OSError:
            return False

    def stop(self):
        stop_process(self.proc, timeout=10)
        self.proc = None


def start_worker(redis_url, **extra_env):
    """A real Celery worker on the given broker, reading the test database, metrics debounced by 1 s."""
    return WorkerProcess().start({"REDIS_URL": redis_url, "METRICS_DEBOUNCE_SECONDS": "1", **extra_env})


@contextmanager
def broker_at(url):
    """Tasks this process sends go to the broker at `url` (the private Redis) until the block ends."""
    original = celery_app.conf.broker_url
    celery_app.conf.broker_url = url
    _forget_broker_connections()
    try:
        yield url
    finally:
        celery_app.conf.broker_url = original
        _forget_broker_connections()


def _forget_broker_connections():
    # The app caches its producer pool for the broker it first used; forget it so the next publish
    # connects to whatever broker_url says now.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def private_redis(tmp_path):
    require(shutil.which("redis-server"), "needs redis-server")
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def test_database(transactional_db):
    """The database settings of the test database, for processes the test starts."""
    return database_env_of_tests()


# A private PostgreSQL cluster ---------------------------------------------------------------------


def _run(cmd, env=None, timeout=COMMAND_TIMEOUT):
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


class PrivateCluster:
    """An embedded PostgreSQL of the test's own (pov.localdb, in a temporary folder), so it can be stopped
    and restarted without touching the database other test runs use.

    `owner_url` runs migrations and set-up; `app_url` is what the app connects as: the application role,
    which owns no tables and which the first migrate creates (row-level security applies to it).
    """

    def __init__(self, folder):
        self.server = localdb.Server(folder)

    @property
    def owner_url(self):
        return self.server.owner_url

    @property
    def app_url(self):
        return self.server.app_url

    def ctl(self, action):
        if action in ("stop", "restart"):
            self.server.stop()
        if action in ("start", "restart"):
            self.server.ensure_running()

    def sql(self, statement):
        """Run one statement as the owner; returns psql's unaligned output."""
        psql = str(localdb.binaries() / "psql")
        return _run([psql, self.owner_url.replace("postgres://", "postgresql://"), "-XAtqc", statement]).strip()

    @property
    def database(self):
        return {"DATABASE_URL": self.app_url, "DATABASE_OWNER_URL": self.owner_url}

    def manage(self, *args):
        """A management command against the private database; returns its stdout."""
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": APP_SETTINGS,
            **self.database,
            "SECRET_KEY": settings.SECRET_KEY,
            "EMAIL_URL": "consolemail://",
            "DEBUG": "0",
        }
        env.pop("REDIS_URL", None)  # no broker needed; the embedded one keeps commands off the shared Redis
        return _run([sys.executable, "manage.py", *args], env=env)


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory):
    cluster = PrivateCluster(tmp_path_factory.mktemp("postgres"))
    try:
        cluster.ctl("start")
        cluster.manage("migrate", "--noinput", "-v", "0")
        yield cluster
    finally:
        cluster.ctl("stop")
