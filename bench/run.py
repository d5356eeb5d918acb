"""One benchmark run: the scratch tenant and its data, the server, every scenario, the report, and the
clean-up (which also runs when a step fails).

A scenario that raises is recorded with its error and the run goes on; the caller fails afterwards.
"""

import time
import traceback
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone
from tqdm import tqdm

from bench import data, scenarios, scenarios_http, scenarios_import, scratch
from bench.http import BENCH_QUEUE, Server
from bench.report import render, write_json
from tenants.rls import as_owner
from tenants.scoping import tenant_scope

SCENARIOS = (
    ("stall_scan", scenarios.stall_scan),
    ("recompute_projection", scenarios.recompute_projection),
    ("recompute_metrics", scenarios.recompute_metrics),
    ("page_overview", scenarios_http.page_overview),
    ("page_engagements", scenarios_http.page_engagements),
    ("page_engagement_detail", scenarios_http.page_engagement_detail),
    ("api_metrics_summary", scenarios_http.api_metrics_summary),
    ("ingest_batch", scenarios_http.ingest_batch),
    ("ingest_single", scenarios_http.ingest_single),
    ("import_csv", scenarios_import.import_csv),
)
HTTP_SCENARIOS = {"page_overview", "page_engagements", "page_engagement_detail", "api_metrics_summary",
                  "ingest_batch", "ingest_single"}  # fmt: skip


@dataclass
class Outcome:
    records: list = field(default_factory=list)
    json_path: object = None

    @property
    def errors(self):
        return [r for r in self.records if r.get("error")]


def failed(name, exc):
    return dict.fromkeys((*scenarios.RECORD_KEYS, *scenarios.EXTRA_KEYS)) | {
        "scenario": name, "error": f"{type(exc).__name__}: {exc}", "note": "",
    }  # fmt: skip


class Run:
    def __init__(self, scale, *, label, requests, out, err, only=None, output=None, keep=False):
        self.scale, self.label, self.requests = scale, label, requests
        self.out, self.err = out, err
        self.only = set(only or ())
        self.output, self.keep = output, keep
        self.log_path = settings.VAR_DIR / "bench" / "gunicorn.log"

    def bar(self, total, desc, unit=""):
        return tqdm(total=total, desc=desc, unit=unit, file=self.err, leave=False, dynamic_ncols=True)

    def say(self, text):
        self.err.write(text + "\n")
        self.err.flush()

    def __call__(self):
        from pov.celery import app

        queue = app.conf.task_default_queue
        app.conf.task_default_queue = BENCH_QUEUE  # this run's drains never reach a real worker's queue
        server = ctx = None
        try:
            ctx = self._prepare()
            if any(name in HTTP_SCENARIOS for name, _ in self._selected()):
                self.say(f"Starting gunicorn ({self.log_path}) …")
                server = Server(self.log_path).start()
                ctx.server = server
            outcome = Outcome(records=self._scenarios(ctx))
        finally:
            if server:
                server.stop()
            self._clean_up(ctx)
            app.conf.task_default_queue = queue
        outcome.json_path = write_json(outcome.records, self.output)
        render(outcome.records, self.label, self.out)
        self.out.write(f"Written to {outcome.json_path}\n")
        return outcome

    def _selected(self):
        return [(name, fn) for name, fn in SCENARIOS if not self.only or name in self.only]

    def _prepare(self):
        self.say(f"Creating the scratch tenant {scratch.SLUG!r} with {self.scale:,} engagements …")
        start = time.perf_counter()
        # The data is loaded with COPY, which row-level security refuses to the application's role.
        with as_owner():
            made, generator, cookie = self._generate()
        counts = generator.counts
        self.say(
            f"Generated {counts.customers:,} customers, {counts.engagements:,} engagements, {counts.events:,} events "
            f"({counts.events / max(1, counts.engagements):.1f} each), {counts.reaches:,} milestone reaches, "
            f"{counts.alerts:,} alerts in {time.perf_counter() - start:.0f} s."
        )
        return scenarios.Context(
            scratch=made, scale=self.scale, requests=self.requests, bar=self.bar, session_cookie=cookie
        )

    def _generate(self):
        """The scratch tenant and its generated rows: (scratch, generator, admin session cookie)."""
        made = scratch.create()
        with tenant_scope(made.tenant):
            generator = data.Generator(made, self.scale, now=timezone.now())
            with self.bar(generator.customers, "customers", " rows") as bar:
                generator.write_customers(bar.update)
            with self.bar(self.scale, "engagements + events", " eng") as bar:
                generator.write_engagements(bar.update)
            with self.bar(len(data.TABLES), "vacuum analyze", " tables") as bar:
                data.vacuum_analyze(bar.update)
            cookie = scenarios_http.session_cookie(made.admin.user)
        return made, generator, cookie

    def _scenarios(self, ctx):
        records = []
        selected = self._selected()
        for index, (name, scenario) in enumerate(selected, 1):
            self.say(f"[{index}/{len(selected)}] {name} …")
            try:
                with tenant_scope(ctx.tenant):
                    result = scenario(ctx)
            except Exception as exc:  # noqa: BLE001 - recorded; the run fails at the end
                self.err.write(traceback.format_exc())
                result = failed(name, exc)
            records.append(result)
            self.say(f"    {_summary(result)}")
        return records

    def _clean_up(self, ctx):
        if ctx and not self.keep:
            scenarios_http.end_session(ctx.session_cookie)
        if self.keep:
            self.say(f"Keeping the scratch tenant {scratch.SLUG!r} (sign in as {scratch.ADMIN_EMAIL}).")
        else:
            self.say(f"Removing the scratch tenant {scratch.SLUG!r} …")
            with as_owner():
                scratch.remove()
        _purge_queue()


def _summary(record):
    if record.get("error"):
        return f"ERROR {record['error']}"
    parts = [f"{record['seconds']:.2f} s"]
    if record.get("ratio") is not None:
        parts.append(f"{record['ratio']:.2f}× {record['reference']}")
    if record.get("p95_ms") is not None:
        parts.append(f"p95 {record['p95_ms']:.1f} ms")
    return ", ".join(parts)


def _purge_queue():
    """Drop the drain tasks this run enqueued; nobody consumes the bench queue."""
    from pov.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(BENCH_QUEUE)
    except Exception:  # noqa: BLE001, S110 - best effort: the queue may not exist
        pass
