"""Helpers of the record's hand-written statements: many rows as one array parameter per column.

`unnest(Model, names, params=...)` is `unnest(%(p_a)s::<type>[], ...) AS v(a, ...)`, typed from the
model's columns, and `columns(Model, names, rows, params=...)` its parameters, so a statement costs the
same for one row or a thousand. Only quoted names from the models are interpolated into SQL; every value
is a parameter.
"""

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, FloatField, Model


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def field(model: type[Model], name: str) -> Field:
    found = model._meta.get_field(name)
    assert isinstance(found, Field), name
    return found


def table(model: type[Model]) -> str:
    return quote(model._meta.db_table)


def unnest(model: type[Model], names: Sequence[str], *, params: str = "v") -> str:
    arrays = ", ".join(f"%({params}_{name})s::{field(model, name).db_type(connection)}[]" for name in names)
    return f"unnest({arrays}) AS v({', '.join(quote(name) for name in names)})"


def columns(model: type[Model], names: Sequence[str], rows: Sequence[Sequence[Any]], *, params: str = "v") -> dict:
    """The parameters of `unnest(model, names, params=params)` for `rows` (tuples in `names` order)."""
    values = [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in names]
    for i, name in enumerate(names):
        # A whole number among floats would make the array an integer one.
        if isinstance(field(model, name), FloatField):
            values[i] = [None if value is None else float(value) for value in values[i]]
    return {f"{params}_{name}": column for name, column in zip(names, values, strict=True)}
