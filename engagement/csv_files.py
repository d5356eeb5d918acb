"""Reading a CSV file people made in a spreadsheet: its encoding and delimiter found, its header checked, its
columns mapped to the API's fields, and each row turned into the body the API takes (engagement.imports runs
those bodies through the same services as the API)."""

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from engagement.cleaners import criteria_in_text
from engagement.errors import Invalid

MAX_BYTES = 50 * 1024 * 1024
MAX_ROWS = 1_000_000
MAX_CELL = 100_000  # characters; csv's own limit is 128 KiB
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
ENCODINGS = {"utf-8": "UTF-8", "utf-16": "UTF-16", "cp1252": "Windows-1252"}

# The fields of each kind, as the API names them (customer.* are the inline customer of a purchase);
# "attribute" keeps a column as a customer attribute named by its header.
FIELDS = {
    "customers": ("external_id", "name", "email", "segment", "attribute"),
    "purchases": ("external_id", "customer", "customer.name", "customer.email", "customer.segment", "offering",
                  "purchased_at", "amount", "currency", "owner", "sales_rep", "success_criteria"),
    "events": ("type", "purchase", "occurred_at", "milestone", "score", "comment", "reason", "external_id"),
}  # fmt: skip
REQUIRED = {
    "customers": ("external_id", "name"),
    "purchases": ("external_id", "customer", "offering", "purchased_at"),
    "events": ("type", "purchase", "occurred_at"),
}
TIMESTAMPS = {"purchased_at", "occurred_at"}
# Headers people write for a field, beyond the field's own name (compared without case, spaces or _-.).
SYNONYMS = {
    "external_id": ("id", "customerid", "purchaseid", "orderid", "order", "invoice", "dealid", "eventid"),
    "name": ("customername", "company", "companyname", "account"),
    "customer": ("customerid", "customerexternalid", "accountid", "companyid"),
    "customer.name": ("customername", "company", "companyname", "account", "accountname"),
    "customer.email": ("email", "customeremail", "contactemail"),
    "customer.segment": ("segment", "tier", "plan"),
    "offering": ("product", "productkey", "sku", "offer"),
    "purchased_at": ("purchasedat", "purchased", "purchasedate", "date", "closedate", "soldat", "orderdate"),
    "occurred_at": ("occurredat", "date", "when", "timestamp", "time"),
    "sales_rep": ("salesrep", "rep", "seller", "dealowner"),
    "owner": ("owner", "accountowner", "csm"),
    "milestone": ("milestone", "step"),
    "purchase": ("purchase", "purchaseid", "orderid", "order", "invoice"),
    "success_criteria": ("successcriteria", "criteria", "expectations", "expectedoutcomes", "goals"),
}


@dataclass
class Table:
    """A file read: how, its header, and its data rows (lists of cells, header row excluded)."""

    encoding: str
    delimiter: str
    header: list[str]
    rows: list[list[str]]


def _problem(message: str) -> Invalid:
    return Invalid({"file": [message]})


def decode(raw: bytes, encoding: str = "") -> tuple[str, str]:
    """The text and the encoding it was read in: a byte-order mark decides, else UTF-8 when it is valid,
    else Windows-1252 (a spreadsheet's default on Windows); `encoding` forces one of ENCODINGS."""
    if not raw.strip():
        raise _problem("The file is empty.")
    if len(raw) > MAX_BYTES:
        raise _problem(f"The file is {len(raw) // 1_048_576} MB; import files up to {MAX_BYTES // 1_048_576} MB.")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = encoding or "utf-16"
    elif raw.startswith(codecs.BOM_UTF8):
        raw, encoding = raw[len(codecs.BOM_UTF8) :], encoding or "utf-8"
    if encoding and encoding not in ENCODINGS:
        raise Invalid({"encoding": [f"{encoding!r} is not one of: {', '.join(ENCODINGS)}."]})
    for candidate in [encoding] if encoding else ["utf-8", "cp1252"]:
        try:
            text = raw.decode(candidate)
        except UnicodeDecodeError as exc:
            if encoding:
                unreadable = f"The file is not {ENCODINGS[encoding]} (byte {exc.start + 1} cannot be read)."
                raise _problem(unreadable) from None
            continue
        if "\x00" in text:
            raise _problem("The file holds NUL bytes: is it a spreadsheet (.xlsx) rather than CSV? Save it as CSV.")
        return text, candidate
    raise _problem("The file cannot be read as text.")  # cp1252 reads almost anything: a binary file


def sniff(text: str) -> str:
    """The delimiter: the one of comma, semicolon and tab that splits the first row into most columns (a row
    that then has another number of cells is named by the header check)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    columns = {}
    for delimiter in DELIMITERS:
        try:
            columns[delimiter] = len(next(csv.reader([first], delimiter=delimiter), []))
        except csv.Error:
            columns[delimiter] = 0
    return max(DELIMITERS, key=lambda d: columns[d])  # ties: the first, a comma


def read(raw: bytes, *, encoding: str = "", delimiter: str = "") -> Table:
    text, encoding = decode(raw, encoding)
    csv.field_size_limit(MAX_CELL)
    delimiter = delimiter or sniff(text)
    if delimiter not in DELIMITERS:
        raise Invalid({"delimiter": ["Use a comma, a semicolon or a tab."]})
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [cell.strip() for cell in next(reader)]
        rows = []
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append(row)
            if len(rows) > MAX_ROWS:
                raise _problem(f"The file has more than {MAX_ROWS:,} rows; split it into several files.")
    except csv.Error as exc:
        raise _problem(f"Row {reader.line_num}: {_csv_error(exc)}") from None
    _check_header(header, rows, delimiter)
    return Table(encoding, delimiter, header, rows)


def _csv_error(exc: csv.Error) -> str:
    if "field larger than field limit" in str(exc):
        return f"a cell is longer than {MAX_CELL:,} characters."
    return f"the row cannot be read as CSV ({exc})."


def _check_header(header: list[str], rows: list[list[str]], delimiter: str) -> None:
    if not any(header):
        raise _problem("The first row must name the columns; it is empty.")
    blank = [str(i + 1) for i, name in enumerate(header) if not name]
    if blank:
        columns = f"Column {blank[0]} has" if len(blank) == 1 else f"Columns {', '.join(blank)} have"
        raise _problem(f"{columns} no name in the first row.")
    lowered = [name.lower() for name in header]
    twice = sorted({name for name in header if lowered.count(name.lower()) > 1})
    if twice:
        raise _problem(f"The first row names {' and '.join(repr(n) for n in twice)} alike: each column needs "
                       "a name of its own.")  # fmt: skip
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise _problem(
                f"Row {number} has {len(row)} cells but the first row names {len(header)} columns "
                f"(the file is read as {DELIMITERS[delimiter]}-separated)."
            )


def _plain(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", name.lower())


def guess(kind: str, header: list[str], remembered: dict | None = None) -> dict:
    """{column: field}: what an earlier import of this kind mapped the same column to, else the field the
    header names (its own name or a common synonym); columns without a match are left out (ignored)."""
    fields, mapping, taken = FIELDS[kind], {}, set()
    for column in header:
        field = (remembered or {}).get(column)
        if field not in fields:
            plain = _plain(column)
            field = next((f for f in fields if _plain(f) == plain), None) or next(
                (f for f in fields if plain in SYNONYMS.get(f, ()) and f not in taken), None
            )
        if not field and kind == "customers":
            field = "attribute"  # a customer's other columns are its attributes
        if field and (field == "attribute" or field not in taken):
            mapping[column] = field
            taken.add(field)
    return mapping


def check_mapping(kind: str, header: list[str], mapping: dict) -> dict:
    """The mapping as given, refused when it names an unknown column or field, a field twice, or leaves a
    required field unmapped."""
    unknown_columns = sorted(set(mapping) - set(header))
    if unknown_columns:
        raise Invalid({"mapping": [f"The file has no column {', '.join(repr(c) for c in unknown_columns)}."]})
    fields = [f for f in mapping.values() if f]
    unknown = sorted({f for f in fields if f not in FIELDS[kind]})
    if unknown:
        raise Invalid({"mapping": [f"{', '.join(repr(f) for f in unknown)}: not a field of {kind} "
                                   f"(known: {', '.join(FIELDS[kind])})."]})  # fmt: skip
    twice = sorted({f for f in fields if f != "attribute" and fields.count(f) > 1})
    if twice:
        raise Invalid({"mapping": [f"Several columns go to {', '.join(twice)}; choose one."]})
    missing = [f for f in REQUIRED[kind] if f not in fields]
    if missing:
        raise Invalid({"mapping": [f"Choose the column for {', '.join(missing)}: {kind} need it."]})
    return {column: field for column, field in mapping.items() if field}


def _timestamp(value: str, zone: ZoneInfo) -> str:
    """An ISO 8601 time as the API takes it; a time or day without an offset is read in `zone`."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # the API's cleaner says what is wrong with it
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()


DECIMAL_COMMA = re.compile(r"\d,\d+$")


def decimal_comma(table: Table, mapping: dict) -> bool:
    """Whether the file writes amounts with a decimal comma ("1.234,50"): its cells are not separated by
    commas, and one of its amounts has one. Decided once for the whole file, so "1.500" reads the same
    in every row."""
    columns = [i for i, column in enumerate(table.header) if mapping.get(column) == "amount"]
    if table.delimiter == "," or not columns:
        return False
    return any(DECIMAL_COMMA.search(row[columns[0]].strip()) for row in table.rows)


def _amount(value: str, decimal_comma: bool) -> str:
    """An amount as the API takes it ("1234.50"): "1.234,50" or "1234,50" in a file written with a
    decimal comma, "1,234.50" in one written with a decimal point."""
    thousands, decimal = (".", ",") if decimal_comma else (",", ".")
    grouped = rf"[+-]?[1-9]\d{{0,2}}(\{thousands}\d{{3}})+(\{decimal}\d+)?"
    if re.fullmatch(grouped, value) or re.fullmatch(rf"[+-]?\d+\{decimal}\d+", value):
        return value.replace(thousands, "").replace(decimal, ".")
    return value  # the API's cleaner says what is wrong with it


def body(kind: str, header: list[str], row: list[str], mapping: dict, zone: ZoneInfo, comma: bool = False) -> dict:
    """One row as the API's body for `kind` (blank cells left out, as an API client would); `comma`: the
    file writes amounts with a decimal comma."""
    data: dict = {}
    for column, cell in zip(header, row, strict=True):
        field, value = mapping.get(column), cell.strip()
        if not field or value == "":
            continue
        if field in TIMESTAMPS:
            value = _timestamp(value, zone)
        if field == "amount":
            value = _amount(value, comma)
        if field == "success_criteria":
            value = criteria_in_text(value)
        if field == "attribute":
            data.setdefault("attributes", {})[column] = value
        elif field.startswith("customer."):
            data.setdefault("customer_fields", {})[field.removeprefix("customer.")] = value
        else:
            data[field] = value
    extra = data.pop("customer_fields", None)
    if extra is not None and "customer" in data:
        data["customer"] = {"external_id": data["customer"], **extra}
    return data


def rows_as_bodies(kind: str, table: Table, mapping: dict, zone: ZoneInfo, start: int = 0,
                   comma: bool = False) -> Iterator[tuple]:  # fmt: skip
    """(row number in the file, body) from data row `start` on; the header is row 1. `comma`:
    decimal_comma(table, mapping), worked out once by the caller."""
    for index in range(start, len(table.rows)):
        yield index + 2, body(kind, table.header, table.rows[index], mapping, zone, comma)


def chunks_depend(kind: str, table: Table, mapping: dict, size: int) -> bool:
    """Whether a row depends on a row in another chunk of `size` rows, so chunks must run in file order: a
    customer brought by rows of two chunks (of a customers file; of a purchases file, with other values:
    the later row wins), or named by its external id alone in a chunk other than the one that brings it.
    Events depend only on what is stored."""
    columns: dict[str, list[int]] = {}
    for i, column in enumerate(table.header):
        columns.setdefault(mapping.get(column) or "", []).append(i)
    key = "external_id" if kind == "customers" else "customer"
    if kind == "events" or key not in columns:
        return False
    at = columns[key][0]
    values_at = [i for field, found in columns.items() for i in found
                 if field and field != key and (kind == "customers" or field.startswith("customer."))]  # fmt: skip
    brought: dict[str, tuple[int, tuple]] = {}
    named: dict[str, set[int]] = {}
    for n, row in enumerate(table.rows):
        ref, chunk, values = row[at].strip(), n // size, tuple(row[i].strip() for i in values_at)
        if kind == "customers" or any(values):
            first = brought.setdefault(ref, (chunk, values))
            if first[0] != chunk and (kind == "customers" or first[1] != values):
                return True
        else:
            named.setdefault(ref, set()).add(chunk)
    return any(ref in brought and chunks != {brought[ref][0]} for ref, chunks in named.items())


def defused(cell: str) -> str:
    """A cell a spreadsheet would run as a formula (= + - @ first), made text."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
