"""Settings → Import (admins): upload a CSV file, map its columns, preview the first rows, dry-run or run it,
follow its progress, download the rejected rows; and a sample file per kind. Writes go through
engagement.imports."""

import csv
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from engagement import csv_files, imports, queries
from engagement.errors import Invalid
from engagement.models import Import, ImportState
from tenants.scoping import get_or_404
from tenants.views import time_zone_choices
from tenants.web import ADMIN_ONLY, error_messages, roles, web_actor

SAMPLES = {
    "customers": [["external_id", "name", "email", "segment", "plan"],
                  ["C-1001", "Nordlicht GmbH", "it@nordlicht.example", "smb", "premium"]],
    "purchases": [["external_id", "customer", "customer.name", "offering", "purchased_at", "amount", "currency"],
                  ["INV-1001", "C-1001", "Nordlicht GmbH", "software", "2026-05-01 09:30", "1200.00", "EUR"]],
    "events": [["type", "purchase", "occurred_at", "milestone", "score", "comment", "reason"],
               ["milestone", "INV-1001", "2026-05-04 14:00", "kickoff", "", "", ""],
               ["satisfaction", "INV-1001", "2026-05-20 10:00", "", "5", "Invoices go out in a day now", ""]],
}  # fmt: skip
LABELS = {"file": "File", "kind": "Kind of rows", "mapping": "Columns", "time_zone": "Time zone",
          "encoding": "Encoding"}  # fmt: skip


def _history_page(request, errors=(), status=200):
    context = {"imports": Import.objects.defer("data")[:50], "errors": errors, "kinds": csv_files.FIELDS,
               "encodings": csv_files.ENCODINGS, "names": queries.responsible_and_names()[1]}  # fmt: skip
    return render(request, "engagement/imports.html", context, status=status)


@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def imports_page(request, slug):
    if request.method != "POST":
        return _history_page(request)
    upload = request.FILES.get("file")
    try:
        raw = imports.uploaded(upload, "Choose a CSV file.")
        run = imports.import_create(
            tenant=request.tenant, actor=web_actor(request), kind=request.POST.get("kind", ""),
            filename=upload.name, raw=raw, encoding=request.POST.get("encoding", ""),
        )  # fmt: skip
    except Invalid as exc:
        return _history_page(request, error_messages(exc, LABELS), status=400)
    return HttpResponseRedirect(reverse("import", args=[slug, run.id]))


def _progress(run: Import) -> dict:
    """Rows a second and the time left, from the run so far."""
    if not run.started_at or not run.done_rows:
        return {"percent": 0, "rate": None, "left": None}
    seconds = max(((run.finished_at or timezone.now()) - run.started_at).total_seconds(), 0.001)
    rate = run.done_rows / seconds
    left = (run.rows - run.done_rows) / rate if rate else None
    return {"percent": int(100 * run.done_rows / run.rows), "rate": round(rate), "left": round(left or 0)}


@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def import_page(request, slug, import_id, errors=(), status=200):
    run = get_or_404(Import.objects.defer("data"), id=import_id)
    names = queries.responsible_and_names()[1]
    context = {"run": run, "errors": errors, "progress": _progress(run), "names": names}
    if run.state in (ImportState.DRAFT, ImportState.DONE) and (run.state == ImportState.DRAFT or run.dry_run):
        table = imports.table_of(run)
        mapping = run.mapping
        context.update(
            columns=[(i, column, mapping.get(column, "")) for i, column in enumerate(table.header)],
            fields=csv_files.FIELDS[run.kind], required=csv_files.REQUIRED[run.kind],
            preview=imports.preview(run, mapping, ZoneInfo(run.time_zone)), time_zones=time_zone_choices(),
            delimiter=csv_files.DELIMITERS[run.delimiter], encoding=csv_files.ENCODINGS[run.encoding],
        )  # fmt: skip
    if request.htmx:  # the progress, polled while the run goes on; once it ended, the whole page again
        response = render(request, "engagement/import_progress.html", context, status=status)
        if run.state not in (ImportState.QUEUED, ImportState.RUNNING):
            response["HX-Refresh"] = "true"
        return response
    return render(request, "engagement/import.html", context, status=status)


@require_POST
@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def import_start(request, slug, import_id):
    run = get_or_404(Import.objects.defer("data"), id=import_id)
    if run.state == ImportState.FAILED:  # "Go on": the columns stay as they were
        imports.import_resume(tenant=request.tenant, actor=web_actor(request), run=run)
        messages.success(request, "Import queued: it goes on after the rows already done.")
        return HttpResponseRedirect(reverse("import", args=[slug, run.id]))
    header = imports.table_of(run).header
    mapping = {column: request.POST.get(f"map_{i}", "") for i, column in enumerate(header)}
    try:
        imports.import_start(
            tenant=request.tenant, actor=web_actor(request), run=run, mapping=mapping,
            time_zone=request.POST.get("time_zone", ""), dry_run="dry_run" in request.POST,
        )  # fmt: skip
    except Invalid as exc:
        run.mapping = mapping  # shown again as chosen (not saved)
        return import_page(request, slug, import_id, errors=error_messages(exc, LABELS), status=400)
    messages.success(request, "Dry run queued: nothing is stored." if run.dry_run else "Import queued.")
    return HttpResponseRedirect(reverse("import", args=[slug, run.id]))


@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def import_rejected(request, slug, import_id):
    return imports.rejected_csv(get_or_404(Import.objects.defer("data"), id=import_id))


@roles(ADMIN_ONLY, read=ADMIN_ONLY)
def import_sample(request, slug, kind):
    if kind not in SAMPLES:
        raise Http404
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="pov-{kind}-sample.csv"'
    csv.writer(response).writerows(SAMPLES[kind])
    return response
