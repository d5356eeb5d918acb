"""Set-based statements for ingestion: one statement per step however many rows a call carries.

Locking the engagements a batch names, loading their events, inserting events, saving changed
projections and upserting milestone reaches. PostgreSQL gets hand-written SQL (rows travel as arrays
through `unnest`, timestamps are read with psycopg's C loader instead of Django's pure-Python one);
SQLite, the development database, gets the same results through the ORM. Every statement filters by
`tenant_id` explicitly, as row-level security expects. Only quoted names from the models are
interpolated into SQL; every value is a parameter.

Many rows travel as one array parameter per column (`unnest`, `= ANY`): psycopg binds them on the
server in binary, encoding thousands of UUIDs and timestamps in C.
"""

import functools
import json
from contextlib import contextmanager

from django.db import connection
from django.db.models import FloatField
from psycopg import adapters as psycopg_defaults

from engagement.models import Engagement, Event, MilestoneReach, OutboxMessage, Purchase
from engagement.projection import Fact, Projection

PROJECTION_COLUMNS = (*Projection.FIELDS, "updated_at")
TRACKED_COLUMNS = ("id", "offering_id", "pos_at", *PROJECTION_COLUMNS)
FACT_COLUMNS = ("engagement_id", "type", "occurred_at", "milestone_id", "score", "created_at", "id")
EVENT_COLUMNS = ("id", "tenant_id", "engagement_id", "type", "occurred_at", "milestone_id", "score", "comment",
                 "reason", "external_id", "source", "recorded_by", "created_at")  # fmt: skip


def on_postgresql():
    return connection.vendor == "postgresql"


def _q(name):
    return connection.ops.quote_name(name)


def _table(model):
    return _q(model._meta.db_table)


def _array():
    """The placeholder of an array parameter: binary (`%b`, encoded in C) when PostgreSQL binds the
    parameters, text otherwise (DATABASE_PREPARED_STATEMENTS=0: psycopg then quotes them on the client)."""
    return "%b" if connection.settings_dict["OPTIONS"].get("server_side_binding") else "%s"


def _unnest(model, names):
    """`unnest(%s::<type>[], ...) AS v(<names>)`: rows as one array parameter per column (`_columns`),
    typed from the model's columns."""
    return _unnest_sql(model, tuple(names), _array())


@functools.cache
def _unnest_sql(model, names, placeholder):
    arrays = ", ".join(f"{placeholder}::{model._meta.get_field(name).db_type(connection)}[]" for name in names)
    return f"unnest({arrays}) AS v({', '.join(_q(name) for name in names)})"


def _columns(model, names, rows):
    """The parameters of `_unnest(model, names)` for `rows` (tuples in `names` order)."""
    columns = [list(column) for column in zip(*rows, strict=True)]
    for i, name in enumerate(names):
        # A whole number among floats would make psycopg send the array as integers.
        if isinstance(model._meta.get_field(name), FloatField):
            columns[i] = [None if value is None else float(value) for value in columns[i]]
    return columns


@contextmanager
def fast_cursor():
    """A Django cursor (so execute wrappers such as row-level security still run) whose timestamps are
    parsed by psycopg's C loader: Django's own loader is pure Python and dominates reading thousands of
    timestamps. Values are the same instants (tz-aware, UTC)."""
    with connection.cursor() as cursor:
        if on_postgresql():
            oid = connection.connection.adapters.types["timestamptz"].oid
            cursor.cursor.adapters.register_loader(oid, psycopg_defaults.get_loader(oid, 0))
        yield cursor


class Tracked:
    """An engagement as ingestion sees it: what `derive` needs and the stored projection, for diffing.

    Engagement instances have the same attributes, so code that refreshes projections takes either.
    """

    __slots__ = TRACKED_COLUMNS

    def __init__(self, values):
        for name, value in zip(TRACKED_COLUMNS, values, strict=True):
            setattr(self, name, value)


# Engagements --------------------------------------------------------------------------------------


def lock_by_purchase(tenant, purchase_refs):
    """{purchase external_id: Tracked} for the named purchases of `tenant`, each engagement row locked
    (in id order, so two batches never deadlock) until the transaction ends."""
    refs = list(dict.fromkeys(purchase_refs))
    if not refs:
        return {}
    if not on_postgresql():
        rows = (
            Engagement.objects.filter(purchase__external_id__in=refs)
            .order_by("id")
            .values_list("purchase__external_id", *TRACKED_COLUMNS)
        )
        return {row[0]: Tracked(row[1:]) for row in rows}
    e, p = _table(Engagement), _table(Purchase)
    columns = ", ".join(f"e.{_q(c)}" for c in TRACKED_COLUMNS)
    # Joined to the list rather than filtered by `= ANY`: for a thousand names the planner would read
    # every purchase of the tenant instead of looking each one up in the (tenant, external_id) index.
    sql = (
        f"SELECT p.external_id, {columns} FROM unnest({_array()}::text[]) AS r(external_id) "  # noqa: S608
        f"JOIN {p} p ON p.tenant_id = %s AND p.external_id = r.external_id "
        f"JOIN {e} e ON e.purchase_id = p.id AND e.tenant_id = %s ORDER BY e.id FOR UPDATE OF e"
    )
    with fast_cursor() as cursor:
        cursor.execute(sql, [refs, tenant.pk, tenant.pk])
        return {row[0]: Tracked(row[1:]) for row in cursor.fetchall()}


def save_projections(tenant, rows):
    """Write the projection columns of `rows` (Tracked or Engagement) with one UPDATE."""
    if not rows:
        return
    if not on_postgresql():
        _save_projections_portably(tenant, rows)
        return
    names = ("id", *PROJECTION_COLUMNS)
    values = [tuple(getattr(row, name) for name in names) for row in rows]
    assignments = ", ".join(f"{_q(n)} = v.{_q(n)}" for n in PROJECTION_COLUMNS)
    sql = (
        f"UPDATE {_table(Engagement)} e SET {assignments} "  # noqa: S608
        f"FROM {_unnest(Engagement, names)} WHERE e.id = v.id AND e.tenant_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*_columns(Engagement, names, values), tenant.pk])


def _save_projections_portably(tenant, rows):
    fields = [Engagement._meta.get_field(name) for name in PROJECTION_COLUMNS]
    assignments = ", ".join(f"{_q(f.column)} = %s" for f in fields)
    sql = f"UPDATE {_table(Engagement)} SET {assignments} WHERE id = %s AND tenant_id = %s"  # noqa: S608
    pk, tenant_id = Engagement._meta.pk, Engagement._meta.get_field("tenant").get_db_prep_save(tenant.pk, connection)
    params = [
        [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
        + [pk.get_db_prep_value(row.id, connection), tenant_id]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


# Events -------------------------------------------------------------------------------------------


def load_facts(tenant, engagement_ids):
    """{engagement id: [Fact]} of every stored event of these engagements, with one query."""
    ids = list(engagement_ids)
    facts = {}
    if not ids:
        return facts
    if on_postgresql():
        sql = (
            f"SELECT {', '.join(_q(c) for c in FACT_COLUMNS)} FROM {_table(Event)} "  # noqa: S608
            f"WHERE tenant_id = %s AND engagement_id = ANY({_array()}::uuid[])"
        )
        with fast_cursor() as cursor:
            cursor.execute(sql, [tenant.pk, ids])
            rows = cursor.fetchall()
    else:
        rows = Event.objects.filter(engagement_id__in=ids).order_by().values_list(*FACT_COLUMNS)
    for engagement_id, type_, at, milestone_id, score, created_at, event_id in rows:
        fact = Fact(type=type_, occurred_at=at, milestone_id=milestone_id, score=score, seq=(created_at, event_id))
        facts.setdefault(engagement_id, []).append(fact)
    return facts


def stored_event_ids(tenant, external_ids):
    """{external_id: event id} of the events of `tenant` already stored under these external ids."""
    wanted = [e for e in set(external_ids) if e]
    if not wanted:
        return {}
    if not on_postgresql():
        return dict(Event.objects.filter(external_id__in=wanted).values_list("external_id", "id"))
    sql = (
        f"SELECT external_id, id FROM {_table(Event)} WHERE tenant_id = %s "  # noqa: S608
        f"AND external_id = ANY({_array()}::text[])"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant.pk, wanted])
        return dict(cursor.fetchall())


def insert_events(rows):
    """Insert events given as tuples in EVENT_COLUMNS order with one statement."""
    if not rows:
        return
    if not on_postgresql():
        Event.objects.bulk_create([Event(**dict(zip(EVENT_COLUMNS, row, strict=True))) for row in rows])
        return
    columns = ", ".join(_q(c) for c in EVENT_COLUMNS)
    sql = f"INSERT INTO {_table(Event)} ({columns}) SELECT {columns} FROM {_unnest(Event, EVENT_COLUMNS)}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, _columns(Event, EVENT_COLUMNS, rows))


def insert_event_once(row):
    """Insert one event (a tuple in EVENT_COLUMNS order) unless its external_id is taken; True if inserted.

    ON CONFLICT instead of a look-up first: the common case costs one statement, and a concurrent
    duplicate cannot slip in between a check and the insert.
    """
    fields = [Event._meta.get_field(c) for c in EVENT_COLUMNS]
    values = [f.get_db_prep_save(v, connection) for f, v in zip(fields, row, strict=True)]
    sql = (
        f"INSERT INTO {_table(Event)} ({', '.join(_q(c) for c in EVENT_COLUMNS)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(values))}) "
        "ON CONFLICT (tenant_id, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchone() is not None


# Milestone reaches --------------------------------------------------------------------------------


def upsert_reaches(tenant, reaches):
    """Make the stored reaches equal `reaches` [(engagement id, milestone id, reached_at, clock_days)].

    Ingestion only adds events, and an added event can move a reach (an earlier milestone event, a
    pause before it) or add one, never remove one; so an upsert of the reaches that may have changed is
    enough, and rows whose values are unchanged are left unwritten.
    """
    if not reaches:
        return
    if not on_postgresql():
        MilestoneReach.objects.bulk_create(
            [
                MilestoneReach(tenant=tenant, engagement_id=e, milestone_id=m, reached_at=at, clock_days=days)
                for e, m, at, days in reaches
            ],
            update_conflicts=True,
            unique_fields=["tenant", "engagement", "milestone"],
            update_fields=["reached_at", "clock_days"],
        )
        return
    names = ("engagement_id", "milestone_id", "reached_at", "clock_days")
    sql = (
        f"INSERT INTO {_table(MilestoneReach)} AS r (tenant_id, {', '.join(names)}) "  # noqa: S608
        f"SELECT %s, v.* FROM {_unnest(MilestoneReach, names)} "
        "ON CONFLICT (tenant_id, engagement_id, milestone_id) DO UPDATE "
        "SET reached_at = excluded.reached_at, clock_days = excluded.clock_days "
        "WHERE (r.reached_at, r.clock_days) IS DISTINCT FROM (excluded.reached_at, excluded.clock_days)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant.pk, *_columns(MilestoneReach, names, reaches)])


# The outbox ------------------------------------------------------------------------------------------


def insert_outbox_messages(tenant, items, created_at):
    """Append (kind, payload) messages to the outbox with one statement."""
    if not on_postgresql():
        OutboxMessage.objects.bulk_create(
            [OutboxMessage(tenant=tenant, kind=kind, payload=payload, created_at=created_at) for kind, payload in items]
        )
        return
    sql = (
        f"INSERT INTO {_table(OutboxMessage)} (tenant_id, kind, payload, created_at, attempts, last_error) "  # noqa: S608
        f"SELECT %s, v.kind, v.payload::jsonb, %s, 0, '' FROM unnest({_array()}::text[], {_array()}::text[]) "
        "AS v(kind, payload)"
    )
    kinds, payloads = [kind for kind, _ in items], [json.dumps(payload) for _, payload in items]
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant.pk, created_at, kinds, payloads])
