"""Helpers of the record's hand-written statements: many rows as one array parameter per column.

`unnest(Model, names, params=...)` is `unnest(%(p_a)s::<type>[], ...) AS v(a, ...)`, typed from the
model's columns, and `columns(Model, names, rows, params=...)` its parameters, so a statement costs the
same for one row or a thousand. Only quoted names from the models are interpolated into SQL; every value
is a parameter.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.db.models import Field, FloatField, Model


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def field(model: type[Model], name: str) -> Field:
    found = model._meta.get_field(name)
    assert isinstance(found, Field), name
    return found


def table(model: type[Model]) -> str:
    return quote(model._meta.db_table)


def _array_format() -> str:
    """Arrays go binary (`b`: psycopg encodes thousands of UUIDs and timestamps in C) when PostgreSQL binds
    the parameters; text (`s`) when psycopg quotes them on the client (DATABASE_PREPARED_STATEMENTS=0)."""
    return "b" if connection.settings_dict["OPTIONS"].get("server_side_binding") else "s"


def array(name: str) -> str:
    """The placeholder of the array parameter `name`: binary when PostgreSQL binds the parameters, so
    psycopg encodes a thousand UUIDs or timestamps in C (a batch of 1,000 events spent 60 of 250 ms
    encoding them as text); text when psycopg quotes them itself (DATABASE_PREPARED_STATEMENTS=0)."""
    return f"%({name})b" if connection.settings_dict["OPTIONS"].get("server_side_binding") else f"%({name})s"


def unnest(model: type[Model], names: Sequence[str], *, params: str = "v") -> str:
    arrays = ", ".join(f"{array(f'{params}_{name}')}::{field(model, name).db_type(connection)}[]" for name in names)
    return f"unnest({arrays}) AS v({', '.join(quote(name) for name in names)})"


def columns(model: type[Model], names: Sequence[str], rows: Sequence[Sequence[Any]], *, params: str = "v") -> dict:
    """The parameters of `unnest(model, names, params=params)` for `rows` (tuples in `names` order)."""
    values = [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in names]
    for i, name in enumerate(names):
        # A whole number among floats would make the array an integer one.
        if isinstance(field(model, name), FloatField):
            values[i] = [None if value is None else float(value) for value in values[i]]
    return {f"{params}_{name}": column for name, column in zip(names, values, strict=True)}


@contextmanager
def fast_timestamps() -> Iterator[CursorWrapper]:
    """A cursor that reads timestamps with psycopg's own loader, in C: Django's, in Python, took a quarter
    of a 1,000-event batch (56 of 230 ms) reading the events' and engagements' times. The same instants,
    aware, in UTC."""
    with connection.cursor() as cursor:
        oid = psycopg.adapters.types["timestamptz"].oid
        cursor.cursor.adapters.register_loader(oid, psycopg.adapters.get_loader(oid, psycopg.pq.Format.TEXT))
        yield cursor


def insert_all(model: type[Model], objects: Sequence[Model], now: Any) -> None:
    """INSERT new instances of `model` with one statement over unnest arrays: bulk_create binds one
    parameter per cell (22,000 for a thousand engagements), which cost more than the insert itself.
    `auto_now` and `auto_now_add` columns get `now`, as bulk_create would give them."""
    fields = model._meta.concrete_fields
    for obj in objects:
        for f in fields:
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                setattr(obj, f.attname, now)
    names = [f.attname for f in fields]
    rows = [tuple(getattr(obj, name) for name in names) for obj in objects]
    listed = ", ".join(quote(f.column) for f in fields)
    sql = f"INSERT INTO {table(model)} ({listed}) SELECT * FROM {unnest(model, names)}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, columns(model, names, rows))
