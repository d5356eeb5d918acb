"""`make load`: a minute of mixed API and page traffic against gunicorn and a real Celery worker gives no
5xx and no connection error, and the database holds exactly the writes answered 2xx (none lost, none
extra). Also: the verdict's checks each catch what they guard, the run leaves no process and no
database behind (also when it is stopped), and without PostgreSQL it stops with a clear message.
Rates and latencies are printed by `make load`, never asserted here (DESIGN.md: limits belong to bench).
"""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from django.conf import settings

from loadtest.verdict import WRITE_TABLES, acknowledged, compare_writes, problems, traffic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_TIMEOUT = 480  # setup + 60 s of load + the users' stop timeout, with room for a busy machine
STOP_TIMEOUT = 90
KINDS = {
    "api_purchase", "api_event", "api_customer", "api_batch", "api_engagements", "api_engagement",
    "api_metrics_summary", "page_login_form", "page_login", "page_overview", "page_engagements",
    "page_engagement", "page_alerts", "page_note",
}  # fmt: skip
needs_services = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (set REDIS_URL)")


def _owner_url():
    return settings.DATABASE_OWNER_URL or settings.DATABASE_URL


def _maintenance(sql, params=()):
    url = urlparse(_owner_url())._replace(scheme="postgresql", path="/postgres").geturl()
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall() if sql.lstrip().startswith("SELECT") else conn.execute(sql)


def _env():
    """The caller's environment without what the test settings added, pointed at the real services."""
    added = {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "EMAIL_URL", "CELERY_QUEUE", "WEBHOOKS_ALLOW_PRIVATE_NETWORKS"}
    env = {k: v for k, v in os.environ.items() if k not in added}
    env.update(DATABASE_URL=settings.DATABASE_URL, DATABASE_OWNER_URL=_owner_url(), DEBUG="1")
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    return env


def _group_alive(pgid, grace=15.0):
    """Whether a process of the group still runs after `grace` seconds. Zombies do not count: a child
    killed after its parent exited is reparented to PID 1, which may never reap it in a container."""
    deadline = time.monotonic() + grace
    while _running_in_group(pgid):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.2)
    return False


def _running_in_group(pgid):
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its closing parenthesis.
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # the process ended while we looked
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


@contextmanager
def load_run(*args):
    """`python -m loadtest.run` in a process group of its own. Whatever happens, the run is stopped
    (SIGTERM lets it stop its children and drop its database; then SIGKILL to the group) and its
    database dropped."""
    cmd = [sys.executable, "-m", "loadtest.run", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):  # then it is killed below
                proc.wait(timeout=STOP_TIMEOUT)
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _maintenance(f'DROP DATABASE IF EXISTS "pov_load_{proc.pid}" WITH (FORCE)')


def _database_exists(name):
    return bool(_maintenance("SELECT 1 FROM pg_database WHERE datname = %s", [name]))


@needs_services
@pytest.mark.services
@pytest.mark.timeout(RUN_TIMEOUT + STOP_TIMEOUT + 60)
def test_a_minute_of_mixed_traffic_gives_no_5xx_and_loses_no_write(tmp_path):
    output = tmp_path / "latest.json"
    with load_run("--seconds", "60", "--users", "20", "--output", str(output)) as proc:
        log, _ = proc.communicate(timeout=RUN_TIMEOUT)
        assert proc.returncode == 0, log[-4000:]
    report = json.loads(output.read_text())

    assert report["ok"] and report["problems"] == [], report["problems"]
    assert set(report["kinds"]) == KINDS, "every kind of traffic ran"
    for kind, stats in report["kinds"].items():
        assert stats["requests"] > 0, kind
        failed = {s: n for s, n in stats["statuses"].items() if s == "0" or int(s) >= 500}
        assert not failed, f"{kind}: {failed}"
    for table in WRITE_TABLES:
        row = report["writes"][table]
        assert row["acknowledged"] > 0, table
        assert row["acknowledged"] == row["stored"] == row["rows_added"], (table, row)
    assert report["seconds"] >= 55, "the load lasted the minute"
    assert "PASSED" in log
    # Nothing is left behind: no process of the run, no database.
    assert not _group_alive(proc.pid)
    assert not _database_exists(f"pov_load_{proc.pid}")


@needs_services
@pytest.mark.services
@pytest.mark.timeout(STOP_TIMEOUT + 120)
def test_a_stopped_run_stops_its_processes_and_drops_its_database():
    with load_run("--seconds", "600", "--users", "2") as proc:
        for line in proc.stdout:  # wait until the load is on: gunicorn and the worker are running
            if "locust:" in line:
                break
        database = f"pov_load_{proc.pid}"
        assert _database_exists(database)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=STOP_TIMEOUT)
        proc.stdout.read()
        assert not _group_alive(proc.pid), "gunicorn, the worker or locust outlived the run"
        assert not _database_exists(database)


def test_without_postgresql_it_stops_with_a_clear_message(tmp_path):
    env = {**_env(), "DATABASE_URL": f"sqlite:///{tmp_path / 'load.sqlite3'}"}
    env.pop("DATABASE_OWNER_URL", None)
    done = subprocess.run([sys.executable, "-m", "loadtest.run"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "make load needs PostgreSQL: DATABASE_URL must be a postgres:// URL" in done.stderr
    assert "Traceback" not in done.stderr


# The verdict ------------------------------------------------------------------------------------------


def request(kind, status, start=0.0, ms=10.0):
    return {"t": "request", "kind": kind, "method": "POST", "status": status, "ms": ms, "start": start, "error": None}


def clean_run():
    """Two purchases, two events and a note, each acknowledged and stored once."""
    requests = [request("api_purchase", 201, 0.0), request("api_purchase", 201, 1.0), request("api_event", 201, 2.0),
                request("api_event", 201, 3.0), request("page_note", 302, 4.0, ms=1000.0)]  # fmt: skip
    acks = [
        {"t": "ack", "table": "purchase", "ids": ["r-p1", "r-p2"]},
        {"t": "ack", "table": "customer", "ids": ["r-c1", "r-c2"]},
        {"t": "ack", "table": "event", "ids": ["r-e1", "r-e2"]},
        {"t": "ack", "table": "note", "ids": ["r-n1"]},
    ]
    stored = {
        "purchase": {"ids": {"r-p1", "r-p2"}, "rows_added": 2},
        "engagement": {"ids": {"r-p1", "r-p2"}, "rows_added": 2},
        "customer": {"ids": {"r-c1", "r-c2"}, "rows_added": 2},
        "event": {"ids": {"r-e1", "r-e2"}, "rows_added": 2},
        "note": {"ids": {"r-n1"}, "rows_added": 1},
    }
    return requests, acks, stored


def judge(requests, acks, stored):
    return problems(traffic(requests), compare_writes(acknowledged(acks), stored))


def test_a_clean_run_passes():
    assert judge(*clean_run()) == []


def test_traffic_counts_rate_and_percentiles_per_kind():
    requests, _, _ = clean_run()
    summary = traffic(requests)
    assert summary["requests"] == 5 and summary["seconds"] == 5.0  # from the first start to the last answer
    assert summary["rate"] == 1.0
    assert summary["kinds"]["api_purchase"] == {
        "requests": 2, "rate": 0.4, "p50_ms": 10.0, "p95_ms": 10.0, "statuses": {"201": 2},
    }  # fmt: skip
    assert summary["p95_ms"] == 1000.0


def test_a_5xx_fails_the_run():
    requests, acks, stored = clean_run()
    requests.append(request("api_event", 500, 2.5))
    assert judge(requests, acks, stored) == ["1 api_event request(s) answered 500"]


def test_a_request_without_answer_fails_the_run():
    requests, acks, stored = clean_run()
    requests.append(request("page_overview", 0, 2.5))
    assert judge(requests, acks, stored) == ["1 page_overview request(s) got no answer (connection error)"]


def test_an_acknowledged_write_missing_from_the_database_fails_the_run():
    requests, acks, stored = clean_run()
    stored["event"] = {"ids": {"r-e1"}, "rows_added": 1}
    found = judge(requests, acks, stored)
    assert "event: acknowledged but not stored, e.g. ['r-e2']" in found
    assert "event: 2 acknowledged, 1 stored with the run's ids, 1 rows added" in found


def test_a_stored_write_that_was_never_acknowledged_fails_the_run():
    requests, acks, stored = clean_run()
    stored["purchase"] = {"ids": {"r-p1", "r-p2", "r-p3"}, "rows_added": 3}
    assert "purchase: stored but never acknowledged, e.g. ['r-p3']" in judge(requests, acks, stored)


def test_a_write_stored_twice_fails_the_run():
    requests, acks, stored = clean_run()
    stored["note"]["rows_added"] = 2  # the same id twice: one id, two rows
    assert judge(requests, acks, stored) == ["note: 1 acknowledged, 1 stored with the run's ids, 2 rows added"]


def test_a_kind_of_write_that_never_succeeded_fails_the_run():
    requests, acks, stored = clean_run()
    acks = [a for a in acks if a["table"] != "note"]
    stored["note"] = {"ids": set(), "rows_added": 0}
    assert judge(requests, acks, stored) == ["no note write was acknowledged, so none was checked"]
