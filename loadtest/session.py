"""One load run against a migrated database: the tenant, gunicorn, a Celery worker, locust, the verdict.

gunicorn is the benchmark's (bench/http.py: 2 sync workers, DEBUG off, the API rate limit lifted so
the clients measure the code, not the throttle), on this run's queue; the worker consumes that queue
with metric rollups debounced to a few seconds, so the rollups run during the load as they would in
a busy hour. The processes stop in a `finally`, in the reverse order they started, also one that was
starting when the run was stopped (bench/processes.py).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from bench.http import WORKERS, Server
from bench.processes import start_process, stop_process, stop_started
from loadtest import tenant as load_tenant
from loadtest import verdict

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "load"
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
STOP_SECONDS = 30  # locust lets a user finish its request, so every write gets its answer
SLACK_SECONDS = 120
WORKER_DEBOUNCE_SECONDS = "5"


class LoadServer(Server):
    """The benchmark's gunicorn, enqueueing on this run's queue (consumed by this run's worker)."""

    def env(self):
        return {**super().env(), "CELERY_QUEUE": settings.CELERY_QUEUE}


def start_worker(env):
    # No -Q: the worker consumes every queue of its CELERY_QUEUE (settings.CELERY_TASK_QUEUES).
    cmd = [
        sys.executable, "-m", "celery", "-A", "pov", "worker", "--pool=solo", "--loglevel=INFO",
        "--without-mingle", "--without-gossip", "--without-heartbeat",
    ]  # fmt: skip
    env = {**env, "METRICS_DEBOUNCE_SECONDS": WORKER_DEBOUNCE_SECONDS}
    with (VAR / "worker.log").open("ab") as log:
        return start_process(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


class LoadSession:
    def __init__(self, seconds, users, *, run):
        self.seconds, self.users, self.run_id = seconds, users, run
        self.results_path = VAR / f"results-{os.getpid()}.jsonl"

    def run(self):
        say(f"Creating the tenant and {load_tenant.SEED_PURCHASES} seed engagements …")
        tenant, setup = load_tenant.prepare(self.run_id)
        before = load_tenant.row_counts(tenant)
        try:
            server = LoadServer(VAR / "gunicorn.log").start()
            worker = start_worker(server.env())
            say(f"gunicorn ({WORKERS} workers) on port {server.port} and a Celery worker are up; "
                f"locust: {self.users} users for {self.seconds} s …")  # fmt: skip
            self._locust(server.port, setup)
            alive = {"gunicorn": server.proc.poll() is None, "worker": worker.poll() is None}
        finally:  # locust, the worker, gunicorn: also one that was starting when SIGTERM came
            stop_started()
            _purge_queue()
        return self._report(tenant, before, alive)

    def _locust(self, port, setup):
        self.results_path.unlink(missing_ok=True)
        cmd = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", f"http://127.0.0.1:{port}",
            "--users", str(self.users), "--spawn-rate", str(max(1, self.users // 5)),
            "--run-time", f"{self.seconds}s", "--stop-timeout", str(STOP_SECONDS),
            "--csv", str(VAR / "locust"), "--loglevel", "WARNING",
        ]  # fmt: skip
        env = {**os.environ, "POV_LOAD_SETUP": json.dumps(setup), "POV_LOAD_RESULTS": str(self.results_path)}
        with (VAR / "locust.log").open("wb") as log:
            proc = start_process(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                proc.wait(timeout=self.seconds + STOP_SECONDS + SLACK_SECONDS)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"locust did not finish in time; see {VAR / 'locust.log'}") from None
            finally:  # also when this run is being stopped (SIGTERM raises SystemExit here)
                stop_process(proc)
        if not self.results_path.exists():
            raise RuntimeError(f"locust exited with {proc.returncode} and recorded nothing; see {VAR / 'locust.log'}")

    def _report(self, tenant, before, alive):
        requests, acks = verdict.read_results(self.results_path)
        summary = verdict.traffic(requests)
        stored = load_tenant.stored_writes(tenant, self.run_id, before)
        writes = verdict.compare_writes(verdict.acknowledged(acks), stored)
        problems = verdict.problems(summary, writes)
        problems += [f"{name} had exited before the load ended" for name, up in alive.items() if not up]
        if not problems:  # kept for a look when the run failed
            self.results_path.unlink()
        return {
            "users": self.users, "planned_seconds": self.seconds, "gunicorn_workers": WORKERS,
            **summary, "writes": writes, "problems": problems, "ok": not problems,
        }  # fmt: skip


def say(text):
    print(text, file=sys.stderr, flush=True)


def _purge_queue():
    """Drop what nobody will consume any more: the run's queue goes with the run."""
    from pov.celery import app

    try:
        with app.connection_for_write() as conn:
            for queue in settings.CELERY_QUEUES.values():
                conn.default_channel.queue_delete(queue)
    except Exception:  # noqa: BLE001, S110 - best effort: the queue may not exist
        pass
