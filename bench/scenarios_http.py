"""The scenarios served by gunicorn: pages and the metrics API (latency and queries per request), and
ingest through the batch and single-event endpoints from concurrent clients.

Query counts come from the same request made in-process with Django's test client (the server
cannot report them); the timings come from HTTP on loopback.
"""

import json
import random
import uuid
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from bench import references
from bench.data import EVENT_COLUMNS
from bench.http import Connection, run_clients
from bench.scenarios import record
from engagement.models import Engagement, Event, Milestone
from metrics.models import MetricRollup
from metrics.rollups import recompute_rollups

SEED = 99
WARM_UP = 5
SINGLE_WARM_UP_PER_CLIENT = 50
BATCH_ITEMS = 1000
CLIENTS = 4
SATISFACTION_SHARE = 0.2


def session_cookie(user):
    """A signed-in session for `user` (stored in the database, so the server accepts it)."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def end_session(key):
    import_module(settings.SESSION_ENGINE).SessionStore(session_key=key).delete()


def _queries_per_request(scratch, method, path, *, api_key=None, body=None):
    """SQL statements of one request made in-process (after one warm request, as the query-count tests do)."""
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_key}"} if api_key else {}
    if not api_key:
        client.force_login(scratch.admin.user)
    send = client.get if method == "GET" else client.post
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        if method == "GET":
            send(path, **headers)
        with CaptureQueriesContext(connection) as captured:
            response = (
                send(path, data=body, content_type="application/json", **headers) if body else send(path, **headers)
            )
    client.logout()  # its session row goes too
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path} answered {response.status_code} in-process")
    return len(captured.captured_queries)


def _ok(status, body):
    return None if status == 200 else f"HTTP {status}: {body[:200]!r}"


# 5. Pages and the metrics API -------------------------------------------------------------------------


def _page(ctx, name, paths, *, api=False, note=""):
    """p50/p95 over ctx.requests sequential GETs (paths in turn) after a warm-up, and queries per request."""
    if api:
        headers = {"Authorization": f"Bearer {ctx.scratch.read_key}"}
    else:
        headers = {"Cookie": f"sessionid={ctx.session_cookie}"}
    queries = _queries_per_request(ctx.scratch, "GET", paths[0], api_key=ctx.scratch.read_key if api else None)
    conn = Connection(ctx.server.port, headers)
    try:
        for i in range(WARM_UP):
            status, body, _ = conn.request("GET", paths[i % len(paths)])
            if status != 200:
                raise RuntimeError(f"GET {paths[i % len(paths)]} answered {status}: {body[:300]!r}")
        latencies = []
        with ctx.bar(ctx.requests, f"  {name}") as bar:
            for i in range(ctx.requests):
                status, body, elapsed = conn.request("GET", paths[i % len(paths)])
                if status != 200:
                    raise RuntimeError(f"GET {paths[i % len(paths)]} answered {status}: {body[:300]!r}")
                latencies.append(elapsed)
                bar.update(1)
    finally:
        conn.close()
    return record(name, len(latencies), sum(latencies), latencies=latencies, queries=queries, note=note)


HISTORY_DAYS = 90


def daily_history(tenant):
    """The 89 earlier daily snapshots a tenant in use for three months has (the overview draws its trend
    from them): copies of the current rollups. Returns the days the tenant now has."""
    table = connection.ops.quote_name(MetricRollup._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} (tenant_id, day, dimension, key, summary, cohorts, funnel, computed_at)
                SELECT r.tenant_id, r.day - g.k, r.dimension, r.key, r.summary, r.cohorts, r.funnel,
                       r.computed_at - make_interval(days => g.k)
                FROM {table} r CROSS JOIN generate_series(1, %s) g(k)
                WHERE r.tenant_id = %s AND r.day = (SELECT max(day) FROM {table} WHERE tenant_id = %s)
                ON CONFLICT DO NOTHING""",  # noqa: S608 - a table name only
            [HISTORY_DAYS - 1, tenant.pk, tenant.pk],
        )
        cursor.execute(f"SELECT count(DISTINCT day) FROM {table} WHERE tenant_id = %s", [tenant.pk])  # noqa: S608
        return cursor.fetchone()[0]


def _with_rollups(tenant):
    """Without the recompute_metrics scenario (--only) the tenant has no rollups yet: store them, as the
    worker would have, so the metrics pages read what they read in use instead of computing live."""
    if not MetricRollup.objects.exists():
        recompute_rollups(tenant, now=timezone.now())


def page_overview(ctx):
    _with_rollups(ctx.tenant)
    days = daily_history(ctx.tenant)
    note = f"from the stored rollups, with {days} daily snapshots for the trend"
    return _page(ctx, "page_overview", [f"/t/{ctx.tenant.slug}/"], note=note)


def page_engagements(ctx):
    note = "first page (50 rows), default sort by due date, no filter"
    return _page(ctx, "page_engagements", [f"/t/{ctx.tenant.slug}/engagements/"], note=note)


def page_engagement_detail(ctx):
    """Engagements picked at random (of every status), one after another."""
    ids = Engagement.objects.order_by("?").values_list("id", flat=True)[:50]
    paths = [f"/t/{ctx.tenant.slug}/engagements/{i}/" for i in ids]
    return _page(ctx, "page_engagement_detail", paths, note=f"{len(paths)} engagements picked at random, in turn")


def api_metrics_summary(ctx):
    _with_rollups(ctx.tenant)
    return _page(ctx, "api_metrics_summary", ["/api/v1/metrics/summary/"], api=True, note="no filter, read key")


# 1-2. Ingest ----------------------------------------------------------------------------------------------


class Targets:
    """Engagements the ingest scenarios write to, split so that concurrent clients never wait on each
    other's row locks; events are valid (after the purchase, not in the future)."""

    def __init__(self, count):
        rows = Engagement.objects.order_by("?").values_list("id", "purchase__external_id", "offering_id")[:count]
        self.rows = list(rows)
        self.milestones = {}
        for offering_id, key, mid in Milestone.objects.values_list("offering_id", "key", "id"):
            self.milestones.setdefault(offering_id, []).append((key, mid))
        self.rng = random.Random(SEED)
        self.serial = 0
        self.run = uuid.uuid4().hex[:8]

    def split(self, parts):
        return [self.rows[i::parts] for i in range(parts)]

    def event(self, target, now):
        """(API payload, the row an events table gets for it)."""
        engagement_id, purchase, offering_id = target
        self.serial += 1
        at = now - timedelta(seconds=self.rng.uniform(1, 3600))
        external_id = f"bench-{self.run}-{self.serial}"
        payload = {"purchase": purchase, "occurred_at": at.isoformat(), "external_id": external_id}
        if self.rng.random() < SATISFACTION_SHARE:
            payload.update(type="satisfaction", score=self.rng.choice((3, 4, 5)))
            milestone_id = None
        else:
            key, milestone_id = self.rng.choice(self.milestones[offering_id])
            payload.update(type="milestone", milestone=key)
        return payload, (milestone_id, engagement_id, at, external_id)


def _copy_row(tenant, prefix, row, payload, now):
    milestone_id, engagement_id, at, external_id = row
    values = {
        "id": uuid.uuid4(), "tenant_id": tenant.pk, "engagement_id": engagement_id, "type": payload["type"],
        "occurred_at": at, "milestone_id": milestone_id, "score": payload.get("score"), "comment": "", "reason": "",
        "external_id": external_id, "source": "api", "recorded_by": f"api key {prefix}", "created_at": now,
    }  # fmt: skip
    return tuple(values[c] for c in EVENT_COLUMNS)


def _batch_ok(status, body):
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}"
    failed = [r for r in json.loads(body)["results"] if r["status"] not in (200, 201)]
    return f"{len(failed)} items failed, e.g. {failed[0]}" if failed else None


def _batches(targets, clients, batches, now, copy_rows, tenant, prefix):
    """Per client, its list of (method, path, body) with BATCH_ITEMS events each."""
    jobs = []
    for share in targets.split(clients):
        requests = []
        for b in range(batches // clients + (1 if len(jobs) < batches % clients else 0)):
            items = []
            for k in range(BATCH_ITEMS):
                payload, row = targets.event(share[(b * BATCH_ITEMS + k) % len(share)], now)
                items.append({"kind": "event", "data": payload})
                if copy_rows is not None:
                    copy_rows.append(_copy_row(tenant, prefix, row, payload, now))
            requests.append(("POST", "/api/v1/batch/", json.dumps({"items": items}).encode()))
        jobs.append(requests)
    return [j for j in jobs if j]


def batch_count(scale):
    return max(2, min(40, scale // 2500))


def ingest_batch(ctx):
    """Events through POST /api/v1/batch/ (1,000 a call) from concurrent clients against a COPY of the same
    rows into a table like the events table."""
    tenant, scratch, now = ctx.tenant, ctx.scratch, timezone.now()
    batches = batch_count(ctx.scale)
    clients = min(CLIENTS, batches)
    targets = Targets(max(BATCH_ITEMS, batches * BATCH_ITEMS // 2))
    prefix = scratch.write_key.split("_")[1]
    headers = {"Authorization": f"Bearer {scratch.write_key}"}
    warm = _batches(targets, 2, 2, now, None, tenant, prefix)
    queries = _queries_per_request(scratch, "POST", "/api/v1/batch/", api_key=scratch.write_key, body=warm[0][0][2])
    run_clients(ctx.server.port, [warm[1]], _batch_ok, headers)
    copy_rows = []
    jobs = _batches(targets, clients, batches, now, copy_rows, tenant, prefix)
    with ctx.bar(batches, "  ingest_batch (calls)") as bar:
        load = run_clients(ctx.server.port, jobs, _batch_ok, headers, progress=bar.update)
    if load.failures:
        raise RuntimeError(f"{len(load.failures)} batch calls failed, e.g. {load.failures[0]}")
    reference_seconds = references.copy_rows([(Event, EVENT_COLUMNS, copy_rows)])
    events = len(copy_rows)
    note = f"{batches} calls of {BATCH_ITEMS} from {clients} clients; p50/p95 per call"
    return record("ingest_batch", events, load.seconds, reference="copy", reference_seconds=reference_seconds,
                  latencies=load.latencies, queries=queries, note=note)  # fmt: skip


def single_count(scale):
    return max(50, min(2000, scale // 50))


def _created(status, body):
    return None if status == 201 else f"HTTP {status}: {body[:200]!r}"


def ingest_single(ctx):
    """POST /api/v1/events/ one event at a time from concurrent clients: req/s and latency; no reference."""
    scratch, now = ctx.scratch, timezone.now()
    count = single_count(ctx.scale)
    warm_up = SINGLE_WARM_UP_PER_CLIENT * CLIENTS
    targets = Targets(count + warm_up)
    headers = {"Authorization": f"Bearer {scratch.write_key}"}
    requests = [("POST", "/api/v1/events/", json.dumps(targets.event(t, now)[0]).encode()) for t in targets.rows]
    warm, timed = requests[:warm_up], requests[warm_up:]
    queries = _queries_per_request(scratch, "POST", "/api/v1/events/", api_key=scratch.write_key, body=warm[0][2])
    # Every client, so both workers have served enough requests to run at their steady pace (connections
    # open, prepared statements, journeys cached).
    run_clients(ctx.server.port, [warm[1:][i::CLIENTS] for i in range(CLIENTS)], _created, headers)
    jobs = [timed[i::CLIENTS] for i in range(CLIENTS)]
    with ctx.bar(len(timed), "  ingest_single") as bar:
        load = run_clients(ctx.server.port, jobs, _created, headers, progress=bar.update)
    if load.failures:
        raise RuntimeError(f"{len(load.failures)} requests failed, e.g. {load.failures[0]}")
    note = f"{CLIENTS} concurrent clients, one event per engagement"
    return record("ingest_single", len(timed), load.seconds, latencies=load.latencies, queries=queries, note=note)
