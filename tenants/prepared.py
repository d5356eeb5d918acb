"""Querysets compiled once and run many times with new values, for the hot paths of the API.

Django compiles a queryset's SQL on every evaluation. For the lookups each API request makes (the
key, and the engagement with its related rows, locked), compiling costs more than running the query
on PostgreSQL. `Prepared(build, scoped=...)` compiles `build(*markers)` once per database connection,
finds where each marker's value sits among the parameters, and on each call runs the same SQL with the
call's values there, building the instances (select_related rows included) as Django's own
ModelIterable does. Other databases evaluate `build(*values)` as usual.

A scoped query runs for the tenant whose scope is active, and fails closed outside one: its first
value is that tenant's id, taken from the scope on every call, and `build` runs in a scope of that
id, so the scoped manager's tenant filter is a parameter like the others.

Values are UUIDs or strings, compared for equality: PostgreSQL receives them as given, so a value is
found in the compiled parameters as itself. Anything else is refused.
"""

import uuid
import weakref

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.query import get_related_populators
from django.db.transaction import TransactionManagementError
from django_scopes import scope

from tenants.scoping import scoped_tenant_id


class Prepared:
    def __init__(self, build, *, scoped, using=DEFAULT_DB_ALIAS):
        """`build(*values)` returns the queryset for these values (filters on them, nothing else); with
        scoped=True, `build(tenant_id, *values)`, called without the tenant id."""
        self.build = self._in_scope(build) if scoped else build
        self.scoped = scoped
        self.using = using
        self._compiled = weakref.WeakKeyDictionary()  # per connection: each thread has its own

    @staticmethod
    def _in_scope(build):
        def scoped_build(tenant_id, *values):
            with scope(tenant=tenant_id):
                return build(tenant_id, *values)

        return scoped_build

    def __call__(self, *values):
        """The list of instances the queryset for `values` returns (in the active tenant's scope)."""
        if self.scoped:
            values = (scoped_tenant_id(), *values)
        for value in values:
            _check(value)
        connection = connections[self.using]
        if connection.vendor != "postgresql":
            return list(self.build(*values))
        compiled = self._compiled.get(connection)
        if compiled is None:
            compiled = self._compiled[connection] = _Compiled(self.build, values, connection)
        return compiled.run(values, connection)


def _check(value):
    if not isinstance(value, (uuid.UUID, str)):
        raise TypeError(f"Prepared queries take UUIDs and strings, not {type(value).__name__}")


def _marker(value):
    return uuid.uuid4() if isinstance(value, uuid.UUID) else f"prepared-marker-{uuid.uuid4().hex}"


class _Compiled:
    def __init__(self, build, values, connection):
        markers = [_marker(value) for value in values]
        queryset = build(*markers)
        self.compiler = queryset.query.get_compiler(connection=connection)
        self.sql, params = self.compiler.as_sql()
        self.params = list(params)
        self.slots = [[i for i, param in enumerate(self.params) if param == marker] for marker in markers]
        if not all(self.slots):
            raise ValueError("Every value must reach the SQL as a parameter of its own.")
        self.locks = queryset.query.select_for_update
        select, klass_info = self.compiler.select, self.compiler.klass_info
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.model_slice = slice(fields[0], fields[-1] + 1)
        self.init_list = [column[0].target.attname for column in select[self.model_slice]]
        self.related = get_related_populators(klass_info, select, connection.alias)
        self.annotations = self.compiler.annotation_col_map

    def run(self, values, connection):
        if self.locks and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = list(self.params)
        for slots, value in zip(self.slots, values, strict=True):
            for i in slots:
                params[i] = value
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        return [self._instance(row, connection.alias) for row in self.compiler.results_iter([rows])]

    def _instance(self, row, alias):
        obj = self.model.from_db(alias, self.init_list, row[self.model_slice])
        for populator in self.related:
            populator.populate(row, obj)
        for name, position in self.annotations.items():
            setattr(obj, name, row[position])
        return obj
