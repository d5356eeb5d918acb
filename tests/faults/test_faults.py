"""Faults against the real services: the app keeps its promises when Redis stops during ingestion,
when a worker is killed in the middle of a task, and when PostgreSQL restarts under a running app.

Each test starts its own services (a private redis-server, gunicorn, Celery workers, a private
PostgreSQL cluster) and breaks them, never the machine's shared ones.
"""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from bench import data, scratch
from bench.processes import stop_process
from engagement import imports
from engagement.models import Customer, Engagement, Event, Import, Offering, OutboxMessage, Purchase
from engagement.services import purchase_record
from engagement.tasks import drain_outbox_all
from metrics import rollups
from metrics.models import MetricRollup, RollupState
from metrics.rollups import recompute_rollups
from metrics.tasks import recompute_metrics, reconcile_metrics
from tenants.actors import Actor
from tenants.api_keys import api_key_create
from tenants.rls import as_owner
from tenants.scoping import tenant_scope
from tests.conftest import ROOT, WorkerProcess, database_env_of_tests, wait_for
from tests.engagement.test_tasks_worker import WorkerLog
from tests.factories import TenantFactory, make_offering
from tests.faults.conftest import (
    AppServer,
    Client,
    PrivateCluster,
    RedisServer,
    api_client,
    broker_at,
    log_path,
    sign_in,
    start_worker,
    tail,
)

pytestmark = [pytest.mark.services, pytest.mark.timeout(240)]

PROCFILE = ROOT / "Procfile"
PURCHASED = timezone.now() - timedelta(days=3)
REACHED = PURCHASED + timedelta(days=2)


@pytest.fixture
def api_tenant(transactional_db):
    """A tenant with the journey m1 -> m2 -> m3 (m3 is PoV) and a write key: (tenant, raw key)."""
    tenant = TenantFactory(slug="faults", name="Faults")
    with tenant_scope(tenant):
        make_offering(tenant, due_days=(2, 7, 14))
        _, raw = api_key_create(tenant=tenant, name="faults", scope="write", actor=Actor.system("tests"))
    return tenant, raw


def purchase_body(n):
    return {
        "external_id": f"P-{n}",
        "customer": {"external_id": f"C-{n}", "name": f"Customer {n}"},
        "offering": "software",
        "purchased_at": PURCHASED.isoformat(),
    }


def reached_body(n):
    return {"type": "milestone", "purchase": f"P-{n}", "milestone": "m3", "occurred_at": REACHED.isoformat()}


def stored(tenant, name="purchases"):
    """A number of the stored rollup of all engagements (None before the first recompute): what the
    dashboards and the API read. A live computation would prove nothing about the workers."""
    with tenant_scope(tenant):
        row = rollups.current("all")
        return row.summary[name] if row else None


def api_summary(api):
    reply = api.get("/api/v1/metrics/summary/")
    assert reply.status == 200, reply
    return reply.json()


def _outbox(tenant):
    with tenant_scope(tenant):
        return dict(OutboxMessage.objects.values_list("id", "handled_at"))


# 1. Redis stops during ingestion -----------------------------------------------------------------

# A write during an outage may wait for one failed broker connection (broker_connection_timeout, 2 s),
# never for a retry loop: this bound is "did not hang", not a performance target.
OUTAGE_WRITE_SECONDS = 10


def _outage_writes(api):
    """Singles and a batch while the broker is down: 2 + 2 purchases, P-1 and P-3 reach PoV."""
    batch = [
        {"kind": "purchase", "data": purchase_body(3)},
        {"kind": "purchase", "data": purchase_body(4)},
        {"kind": "event", "data": reached_body(3)},
    ]
    return [
        api.post("/api/v1/purchases/", purchase_body(1)),
        api.post("/api/v1/purchases/", purchase_body(2)),
        api.post("/api/v1/events/", reached_body(1)),
        api.post("/api/v1/batch/", {"items": batch}),
    ]


def _assert_kept(tenant, outbox_before):
    """Every accepted write is in PostgreSQL, with the outbox rows that will tell the workers."""
    with tenant_scope(tenant):
        purchases = set(Purchase.objects.values_list("external_id", flat=True))
        reached = Event.objects.filter(milestone__key="m3").count()
    assert purchases == {f"P-{n}" for n in range(5)}
    assert reached == 2
    published = set(_outbox(tenant)) - set(outbox_before)
    assert published, "the writes during the outage published nothing to the outbox"
    assert all(_outbox(tenant)[i] is None for i in published), "handled with no broker and no worker?"


def _all_handled(tenant):
    """Every outbox row handled."""
    return all(_outbox(tenant).values())


def test_writes_during_a_redis_outage_are_accepted_kept_and_caught_up(private_redis, test_database, api_tenant):
    tenant, key = api_tenant
    app, worker = AppServer(database=test_database, redis_url=private_redis.url), WorkerProcess()
    try:
        app.start()
        worker = start_worker(private_redis.url)
        api = api_client(app.port, key)
        assert api.post("/api/v1/purchases/", purchase_body(0)).status == 201
        wait_for(lambda: stored(tenant) == 1, timeout=60)
        worker.stop()
        outbox_before = _outbox(tenant)

        private_redis.stop()
        replies = _outage_writes(api)
        assert [r.status for r in replies] == [201, 201, 201, 200], replies
        assert all(item["status"] == 201 for item in replies[-1].json()["results"]), replies[-1]
        assert max(r.seconds for r in replies) < OUTAGE_WRITE_SECONDS, replies
        health = api.get("/healthz")
        assert (health.status, health.json()) == (503, {"db": "ok", "broker": "error"})
        _assert_kept(tenant, outbox_before)
        assert stored(tenant) == 1, "the stored metrics moved with no worker"

        private_redis.start()
        worker = start_worker(private_redis.url)
        # What beat sends: a drain for every tenant and the metrics reconcile.
        with broker_at(private_redis.url):
            drain_outbox_all.delay()
            reconcile_metrics.delay()
        wait_for(lambda: _all_handled(tenant), timeout=60)
        wait_for(lambda: stored(tenant) == 5, timeout=60)
        assert stored(tenant, "reached") == 2
        summary = api_summary(api)
        assert (summary["purchases"], summary["reached"]) == (5, 2)

        # The same gunicorn publishes again once Redis is back: a new write reaches the metrics alone.
        assert api.post("/api/v1/purchases/", purchase_body(5)).status == 201
        wait_for(lambda: stored(tenant) == 6, timeout=60)
        wait_for(lambda: _all_handled(tenant), timeout=30)
    finally:
        worker.stop()
        app.stop()


# 2. A worker killed in the middle of a task ------------------------------------------------------

# Enough engagements that one recompute of the rollups takes over a second on this machine.
ENGAGEMENTS = 5000
REDELIVERING_WORKER = {"DJANGO_SETTINGS_MODULE": "tests.faults.worker_settings"}
RECEIVED = re.compile(r"Task metrics\.tasks\.recompute_metrics\[([0-9a-f-]+)\] received")


@pytest.fixture
def big_tenant(transactional_db):
    """A tenant with ENGAGEMENTS engagements, written with COPY as `make bench` does."""
    # As the owner: row-level security refuses COPY to the application's role.
    with as_owner():
        made = scratch.create()
        with tenant_scope(made.tenant):
            generator = data.Generator(made, ENGAGEMENTS, now=timezone.now())
            generator.write_customers(lambda _: None)
            generator.write_engagements(lambda _: None)
    return made.tenant


def start_redelivering_worker(redis_url):
    """A real worker that takes back, within seconds, a message a killed worker left unacknowledged."""
    worker = WorkerProcess()
    worker.log = log_path("kill-worker")
    return worker.start({"REDIS_URL": redis_url, "METRICS_DEBOUNCE_SECONDS": "1", **REDELIVERING_WORKER})


def _state(tenant):
    with tenant_scope(tenant):
        return RollupState.objects.values("started_at", "computed_at").first() or {}


def kill_when_a_recompute_starts(tenant, worker):
    """SIGKILL the worker (solo pool: one process) as soon as a recompute has claimed its work, and check
    that the run did not get to store anything."""
    before = _state(tenant)

    def recompute_started():
        return _state(tenant).get("started_at") != before.get("started_at")

    wait_for(recompute_started, timeout=60, interval=0.02)
    worker.proc.kill()
    worker.proc.wait(timeout=10)
    worker.proc = None
    finished = _state(tenant).get("computed_at") != before.get("computed_at")
    assert not finished, "the recompute finished before the kill: give it more engagements"


def stored_rows(tenant):
    with tenant_scope(tenant):
        rows = MetricRollup.objects.order_by("dimension", "key")
        return [(r.day, r.dimension, r.key, r.summary, r.cohorts, r.funnel, r.computed_at) for r in rows]


def assert_same_as_an_uninterrupted_run(tenant):
    """The stored rows equal what one uninterrupted recompute writes with the same clock."""
    after_redelivery = stored_rows(tenant)
    computed_at = after_redelivery[0][-1]
    with tenant_scope(tenant):
        recompute_rollups(tenant, now=computed_at)
    assert after_redelivery == stored_rows(tenant)


def test_a_recompute_killed_mid_way_runs_again_on_the_next_worker(private_redis, big_tenant):
    worker = start_redelivering_worker(private_redis.url)
    try:
        with broker_at(private_redis.url):
            task_id = recompute_metrics.delay(tenant_id=str(big_tenant.pk), force=True).id
        kill_when_a_recompute_starts(big_tenant, worker)
        assert stored(big_tenant) is None

        worker = start_redelivering_worker(private_redis.url)
        log = WorkerLog(worker)
        result = wait_for(lambda: log.result_of(task_id), timeout=60)
        assert result != "None", "the redelivered task did nothing"
        assert stored(big_tenant) == ENGAGEMENTS
        assert_same_as_an_uninterrupted_run(big_tenant)
    finally:
        worker.stop()


def test_a_write_whose_recompute_was_killed_still_reaches_the_metrics(private_redis, big_tenant):
    worker = start_redelivering_worker(private_redis.url)
    try:
        with broker_at(private_redis.url):
            recompute_metrics.delay(tenant_id=str(big_tenant.pk))
            wait_for(lambda: stored(big_tenant) == ENGAGEMENTS, timeout=60)
            log = WorkerLog(worker)
            with tenant_scope(big_tenant):
                offering = Offering.objects.order_by("key").first()
                customer = Customer.objects.order_by("external_id").first()
                purchase_record(
                    tenant=big_tenant, external_id="P-after-kill", customer=customer, offering=offering,
                    purchased_at=PURCHASED, actor=Actor.system("tests"),
                )  # fmt: skip
            # The write's drain asks for a recompute; kill the worker while it runs.
            kill_when_a_recompute_starts(big_tenant, worker)
        task_id = RECEIVED.findall(log.text())[-1]

        worker = start_redelivering_worker(private_redis.url)
        log = WorkerLog(worker)
        wait_for(lambda: log.result_of(task_id), timeout=60)
        assert stored(big_tenant) == ENGAGEMENTS + 1
        assert_same_as_an_uninterrupted_run(big_tenant)
    finally:
        worker.stop()


# 3. PostgreSQL restarts under the running app ----------------------------------------------------

ADMIN_EMAIL = "admin@faults.test"
ADMIN_PASSWORD = "faults-admin-password-2026"
JOURNEY = {
    "key": "software",
    "name": "Software",
    "milestones": [{"key": "m1", "name": "Kickoff", "due_day": 2}, {"key": "m3", "name": "Value", "due_day": 14}],
}
# After the database is back, every request must succeed again within this many seconds.
RECOVERY_SECONDS = 10


@dataclass
class ClusterApp:
    cluster: PrivateCluster
    server: AppServer
    api: Client
    browser: Client


@pytest.fixture(scope="module")
def cluster_app(private_cluster, tmp_path_factory):
    """gunicorn against the private cluster (a tenant, its admin, a write key, a journey), with its own
    Redis; stopped after the module's tests."""
    private_cluster.manage("create_tenant", "faults", "--name", "Faults", "--admin-email", ADMIN_EMAIL,
                           "--admin-password", ADMIN_PASSWORD)  # fmt: skip
    key = private_cluster.manage("create_api_key", "--tenant", "faults", "--name", "faults", "--scope", "write")
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    server = AppServer(database=private_cluster.database, redis_url=redis.url, name="cluster-app")
    try:
        redis.start()
        server.start()
        api = api_client(server.port, key.strip().splitlines()[-1])
        assert api.post("/api/v1/offerings/", JOURNEY).status == 201
        yield ClusterApp(private_cluster, server, api, sign_in(server.port, ADMIN_EMAIL, ADMIN_PASSWORD))
    finally:
        server.stop()
        redis.stop()


def _requests(app, n):
    """One of each kind, twice so both gunicorn workers (each with its own connection) answer: an API
    read, an API write, a page. Returns the replies."""
    replies = []
    for attempt in range(2):
        replies.append(app.api.get("/api/v1/engagements/"))
        replies.append(app.api.post("/api/v1/purchases/", purchase_body(f"{n}-{attempt}")))
        replies.append(app.browser.get("/t/faults/"))
    return replies


def _all_succeed(app, n):
    """An API read, an API write and a page all succeed."""
    return all(200 <= reply.status < 300 for reply in _requests(app, n))


def _purchase_ids(app):
    return {row["purchase"]["external_id"] for row in app.api.get("/api/v1/engagements/").json()["results"]}


def test_the_app_reconnects_after_its_database_connections_are_terminated(cluster_app):
    assert _all_succeed(cluster_app, "before-terminate")
    terminated = cluster_app.cluster.sql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    )
    assert int(terminated) >= 1, "the app held no connection to terminate"
    replies = _requests(cluster_app, "after-terminate")
    assert all(200 <= r.status < 300 for r in replies), replies


def test_the_app_recovers_when_postgresql_stops_and_restarts_and_keeps_accepted_writes(cluster_app):
    assert cluster_app.api.post("/api/v1/purchases/", purchase_body("before-stop")).status == 201
    cluster_app.cluster.ctl("stop")
    try:
        health = cluster_app.api.get("/healthz")
        assert (health.status, health.json()) == (503, {"db": "error", "broker": "ok"})
    finally:
        cluster_app.cluster.ctl("start")
    wait_for(lambda: _all_succeed(cluster_app, "after-start"), timeout=RECOVERY_SECONDS, interval=0.5)

    assert cluster_app.api.post("/api/v1/purchases/", purchase_body("before-restart")).status == 201
    cluster_app.cluster.ctl("restart")
    wait_for(lambda: _all_succeed(cluster_app, "after-restart"), timeout=RECOVERY_SECONDS, interval=0.5)
    assert {"P-before-stop", "P-before-restart"} <= _purchase_ids(cluster_app)


def test_while_postgresql_is_down_the_app_answers_503_with_a_clear_error(cluster_app):
    cluster_app.cluster.ctl("stop")
    try:
        api_read, api_write, page = _requests(cluster_app, "while-down")[:3]
    finally:
        cluster_app.cluster.ctl("start")
    for reply in (api_read, api_write):
        assert reply.status == 503, reply
        assert reply.json()["error"]["code"] == "unavailable", reply
    assert page.status == 503, page
    assert b"unavailable" in page.body.lower(), page


# 4. A broker restart under the running worker and beat --------------------------------------------


class Supervised:
    """A process of the Procfile (`make run`), started as the Procfile says: under pov.supervise, against
    the test database and the given broker."""

    def __init__(self, name, redis_url):
        line = next(line for line in PROCFILE.read_text().splitlines() if line.startswith(f"{name}:"))
        cmd = shlex.split(line.partition(":")[2])
        self.log = log_path(f"supervised-{name}")
        env = {
            **os.environ, "DJANGO_SETTINGS_MODULE": "pov.settings_test", **database_env_of_tests(),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "REDIS_URL": redis_url,
            "CELERY_QUEUE": settings.CELERY_QUEUE, "OUTBOX_DRAIN_SECONDS": "2", "METRICS_DEBOUNCE_SECONDS": "1",
        }  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def running(self):
        """The pid of the Celery main process the Procfile's command runs now (None while there is none);
        fails once the command the Procfile starts has exited."""
        assert self.proc.poll() is None, f"{self.proc.args} exited with {self.proc.returncode}:\n{tail(self.log)}"
        pid = self.proc.pid
        while pid is not None and not _is_celery(pid):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            pid = int(children[0]) if children else None
        return pid

    def stop(self):
        stop_process(self.proc, timeout=30)


def _is_celery(pid):
    """The process runs the `celery` script (python .venv/bin/celery ...), not something that starts it."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return len(argv) > 1 and Path(argv[1].decode()).name == "celery"


def _purchase(tenant, n):
    with tenant_scope(tenant):
        customer = Customer.objects.create(tenant=tenant, external_id=f"C-{n}", name=f"Customer {n}")
        purchase_record(tenant=tenant, actor=Actor.system("tests"), external_id=f"P-{n}", customer=customer,
                        offering=Offering.objects.get(), purchased_at=PURCHASED)  # fmt: skip


def test_worker_and_beat_live_through_a_broker_restart_and_an_exiting_worker_is_started_again(
    private_redis, api_tenant
):
    tenant, _ = api_tenant
    worker = beat = None
    try:
        worker, beat = Supervised("worker", private_redis.url), Supervised("beat", private_redis.url)
        first_worker = wait_for(worker.running, timeout=30)
        wait_for(beat.running, timeout=30)
        with broker_at(private_redis.url):
            _purchase(tenant, 0)
            wait_for(lambda: stored(tenant) == 1, timeout=60)

            private_redis.stop()
            _purchase(tenant, 1)  # accepted; its message to the worker is lost with the broker
            time.sleep(5)  # the worker's consumer and beat meet the outage
            private_redis.start()  # empty, on the same address
            # Beat's outbox drain catches up with what the lost message asked for.
            wait_for(lambda: _all_handled(tenant), timeout=90)
            wait_for(lambda: stored(tenant) == 2, timeout=60)
            assert worker.running() == first_worker and beat.running(), "restarted instead of reconnecting"

            # A worker that exits anyway (as kombu has made it exit on a reconnect) is started again.
            os.kill(first_worker, signal.SIGKILL)
            wait_for(lambda: worker.running() not in (None, first_worker), timeout=30)
            _purchase(tenant, 2)
            wait_for(lambda: stored(tenant) == 3, timeout=90)
        assert "starting it again" in tail(worker.log)
    finally:
        for process in (worker, beat):
            if process is not None:
                process.stop()
    # Asked to stop, the supervisors end their process and stay stopped.
    assert worker.proc.returncode == 0 and beat.proc.returncode == 0, (tail(worker.log), tail(beat.log))


# 5. A worker killed in the middle of an import --------------------------------------------------------

IMPORT_ROWS = 100_000  # a file of the size imports are benchmarked at (bench import_csv)


def _import_state(run_id):
    return Import.objects.filter(pk=run_id).values("state", "done_rows", "created", "unchanged", "rejected").get()


@pytest.mark.timeout(900)  # a hundred thousand rows, twice started, on a machine running the whole suite
def test_an_import_killed_mid_way_goes_on_where_it_stopped_and_ends_as_one_clean_run(private_redis, api_tenant):
    tenant, _ = api_tenant
    with tenant_scope(tenant):
        engagements_before = Engagement.objects.count()
    rows = "external_id,customer,customer.name,offering,purchased_at\n" + "".join(
        f"IMP-{n},IC-{n},Customer {n},software,{PURCHASED.isoformat()}\n" for n in range(IMPORT_ROWS)
    )
    with tenant_scope(tenant), broker_at(private_redis.url):
        run = imports.import_create(tenant=tenant, actor=Actor.system("tests"), kind="purchases",
                                    filename="big.csv", raw=rows.encode(), start=True)  # fmt: skip
    worker = start_redelivering_worker(private_redis.url)
    try:
        with tenant_scope(tenant):
            # Killed after its first chunks were committed, before the last.
            wait_for(lambda: 0 < _import_state(run.pk)["done_rows"] < IMPORT_ROWS, timeout=60, interval=0.02)
            worker.proc.kill()
            worker.proc.wait(timeout=10)
            stopped = _import_state(run.pk)
            assert stopped["state"] == "running" and stopped["done_rows"] < IMPORT_ROWS
            committed = Purchase.objects.filter(external_id__startswith="IMP-").count()
            assert committed == stopped["done_rows"], "a chunk was half applied"

            worker = start_redelivering_worker(private_redis.url)  # takes the unacknowledged run back
            wait_for(lambda: _import_state(run.pk)["state"] == "done", timeout=600)
            final = _import_state(run.pk)
            assert (final["done_rows"], final["created"], final["unchanged"], final["rejected"]) == (
                IMPORT_ROWS, IMPORT_ROWS, 0, 0
            )  # fmt: skip
            assert Purchase.objects.filter(external_id__startswith="IMP-").count() == IMPORT_ROWS
            # Counted without a join: the test database has no statistics, and a join of 100,000 rows each way
            # may be planned as a nested loop.
            assert Engagement.objects.count() == engagements_before + IMPORT_ROWS
    finally:
        worker.stop()
