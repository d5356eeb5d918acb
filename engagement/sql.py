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
from django.db.models import Field, FloatField, JSONField, Model
from psycopg.types.json import Jsonb

from pov.rows import table  # the one quoting of a model's table, for this module's users too


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def field(model: type[Model], name: str) -> Field:
    found = model._meta.get_field(name)
    assert isinstance(found, Field), name
    return found


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
        elif isinstance(field(model, name), JSONField):
            values[i] = [None if value is None else Jsonb(value) for value in values[i]]
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


def insert_rows(model: type[Model], names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """INSERT `rows` (tuples in `names` order, attribute names of `model`) with one statement over unnest
    arrays: bulk_create binds one parameter per cell (22,000 for a thousand engagements), which cost more
    than the insert itself."""
    listed = ", ".join(quote(field(model, name).column) for name in names)
    sql = f"INSERT INTO {table(model)} ({listed}) SELECT * FROM {unnest(model, names)}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, columns(model, names, rows))
