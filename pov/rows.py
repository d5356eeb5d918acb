"""Model instances from one hand-written SELECT of several joined tables.

For the few lookups every API request makes, compiling the ORM query costs more than running it; those
are written by hand, select `columns((alias, Model), ...)` and become instances with `instances`, which
uses Model.from_db as Django's own loading does, after the fields' own conversions (JSON text to
values). A model whose row the join left empty comes back None.
"""

from collections.abc import Sequence

from django.db import connection
from django.db.models import Field, Model


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def columns(*parts: tuple[str, type[Model]]) -> str:
    return ", ".join(f'{alias}."{f.column}"' for alias, model in parts for f in model._meta.concrete_fields)


def instances(row: Sequence, *parts: tuple[str, type[Model]]) -> list:
    """One instance (or None) per (alias, Model) of `columns(*parts)`, in order."""
    built, start = [], 0
    for _, model in parts:
        fields = model._meta.concrete_fields
        values = [_converted(f, value) for f, value in zip(fields, row[start : start + len(fields)], strict=True)]
        start += len(fields)
        built.append(None if values[0] is None else model.from_db("default", [f.attname for f in fields], values))
    return built


def _converted(field: Field, value: object) -> object:
    convert = getattr(field, "from_db_value", None)
    return value if convert is None or value is None else convert(value, None, connection)
