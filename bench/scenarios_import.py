"""import_csv: a spreadsheet of new purchases (each with its customer, as people export them from billing
or CRM) imported end to end, against COPY of the rows it stores."""

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta

from django.db import connection
from django.db.models import JSONField
from django.utils import timezone

from bench import references
from bench.scenarios import record
from engagement import imports
from engagement.models import Customer, Engagement, Import, ImportState, Purchase
from tenants.actors import Actor
from tenants.models import Tenant
from tenants.scoping import tenant_scope

HEADER = "Order ID,Customer ID,Company,Email,Segment,Offering,Purchase date,Amount,Currency\n"
SEGMENTS = ("smb", "mid-market", "enterprise")


def purchases_csv(count, offering_keys, now):
    """`count` purchases of new customers, spread over the offerings and the 60 days before today (today's
    10:30 may still be ahead in the company's time zone, and a purchase in the future is refused)."""
    lines = [HEADER]
    for i in range(count):
        day = (now - timedelta(days=1 + i % 60)).date().isoformat()
        lines.append(f"IMPORT-{i},IMPORT-C{i},Company {i},buyer{i}@example.com,{SEGMENTS[i % 3]},"
                     f"{offering_keys[i % len(offering_keys)]},{day} 10:30,{100 + i % 900}.00,EUR\n")  # fmt: skip
    return "".join(lines).encode()


def import_csv(ctx):
    """engagement.imports from the uploaded bytes to the last chunk: the file read and checked, its columns
    guessed, then run by imports.RUNS runs at once, each in a process of its own as in the worker's pool
    (forked from this one, so the time is the import's, not the broker's). The reference COPYs the customers, purchases
    and engagements it stored."""
    count = ctx.scale
    raw = purchases_csv(count, [o.key for o in ctx.scratch.offerings], timezone.now())
    start = time.perf_counter()
    run = imports.import_create(tenant=ctx.tenant, actor=Actor.system("bench"), kind="purchases",
                                filename="purchases.csv", raw=raw)  # fmt: skip
    # Queued as the page's "Import" button does, without tasks: this process is the worker.
    Import.objects.filter(pk=run.pk).update(state=ImportState.QUEUED)
    connection.close()  # not shared with the forked runs
    with ProcessPoolExecutor(imports.RUNS, mp_context=multiprocessing.get_context("fork")) as pool:
        for runner in [pool.submit(_run, ctx.tenant.pk, run.pk) for _ in range(imports.RUNS)]:
            runner.result()
    seconds = time.perf_counter() - start
    run.refresh_from_db()
    if (run.state, run.created, run.rejected) != (ImportState.DONE, count, 0):
        raise RuntimeError(f"the import ended {run.state} with {run.created} created, {run.rejected} rejected")
    reference_seconds = references.copy_rows(_stored_rows(count))
    note = f"{count:,} new purchases and customers, chunks of {imports.CHUNK:,}, {imports.RUNS} runs at once"
    return record("import_csv", count, seconds, reference="copy", reference_seconds=reference_seconds, note=note)


def _run(tenant_id, import_id):
    """One run, to the end, in a process of its own (as a worker's pool runs it), on its own connection."""
    try:
        tenant = Tenant.objects.get(pk=tenant_id)
        with tenant_scope(tenant):
            while imports.run_import(tenant, str(import_id)):
                pass
    finally:
        connection.close()


def _stored_rows(count):
    """The rows the import stored, as (model, columns, rows) for the reference."""
    engagements = Engagement.objects.filter(purchase__external_id__startswith="IMPORT-")
    tables = []
    for model, rows in ((Customer, Customer.objects.filter(external_id__startswith="IMPORT-C")),
                        (Purchase, Purchase.objects.filter(external_id__startswith="IMPORT-")),
                        (Engagement, engagements)):  # fmt: skip
        fields = model._meta.concrete_fields
        columns = [f.column for f in fields]
        # COPY takes JSON as its text.
        values = [tuple(json.dumps(v) if isinstance(f, JSONField) else v for f, v in zip(fields, row, strict=True))
                  for row in rows.values_list(*[f.attname for f in fields])]  # fmt: skip
        if len(values) != count:
            raise RuntimeError(f"{len(values)} {model.__name__} rows stored for {count} imported")
        tables.append((model, columns, values))
    return tables
