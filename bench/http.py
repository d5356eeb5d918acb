"""The web side of the benchmark: gunicorn on a free loopback port, and concurrent keep-alive clients.

The server runs `pov.wsgi` as production does (gunicorn, sync workers, DEBUG off) against the
benchmark's database and broker, with the API rate limit lifted so the clients measure the code,
not the throttle. Clients are threads, each with its own `http.client` connection, reopened when
the server closes it.
"""

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

from django.conf import settings

from bench.processes import start_process, stop_process

WORKERS = 2
START_TIMEOUT = 60
REQUEST_TIMEOUT = 300
BENCH_QUEUE = "pov-bench"


def database_url():
    """The URL of the database this process uses (under pytest: the test database)."""
    parsed = urlparse(settings.DATABASE_URL)
    return parsed._replace(path=f"/{settings.DATABASES['default']['NAME']}").geturl()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn with WORKERS sync workers on 127.0.0.1; `stop` ends it (and only it)."""

    def __init__(self, log_path, workers=WORKERS):
        self.log_path, self.workers = log_path, workers
        self.port = free_port()
        self.proc = None

    def env(self):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "pov.settings",
            "DATABASE_URL": database_url(),
            "DEBUG": "0",
            "SECRET_KEY": settings.SECRET_KEY,  # the same key, so sessions made here are valid there
            "EMAIL_URL": "consolemail://",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "API_RATE_LIMIT": "100000000/minute",
            "CELERY_QUEUE": BENCH_QUEUE,
        }
        if settings.REDIS_URL:
            env["REDIS_URL"] = settings.REDIS_URL
        return env

    def collect_static(self):
        """As the production image does (gzip only): DEBUG off serves hashed files from the manifest."""
        cmd = [sys.executable, "-m", "bench.collectstatic_gzip"]
        subprocess.run(cmd, cwd=settings.BASE_DIR, env=self.env(), check=True)  # noqa: S603 - our own arguments

    def start(self):
        self.collect_static()
        cmd = [
            sys.executable, "-m", "gunicorn", "pov.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers), "--timeout", "300", "--graceful-timeout", "10",
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = start_process(cmd, cwd=settings.BASE_DIR, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self.log_path}")
            try:
                status, _, _ = Connection(self.port).request("GET", "/healthz")
                if status in (200, 503):
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {START_TIMEOUT}s; see {self.log_path}")

    def stop(self):
        stop_process(self.proc)
        self.proc = None


class Connection:
    """One keep-alive connection to the server; reconnects when the server closed it."""

    def __init__(self, port, headers=None):
        self.port = port
        self.headers = headers or {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)

    def request(self, method, path, body=None, headers=None):
        """(status, body bytes, seconds)."""
        all_headers = {**self.headers, **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        for attempt in (1, 2):
            start = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                response = self.conn.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - start
                if response.will_close:
                    self.conn.close()
                return response.status, data, elapsed
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # a stale kept-alive socket: retry once on a fresh one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        self.conn.close()


@dataclass
class Load:
    """What concurrent clients measured: wall time, per-request latencies, failures."""

    seconds: float = 0.0
    latencies: list = field(default_factory=list)
    failures: list = field(default_factory=list)


def run_clients(port, jobs, check, headers=None, progress=None):
    """Each client (thread) sends its list of (method, path, body) in order; all start together.

    `check(status, body)` returns an error message or None. Returns a Load.
    """
    load, lock = Load(), threading.Lock()
    barrier = threading.Barrier(len(jobs) + 1)

    def client(requests):
        conn = Connection(port, headers)
        latencies, failures = [], []
        barrier.wait()
        try:
            for method, path, body in requests:
                status, data, elapsed = conn.request(method, path, body)
                latencies.append(elapsed)
                problem = check(status, data)
                if problem:
                    failures.append(problem)
                if progress:
                    progress(1)
        except Exception as exc:  # noqa: BLE001 - reported as the scenario's failure
            failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        with lock:
            load.latencies += latencies
            load.failures += failures

    threads = [threading.Thread(target=client, args=(requests,), daemon=True) for requests in jobs]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    load.seconds = time.perf_counter() - start
    return load
