"""CSV imports: files as spreadsheets save them, read and mapped; a dry run that stores nothing; a run through
the API's rules that goes on where it stopped, and changes nothing the second time; the rejected rows with
their reasons; the page and the API; bad files refused as a whole, naming the row or column."""

import codecs
import csv
import io
import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from engagement import csv_files, imports
from engagement.errors import Invalid
from engagement.models import Customer, Engagement, Event, Import, ImportState, Purchase
from tenants.actors import Actor
from tenants.api_keys import api_key_create
from tenants.scoping import tenant_scope
from tests.conftest import run_concurrently
from tests.web.test_assignment import _rule
from tests.web.test_pages import text

PURCHASES = (
    "Order ID;Customer ID;Company;Offering;Purchase date;Amount;Currency;Segment\r\n"
    "IMP-1;IC-1;Müller & Söhne;acme-software;2026-11-02 09:30;120.00;EUR;smb\r\n"
    "IMP-2;IC-2;Zoë Café;acme-software;2026-11-03;80.50;EUR;smb\r\n"
    'IMP-3;IC-3;=HYPERLINK("x");acme-software;yesterday;10;EUR;smb\r\n'
    "IMP-4;IC-4;Nobody AG;no-such-offering;2026-11-03 10:00;10;EUR;smb\r\n"
)


def _create(world, raw, kind="purchases", **options):
    with tenant_scope(world.tenant):
        return imports.import_create(tenant=world.tenant, actor=Actor.system("tests"), kind=kind,
                                     filename="orders.csv", raw=raw, **options)  # fmt: skip


def _run(world, run, **options):
    """What the worker does, in this process."""
    with tenant_scope(world.tenant):
        while imports.run_import(world.tenant, str(run.pk), **options):
            pass
        run.refresh_from_db()
    return run


def _start(world, run, dry_run=False):
    with tenant_scope(world.tenant):
        return imports.import_start(tenant=world.tenant, actor=Actor.system("tests"), run=run, mapping=run.mapping,
                                    time_zone="Europe/Berlin", dry_run=dry_run)  # fmt: skip


def _counts(run):
    return (run.state, run.rows, run.created, run.updated, run.unchanged, run.rejected)


# Reading files ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [(codecs.BOM_UTF8 + PURCHASES.encode(), "utf-8"), (PURCHASES.encode("utf-16"), "utf-16"),
     (PURCHASES.encode("cp1252"), "cp1252"), (PURCHASES.encode(), "utf-8")],
)  # fmt: skip
def test_a_spreadsheet_s_encoding_and_delimiter_are_found(raw, encoding):
    table = csv_files.read(raw)
    assert (table.encoding, table.delimiter, len(table.rows)) == (encoding, ";", 4)
    assert table.rows[0][2] == "Müller & Söhne" and table.header[0] == "Order ID"


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_comma_and_tab_are_found_too(delimiter):
    raw = PURCHASES.replace(";", delimiter).replace("Müller & Söhne", "Mueller").encode()
    assert csv_files.read(raw).delimiter == delimiter


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"", "The file is empty."),
     (b"\n\n", "The file is empty."),
     (b"PK\x03\x04\x00\x00binary", "NUL bytes"),
     (b";;\n1;2;3\n", "The first row must name the columns; it is empty."),
     (b"id;;\n1;2;3\n", "Columns 2, 3 have no name in the first row."),
     (b"id,name,ID\n1,a,2\n", "The first row names 'ID' and 'id' alike"),
     (b"id;name\n1;a\n2,b\n", "Row 3 has 1 cells but the first row names 2 columns (the file is read as semicolon"),
     (b"id,name\n1," + b"x" * 100_001 + b"\n", "Row 2: a cell is longer than 100,000 characters."),
     (b"\xff\xfe\x00", "The file is not UTF-16 (byte 3 cannot be read).")],
)  # fmt: skip
def test_a_bad_file_is_refused_as_a_whole_naming_the_row_or_column(raw, message):
    with pytest.raises(Invalid) as refused:
        csv_files.read(raw)
    assert message in " ".join(refused.value.message_dict["file"])


def test_too_many_rows_are_refused(monkeypatch):
    monkeypatch.setattr(csv_files, "MAX_ROWS", 3)
    with pytest.raises(Invalid, match="more than 3 rows"):
        csv_files.read(b"id\n1\n2\n3\n4\n5\n")


@pytest.mark.parametrize(
    ("delimiter", "cells", "amounts"),
    [(";", ["2636,00", "1.500", "-12,5"], ["2636.00", "1500", "-12.5"]),  # a decimal comma in the file
     (";", ["1.234.567,5"], ["1234567.5"]), (";", ["1234.50", "1.500"], ["1234.50", "1.500"]),
     ("\t", ["1.500", "0.125"], ["1.500", "0.125"]), ("\t", ["0,125", "0.125"], ["0.125", "0.125"]),
     (",", ['"1,234.50"', "99.90"], ["1234.50", "99.90"]), (";", ["12,3,4"], ["12,3,4"])],
)  # fmt: skip
def test_amounts_are_read_as_the_spreadsheet_wrote_them(delimiter, cells, amounts):
    raw = delimiter.join(["Order", "Customer", "Product", "Close date", "Amount"]) + "\n"
    raw += "".join(
        delimiter.join([f"O-{n}", "C-1", "software", "2026-11-02", cell]) + "\n" for n, cell in enumerate(cells)
    )
    table = csv_files.read(raw.encode())
    mapping = csv_files.guess("purchases", table.header)
    assert mapping["Product"] == "offering" and mapping["Amount"] == "amount"
    comma = csv_files.decimal_comma(table, mapping)
    bodies = csv_files.rows_as_bodies("purchases", table, mapping, ZoneInfo("UTC"), comma=comma)
    assert [data["amount"] for _, data in bodies] == amounts


def _purchases_file(rows):
    return csv_files.read(("external_id,customer,customer.name,offering,purchased_at\n" + "".join(rows)).encode())


def test_chunks_run_in_file_order_when_a_row_needs_a_row_of_another_chunk():
    mapping = {c: c for c in ("external_id", "customer", "customer.name", "offering", "purchased_at")}
    brought_then_named = _purchases_file(["P-1,C-1,One,software,2026-11-02\n", "P-2,C-1,,software,2026-11-03\n"])
    assert csv_files.chunks_depend("purchases", brought_then_named, mapping, size=1)
    assert not csv_files.chunks_depend("purchases", brought_then_named, mapping, size=2)  # one chunk
    same_values = _purchases_file(["P-1,C-1,One,software,2026-11-02\n", "P-2,C-1,One,software,2026-11-03\n"])
    assert not csv_files.chunks_depend("purchases", same_values, mapping, size=1)
    renamed = _purchases_file(["P-1,C-1,One,software,2026-11-02\n", "P-2,C-1,Uno,software,2026-11-03\n"])
    assert csv_files.chunks_depend("purchases", renamed, mapping, size=1)
    customers = csv_files.read(b"external_id,name\nC-1,One\nC-2,Two\nC-1,One\n")
    assert csv_files.chunks_depend("customers", customers, {"external_id": "external_id", "name": "name"}, size=2)


def test_in_file_order_a_run_leaves_a_chunk_another_run_is_doing_and_no_later_chunk_is_taken(acme, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 1)
    rows = "external_id,customer,customer.name,offering,purchased_at\n"
    rows += "O-1,OC-1,One,acme-software,2026-11-02\nO-2,OC-1,,acme-software,2026-11-03\n"
    run = _start(acme, _create(acme, rows.encode()))
    assert run.in_order
    with tenant_scope(acme.tenant):
        assert imports._take_chunk(run, 2) == 0
        assert imports._take_chunk(run, 2) == 0  # not chunk 1: the run doing chunk 0 goes on after it
    finished = _run(acme, run)
    assert _counts(finished) == ("done", 2, 2, 0, 0, 0)


def test_a_run_left_from_a_dry_run_does_nothing_to_the_real_import(acme):
    run = _start(acme, _create(acme, PURCHASES.encode()), dry_run=True)
    with tenant_scope(acme.tenant):
        left_over = Import.objects.defer("data").get(pk=run.pk)
        Import.objects.filter(pk=run.pk).update(state=ImportState.DONE)  # a run ended it; another is still busy
        real = _start(acme, Import.objects.get(pk=run.pk))
    assert real.attempt == left_over.attempt + 1
    with tenant_scope(acme.tenant):
        assert imports._take_chunk(left_over, 1) is None
        table = imports.table_of(real)
        assert imports._run_chunk(acme.tenant, left_over, 0, Actor.system("tests"), table, ZoneInfo("UTC"), False)
        real.refresh_from_db()
        assert (real.done_chunks, real.done_rows, real.created) == ([], 0, 0)
    assert _counts(_run(acme, real)) == ("done", 4, 2, 0, 0, 2)


def test_columns_are_guessed_from_their_names_and_an_earlier_import_s_choice():
    header = ["Order ID", "Customer ID", "Company", "Offering", "Purchase date", "Notes"]
    assert csv_files.guess("purchases", header) == {
        "Order ID": "external_id", "Customer ID": "customer", "Company": "customer.name", "Offering": "offering",
        "Purchase date": "purchased_at",
    }  # fmt: skip
    assert csv_files.guess("purchases", header, {"Notes": "customer.segment"})["Notes"] == "customer.segment"


# Running --------------------------------------------------------------------------------------------------


def test_a_dry_run_counts_and_stores_nothing_then_the_run_stores_by_the_api_s_rules(acme):
    _rule(acme, ["service"])
    run = _create(acme, PURCHASES.encode("cp1252"))
    assert run.state == ImportState.DRAFT and run.mapping["Segment"] == "customer.segment"
    dry = _run(acme, _start(acme, run, dry_run=True))
    assert _counts(dry) == ("done", 4, 2, 0, 0, 2)
    with tenant_scope(acme.tenant):
        assert not Purchase.objects.filter(external_id__startswith="IMP-").exists()

    done = _run(acme, _start(acme, dry, dry_run=False))
    assert _counts(done) == ("done", 4, 2, 0, 0, 2)
    with tenant_scope(acme.tenant):
        stored = Purchase.objects.select_related("customer", "engagement__owner__user").get(external_id="IMP-2")
        # A day without a time is midnight in the chosen zone (Berlin, UTC+1 in November).
        assert stored.purchased_at.isoformat() == "2026-11-02T23:00:00+00:00"
        assert stored.customer.name == "Zoë Café" and stored.customer.segment == "smb"
        assert stored.engagement.owner.user.email == "service@acme.test"  # owner rules apply to imports too
        reasons = dict(done.rejections.values_list("row", "reason"))
    assert reasons[4].startswith("purchased_at: 'yesterday' is not an ISO 8601 timestamp")
    assert "no-such-offering" in reasons[5]


def test_the_same_file_twice_changes_nothing(acme):
    first = _run(acme, _start(acme, _create(acme, PURCHASES.encode())))
    again = _run(acme, _start(acme, _create(acme, PURCHASES.encode())))
    assert _counts(first)[2] == 2 and _counts(again) == ("done", 4, 0, 0, 2, 2)
    with tenant_scope(acme.tenant):
        assert Purchase.objects.filter(external_id__startswith="IMP-").count() == 2


def test_a_run_stopped_between_chunks_goes_on_where_it_stopped_and_ends_as_one_clean_run(acme, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 2)
    rows = "external_id,name,segment\n" + "".join(f"C-{n},Customer {n},smb\n" for n in range(7))
    run = _start(acme, _create(acme, rows.encode(), kind="customers"))
    with tenant_scope(acme.tenant):
        assert imports.run_import(acme.tenant, str(run.pk), seconds=0) is True  # one chunk, then it stops
        run.refresh_from_db()
        assert (run.state, run.done_rows, run.created) == ("running", 2, 2)
    finished = _run(acme, run)
    assert _counts(finished) == ("done", 7, 7, 0, 0, 0)
    with tenant_scope(acme.tenant):
        assert Customer.objects.filter(external_id__startswith="C-").count() == 7
    renamed = rows.replace("Customer 3,", "Customer Three,")
    again = _run(acme, _start(acme, _create(acme, renamed.encode(), kind="customers")))
    assert _counts(again) == ("done", 7, 0, 1, 6, 0)


def test_an_import_an_error_stopped_goes_on_from_the_page_after_the_rows_it_did(acme, login, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 2)
    rows = "external_id,name\n" + "".join(f"C-{n},Customer {n}\n" for n in range(5))
    run = _start(acme, _create(acme, rows.encode(), kind="customers"))
    with tenant_scope(acme.tenant):
        assert imports.run_import(acme.tenant, str(run.pk), seconds=0) is True
        imports.fail(str(run.pk), "Stopped by an unexpected error (KeyError); the rows done stay done.")
    client = login(acme.members["admin"])
    page = text(client.get(acme.path(f"settings/imports/{run.id}/")))
    assert "Import: failed" in page and "2 of 5 rows were done" in page and "Go on with the rows not done" in page

    response = client.post(acme.path(f"settings/imports/{run.id}/start/"))
    assert response.status_code == 302
    finished = _run(acme, run)
    assert _counts(finished) == ("done", 5, 5, 0, 0, 0)
    with tenant_scope(acme.tenant):
        assert Customer.objects.filter(external_id__startswith="C-").count() == 5
        with pytest.raises(Invalid, match="Only an import that stopped"):
            imports.import_resume(tenant=acme.tenant, actor=Actor.system("tests"), run=finished)


def test_a_chunk_two_runs_did_is_stored_and_counted_once(acme):
    _run(acme, _start(acme, _create(acme, PURCHASES.encode())))
    events = "type,purchase,occurred_at,milestone\nmilestone,IMP-1,2026-11-04 10:00,m1\n"
    run = _start(acme, _create(acme, events.encode(), kind="events"))
    with tenant_scope(acme.tenant):
        assert imports._take_chunk(run, 1) == 0
        # The second time as a run does that took the chunk while the first was about to commit it.
        for _ in range(2):
            imports._run_chunk(
                acme.tenant, run, 0, Actor.system("tests"), imports.table_of(run), ZoneInfo("UTC"), False
            )
        assert imports._take_chunk(run, 1) is None
        run.refresh_from_db()
        assert run.done_chunks == [0] and (run.done_rows, run.created, run.rejected) == (1, 1, 0)
        assert Event.objects.filter(engagement__purchase__external_id="IMP-1").count() == 1


def test_a_chunk_another_run_holds_is_left_to_that_run(acme):
    run = _start(acme, _create(acme, b"external_id,name\nH-1,Held\n", kind="customers"))
    held, release = threading.Event(), threading.Event()

    def holder():  # a run in the middle of chunk 0
        try:
            with tenant_scope(acme.tenant), transaction.atomic():
                assert imports._hold(run, 0)
                held.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    try:
        with tenant_scope(acme.tenant):
            assert imports.run_import(acme.tenant, str(run.pk)) is False
            run.refresh_from_db()
            assert (run.state, run.done_rows) == ("running", 0)
            assert not Customer.objects.filter(external_id="H-1").exists()
    finally:
        release.set()
        thread.join()
    assert _counts(_run(acme, run)) == ("done", 1, 1, 0, 0, 0)  # a later run takes the chunk left undone


def test_events_follow_the_api_s_rules(acme):
    _run(acme, _start(acme, _create(acme, PURCHASES.encode())))
    events = (
        "type,purchase,occurred_at,milestone,score\n"
        "milestone,IMP-1,2026-11-04 10:00,m1,\n"
        "milestone,IMP-1,2026-11-01 10:00,m2,\n"  # before the purchase
        "satisfaction,IMP-1,2026-11-05 10:00,,9\n"
    )
    run = _run(acme, _start(acme, _create(acme, events.encode(), kind="events")))
    assert _counts(run) == ("done", 3, 1, 0, 0, 2)
    with tenant_scope(acme.tenant):
        engagement = Engagement.objects.get(purchase__external_id="IMP-1")
        assert engagement.next_step == "m2"
        reasons = sorted(run.rejections.values_list("reason", flat=True))
    assert "is before the purchase" in reasons[0] and "from 1 to 5" in reasons[1]


# The pages and the API -------------------------------------------------------------------------------------


def test_an_admin_uploads_maps_and_follows_an_import_on_the_pages(acme, login):
    client = login(acme.members["admin"])
    upload = SimpleUploadedFile("orders.csv", PURCHASES.encode("utf-16"), content_type="text/csv")
    response = client.post(acme.path("settings/imports/"), {"kind": "purchases", "file": upload})
    with tenant_scope(acme.tenant):
        run = Import.objects.get()
    assert response.status_code == 302 and response["Location"] == acme.path(f"settings/imports/{run.id}/")
    page = text(client.get(response["Location"]))
    assert "4 rows of purchases, read as UTF-16, semicolon-separated" in page
    assert "2 IMP-1 IC-1 Müller" in page, page[page.find("The first rows") :][:600]  # the preview

    body = {f"map_{i}": field for i, field in enumerate(["external_id", "customer", "customer.name", "offering",
                                                          "purchased_at", "", "", ""])}  # fmt: skip
    response = client.post(acme.path(f"settings/imports/{run.id}/start/"), {**body, "time_zone": "UTC"})
    assert response.status_code == 302
    _run(acme, run)
    page = text(client.get(acme.path(f"settings/imports/{run.id}/")))
    assert "Import: done" in page and "Created 2" in page and "Rejected 2" in page

    rejected = client.get(acme.path(f"settings/imports/{run.id}/rejected.csv")).content.decode()
    assert next(csv.reader(io.StringIO(rejected))) == ["row", "reason"]
    assert "\n4," in rejected
    history = text(client.get(acme.path("settings/imports/")))
    assert "orders.csv purchases" in history


def test_the_page_refuses_a_bad_file_and_a_mapping_without_a_required_field(acme, login):
    client = login(acme.members["admin"])
    empty = SimpleUploadedFile("empty.csv", b"", content_type="text/csv")
    response = client.post(acme.path("settings/imports/"), {"kind": "purchases", "file": empty})
    assert response.status_code == 400 and "File: The file is empty." in text(response)
    run = _create(acme, PURCHASES.encode())
    response = client.post(acme.path(f"settings/imports/{run.id}/start/"), {"map_0": "external_id"})
    assert response.status_code == 400
    assert "Columns: Choose the column for customer, offering, purchased_at" in text(response)


def test_samples_can_be_downloaded_and_imported_as_they_are(acme, login):
    sample = login(acme.members["admin"]).get(acme.path("settings/imports/samples/customers/"))
    assert sample["Content-Disposition"].endswith('"pov-customers-sample.csv"')
    run = _run(acme, _start(acme, _create(acme, sample.content, kind="customers")))
    assert _counts(run) == ("done", 1, 1, 0, 0, 0)
    with tenant_scope(acme.tenant):
        assert Customer.objects.get(external_id="C-1001").attributes == {"plan": "premium"}


@pytest.mark.parametrize("role", ["owner", "sales", "service", "viewer"])
def test_only_admins_import(acme, login, role):
    client = login(acme.members[role])
    assert client.get(acme.path("settings/imports/")).status_code == 403
    upload = SimpleUploadedFile("orders.csv", PURCHASES.encode(), content_type="text/csv")
    assert client.post(acme.path("settings/imports/"), {"kind": "purchases", "file": upload}).status_code == 403
    with tenant_scope(acme.tenant):
        assert not Import.objects.exists()


def _api(world):
    with tenant_scope(world.tenant):
        _, raw = api_key_create(tenant=world.tenant, name="Importer", scope="write", actor=Actor.system("tests"))
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def test_the_api_queues_an_import_and_reports_it(acme, charlie):
    api = _api(acme)
    mapping = '{"Order ID": "external_id", "Customer ID": "customer", "Company": "customer.name", ' \
              '"Offering": "offering", "Purchase date": "purchased_at"}'  # fmt: skip
    upload = SimpleUploadedFile("orders.csv", PURCHASES.encode(), content_type="text/csv")
    response = api.post("/api/v1/imports/", {"kind": "purchases", "file": upload, "mapping": mapping})
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["state"], body["rows"], body["dry_run"]) == ("queued", 4, False)
    with tenant_scope(acme.tenant):
        _run(acme, Import.objects.get(pk=body["id"]))
    report = api.get(f"/api/v1/imports/{body['id']}/").json()
    assert (report["state"], report["created"], report["rejected"]) == ("done", 2, 2)
    errors = list(csv.reader(io.StringIO(api.get(report["errors_url"]).content.decode())))
    assert errors[0] == ["row", "reason"] and [row for row, _ in errors[1:]] == ["4", "5"]
    assert errors[1][1].startswith("purchased_at: 'yesterday' is not")
    assert _api(charlie).get(f"/api/v1/imports/{body['id']}/").status_code == 404


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"kind": "purchases"}, "Send the CSV file"),
     ({"kind": "orders", "file": True}, "'orders' is not one of"),
     ({"kind": "purchases", "file": True, "mapping": "{nope"}, "Send JSON"),
     ({"kind": "purchases", "file": True, "mapping": '{"Nope": "external_id"}'}, "The file has no column 'Nope'"),
     ({"kind": "purchases", "file": True, "mapping": '{"Order ID": "external_id"}'}, "Choose the column for")],
)  # fmt: skip
def test_the_api_refuses_a_bad_import_saying_what_is_wrong(acme, fields, message):
    if fields.get("file"):
        fields = {**fields, "file": SimpleUploadedFile("orders.csv", PURCHASES.encode(), content_type="text/csv")}
    response = _api(acme).post("/api/v1/imports/", fields)
    assert response.status_code == 400
    assert message in response.content.decode()
    with tenant_scope(acme.tenant):
        assert not Import.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_quiet_live_import_is_found_for_beat_and_two_runs_at_once_count_each_row_once(acme, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 2)
    rows = "external_id,name\n" + "".join(f"Q-{n},Quiet {n}\n" for n in range(9))
    run = _start(acme, _create(acme, rows.encode(), kind="customers"))
    with tenant_scope(acme.tenant):
        assert imports.stalled() == []
        Import.objects.filter(pk=run.pk).update(moved_at=timezone.now() - timedelta(minutes=10))
        assert imports.stalled() == [str(run.pk)]

    # As beat's resume might while the lost task turns up after all: both runs go on from the same row.
    def another_run():
        with tenant_scope(acme.tenant):
            _run(acme, Import.objects.get(pk=run.pk))

    run_concurrently(another_run, times=2)
    with tenant_scope(acme.tenant):
        run.refresh_from_db()
        assert _counts(run) == ("done", 9, 9, 0, 0, 0) and run.done_rows == 9
        assert Customer.objects.filter(external_id__startswith="Q-").count() == 9
        assert imports.stalled() == []


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx"])
def test_a_cell_a_spreadsheet_would_run_is_made_text(cell):
    assert csv_files.defused(cell) == "'" + cell and csv_files.defused("plain") == "plain"


def test_a_file_of_megabytes_is_taken_by_the_page(acme, login):
    rows = "external_id,name,segment\n" + "".join(f"MB-{n:06d},Customer number {n:06d},smb\n" for n in range(60_000))
    assert len(rows) > 2 * 1024 * 1024  # past Django's in-memory upload size: the file is spooled to disk
    upload = SimpleUploadedFile("big.csv", rows.encode(), content_type="text/csv")
    response = login(acme.members["admin"]).post(acme.path("settings/imports/"), {"kind": "customers", "file": upload})
    assert response.status_code == 302
    with tenant_scope(acme.tenant):
        assert Import.objects.get().rows == 60_000
