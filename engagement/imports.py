"""CSV imports: a file is checked as a whole when it arrives (engagement.csv_files), its columns mapped, then
run by workers in chunks through the batch service, so every row meets the API's rules (idempotent by
external id, the value clock, owner rules, the outbox). Each chunk commits with its counts, its rejected
rows and its mark as done, so a worker stopped mid-way goes on with the chunks not done: nothing is
half-applied or doubled. A dry run takes the same path and rolls each chunk back."""

import csv
import itertools
import math
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import F, Func, Value
from django.http import HttpResponse
from django.utils import timezone

from engagement import csv_files, queries
from engagement.batch import batch_ingest
from engagement.errors import Invalid
from engagement.models import Import, ImportRejection, ImportState
from pov.enqueue import enqueue_on_commit
from tenants.actors import Actor, audit
from tenants.models import Tenant

CHUNK = 1000  # rows per transaction: the batch service's limit
# Runs of one import at once: while one waits for PostgreSQL, another works in Python, on a second core.
RUNS = 2
# A run stops taking new chunks after this long and queues the rest, well inside the task's time limit.
RUN_SECONDS = 240
# A live import that has not moved for this long is queued again; a chunk takes seconds, not minutes.
QUIET = timedelta(minutes=3)
LIVE = (ImportState.QUEUED, ImportState.RUNNING)
COUNTS = ("created", "updated", "unchanged", "rejected")
KIND_OF_ITEM = {"customers": "customer", "purchases": "purchase", "events": "event"}


def remembered_mapping(kind: str) -> dict:
    """The mapping of this company's last import of `kind`, to guess the next one's columns from."""
    mappings = Import.objects.filter(kind=kind).exclude(mapping={}).order_by("-created_at")
    return mappings.values_list("mapping", flat=True).first() or {}


def uploaded(upload, missing: str) -> bytes:
    """An uploaded file's bytes, or a clear refusal: none sent (`missing` says how to send one), or too large."""
    if upload is None:
        raise Invalid({"file": [missing]})
    if upload.size > csv_files.MAX_BYTES:
        raise Invalid({"file": [f"The file is over {csv_files.MAX_BYTES // 1_048_576} MB; split it."]})
    return upload.read()


def import_create(
    *, tenant: Tenant, actor: Actor, kind: str, filename: str, raw: bytes, encoding: str = "",
    mapping: dict | None = None, time_zone: str = "", dry_run: bool = False, start: bool = False,
) -> Import:  # fmt: skip
    """Check the file as a whole and store it; with `start`, queue its run (the API), else it waits for
    its columns to be confirmed (the page)."""
    if kind not in csv_files.FIELDS:
        raise Invalid({"kind": [f"{kind!r} is not one of: {', '.join(csv_files.FIELDS)}."]})
    zone = _zone(time_zone or tenant.time_zone)
    table = csv_files.read(raw, encoding=encoding)
    if not table.rows:
        raise Invalid({"file": ["The file has a header but no rows."]})
    chosen = csv_files.guess(kind, table.header, remembered_mapping(kind)) if mapping is None else mapping
    if start:
        chosen = csv_files.check_mapping(kind, table.header, chosen)
    with transaction.atomic():
        run = Import.objects.create(
            tenant=tenant, kind=kind, filename=filename[:255] or "upload.csv", data=raw, encoding=table.encoding,
            delimiter=table.delimiter, mapping=chosen, time_zone=zone.key, dry_run=dry_run, rows=len(table.rows),
            created_by=actor.label, in_order=csv_files.chunks_depend(kind, table, chosen, CHUNK),
        )  # fmt: skip
        audit(tenant=tenant, actor=actor, action="import.created", target=run, kind=kind, file=run.filename,
              rows=run.rows, dry_run=dry_run)  # fmt: skip
        if start:
            _queue(run)
    return run


def import_start(*, tenant: Tenant, actor: Actor, run: Import, mapping: dict, time_zone: str, dry_run: bool) -> Import:
    """Confirm a waiting import's columns and queue it (a dry run may be followed by the real one)."""
    if run.state not in (ImportState.DRAFT, ImportState.DONE) or (run.state == ImportState.DONE and not run.dry_run):
        raise Invalid({"__all__": ["This import has already run."]})
    table = table_of(run)
    run.mapping = csv_files.check_mapping(run.kind, table.header, mapping)
    run.time_zone, run.dry_run = _zone(time_zone).key, dry_run
    run.done_rows, run.next_chunk, run.done_chunks, run.attempt = 0, 0, [], run.attempt + 1
    run.in_order = csv_files.chunks_depend(run.kind, table, run.mapping, CHUNK)
    for name in COUNTS:
        setattr(run, name, 0)
    with transaction.atomic():
        run.rejections.all().delete()
        run.save(update_fields=["mapping", "time_zone", "dry_run", "done_rows", "next_chunk", "done_chunks",
                                "in_order", "attempt", *COUNTS])  # fmt: skip
        audit(tenant=tenant, actor=actor, action="import.started", target=run, dry_run=dry_run)
        _queue(run)
    return run


def import_resume(*, tenant: Tenant, actor: Actor, run: Import) -> Import:
    """Queue an import an unexpected error stopped: it goes on after the last chunk it committed."""
    if run.state != ImportState.FAILED:
        raise Invalid({"__all__": ["Only an import that stopped with an error can go on."]})
    with transaction.atomic():
        audit(tenant=tenant, actor=actor, action="import.resumed", target=run, done_rows=run.done_rows)
        _queue(run)
    return run


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        raise Invalid({"time_zone": [f"{name!r} is not a known time zone."]}) from None


def _queue(run: Import) -> None:
    from engagement.tasks import run_import  # tasks import this module

    Import.objects.filter(pk=run.pk).update(
        state=ImportState.QUEUED, finished_at=None, error="", moved_at=timezone.now()
    )
    run.state = ImportState.QUEUED
    for _ in range(RUNS):
        enqueue_on_commit(run_import, tenant_id=str(run.tenant_id), import_id=str(run.pk))


def table_of(run: Import) -> csv_files.Table:
    return csv_files.read(bytes(run.data), encoding=run.encoding, delimiter=run.delimiter)


def preview(run: Import, mapping: dict, zone: ZoneInfo, rows: int = 5) -> tuple[list[str], list[tuple[int, list]]]:
    """The first rows as they will be sent through the API's rules: (fields, [(row number, values)])."""
    table = table_of(run)
    fields = list(dict.fromkeys(mapping[column] for column in table.header if mapping.get(column)))  # file order
    comma = csv_files.decimal_comma(table, mapping)
    bodies = itertools.islice(csv_files.rows_as_bodies(run.kind, table, mapping, zone, comma=comma), rows)
    return fields, [(number, [_flat(data).get(field, "") for field in fields]) for number, data in bodies]


def _flat(data: dict) -> dict:
    """A body by the mapping's field names: customer.name for the inline customer's, "attribute" for all
    attributes."""
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    if isinstance(data.get("customer"), dict):
        flat.update({f"customer.{k}": v for k, v in data["customer"].items() if k != "external_id"})
        flat["customer"] = data["customer"]["external_id"]
    if "attributes" in data:
        flat["attribute"] = ", ".join(f"{k}: {v}" for k, v in data["attributes"].items())
    if "success_criteria" in data:
        flat["success_criteria"] = "; ".join(part.strip() for part in data["success_criteria"] if part.strip())
    return flat


# The run ------------------------------------------------------------------------------------------


def run_import(tenant: Tenant, import_id: str, *, seconds: float = RUN_SECONDS) -> bool:
    """Run (or go on with) an import, a chunk per transaction, for about `seconds`; True when rows are
    left (the task then queues the rest, within its time limit). Called by the worker; safe to call again,
    even while other runs of the same import go on (RUNS of them do): each takes a chunk nobody took, and
    a chunk counts once, however many runs did it. The run that commits the last chunk ends the import."""
    run = Import.objects.defer("data").filter(pk=import_id, state__in=LIVE).first()
    if run is None:
        return False
    now = timezone.now()
    Import.objects.filter(pk=run.pk, state__in=LIVE).update(
        state=ImportState.RUNNING, started_at=run.started_at or now, moved_at=now
    )
    actor = Actor(label=f"import {run.filename}", source="import")
    table, zone, stop_at = table_of(Import.objects.get(pk=run.pk)), ZoneInfo(run.time_zone), time.monotonic() + seconds
    comma = csv_files.decimal_comma(table, run.mapping)
    while (number := _take_chunk(run, math.ceil(run.rows / CHUNK))) is not None:
        if not _run_chunk(tenant, run, number, actor, table, zone, comma):
            return False  # another run is doing that chunk, and goes on after it
        if time.monotonic() > stop_at:
            return True
    Import.objects.filter(pk=run.pk, state=ImportState.RUNNING, attempt=run.attempt, done_rows__gte=F("rows")).update(
        state=ImportState.DONE, finished_at=timezone.now(), moved_at=timezone.now()
    )
    return False


def _take_chunk(run: Import, chunks: int) -> int | None:
    """The chunk this run does next, or None when there is none for it. Past the last chunk, the first not
    committed (its run died, or is still doing it: then `_run_chunk` leaves it to that run); in order, that
    one first. None too when the import stopped or started again."""
    with transaction.atomic():
        now = Import.objects.select_for_update().only("state", "attempt", "next_chunk", "done_chunks").get(pk=run.pk)
        if now.state not in LIVE or now.attempt != run.attempt:
            return None
        left = sorted(set(range(now.next_chunk)) - set(now.done_chunks))
        if left and run.in_order:
            return left[0]
        if now.next_chunk < chunks:
            now.next_chunk += 1
            now.save(update_fields=["next_chunk"])
            return now.next_chunk - 1
    return left[0] if left else None


class ChunkDone(Exception):
    """Another run committed this chunk first: this run's work on it is rolled back."""


def _run_chunk(tenant: Tenant, run: Import, number: int, actor: Actor, table: csv_files.Table, zone: ZoneInfo,
               comma: bool) -> bool:  # fmt: skip
    """Chunk `number` with its counts and its rejected rows, in one transaction (rolled back after counting
    on a dry run, all but the counts), which marks it done last: a run that did it too is rolled back.
    False, doing nothing, while another run holds the chunk."""
    bodies = csv_files.rows_as_bodies(run.kind, table, run.mapping, zone, start=number * CHUNK, comma=comma)
    chunk = list(itertools.islice(bodies, CHUNK))
    items = [{"kind": KIND_OF_ITEM[run.kind], "data": data} for _, data in chunk]
    try:
        with transaction.atomic():
            if not _hold(run, number):
                return False
            with transaction.atomic():
                known = _stored_customers(tenant, items) if run.kind == "customers" else {}
                results = batch_ingest(tenant=tenant, items=items, actor=actor)
                if run.dry_run:
                    transaction.set_rollback(True)
            counts = _count(run.kind, items, results, known)
            ImportRejection.objects.bulk_create(
                ImportRejection(tenant=tenant, run=run, row=row, reason=_reason(result["error"]))
                for (row, _), result in zip(chunk, results, strict=True) if "error" in result
            )  # fmt: skip
            # Last, so the import's row is locked only while committing; another run waits here, then finds
            # the chunk done (or the import started again).
            done = Func(F("done_chunks"), Value(number), function="array_append")
            marked = (
                Import.objects.filter(pk=run.pk, attempt=run.attempt).exclude(done_chunks__contains=[number])
                .update(done_chunks=done, done_rows=F("done_rows") + len(chunk), moved_at=timezone.now(),
                        **{name: F(name) + n for name, n in counts.items()})
            )  # fmt: skip
            if not marked:
                raise ChunkDone
    except ChunkDone:
        pass
    return True


def _hold(run: Import, number: int) -> bool:
    """Hold chunk `number` of `run` until the transaction ends (PostgreSQL's advisory lock, keyed by the
    import's first 32 bits and the chunk; a run that dies lets go of it); False when another run holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [int.from_bytes(run.pk.bytes[:4], signed=True),
                                                                      number])  # fmt: skip
        return cursor.fetchone()[0]


def stalled(*, quiet: timedelta = QUIET) -> list[str]:
    """Queued or running imports that moved not at all for `quiet`: their task was lost (a broker restart
    loses what it held) or their worker died. Beat queues them again (engagement.tasks)."""
    since = timezone.now() - quiet
    return [str(pk) for pk in Import.objects.filter(state__in=LIVE, moved_at__lt=since).values_list("pk", flat=True)]


def _stored_customers(tenant: Tenant, items: list[dict]) -> dict:
    """The stored values of the customers a chunk names, to tell an update from no change."""
    ids = [item["data"].get("external_id") for item in items if isinstance(item["data"].get("external_id"), str)]
    return queries.stored_customers(tenant, ids)


def _count(kind: str, items: list[dict], results: list[dict], known: dict) -> dict:
    counts = dict.fromkeys(COUNTS, 0)
    for item, result in zip(items, results, strict=True):
        if "error" in result:
            counts["rejected"] += 1
        elif result["status"] == 201:
            counts["created"] += 1
        elif kind == "customers" and _changes(known.get(item["data"].get("external_id")), item["data"]):
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    return counts


def _changes(stored: dict | None, data: dict) -> bool:
    if stored is None:
        return True
    return any(stored.get(k) != v for k, v in data.items() if k in stored)


def _reason(error: dict) -> str:
    """The batch's error as people read it: its message names the field ("purchased_at: ...")."""
    return error.get("message") or "Refused."


def fail(import_id: str, message: str) -> None:
    Import.objects.filter(pk=import_id).update(state=ImportState.FAILED, error=message, finished_at=timezone.now())


def rejected_csv(run: Import) -> HttpResponse:
    """The rejected rows of an import as a CSV download (row, reason), for the page and the API alike; a
    reason is data the file brought, so a spreadsheet never runs it as a formula."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="rejected-{run.pk}.csv"'
    writer = csv.writer(response)
    writer.writerow(["row", "reason"])
    for rejection in run.rejections.all().iterator():
        writer.writerow([rejection.row, csv_files.defused(rejection.reason)])
    return response
