"""The batch intake (POST /batch/): up to 1,000 customers, purchases and events in one call.

Items are cleaned by the same cleaners as the single endpoints (engagement.cleaners) and written
set-based: one statement per kind per batch (customers upserted, purchases and engagements inserted,
events inserted). A new engagement is inserted with its projection derived (engagement.projections); the
engagements the batch's events touch are then refreshed at once. Items are
processed in order: a reference to an object that a *later* item creates fails as it would one call at a
time. Valid items persist even when others fail. If the set-based path meets a concurrent writer (a
unique violation), the batch is replayed one item at a time through the single-item services instead.
"""

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from engagement import assignment, cleaners, intake, projections, queries
from engagement.errors import Conflict, Invalid, Missing
from engagement.models import Customer, Engagement, Event, Offering, Purchase
from engagement.projections import ROW_COLUMNS, Row
from engagement.queries import StoredPurchase
from engagement.services import EVENT_COLUMNS
from engagement.sql import array, columns, fast_timestamps, insert_rows, table, unnest
from tenants.actors import Actor
from tenants.models import Member, Tenant

log = logging.getLogger(__name__)
MAX_ITEMS = 1000


def error_result(exc: Invalid | Missing | Conflict) -> tuple[int, dict]:
    """(status, error) of an item, as the single endpoint would answer it."""
    if isinstance(exc, Missing):
        return 404, {"code": "not_found", "message": exc.message, "fields": {exc.field: [exc.message]}}
    if isinstance(exc, Conflict):
        return 409, {"code": "conflict", "message": exc.message, "fields": exc.fields}
    fields = exc.message_dict
    name, messages = next(iter(fields.items()))
    message = messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
    return 400, {"code": "invalid", "message": message, "fields": fields}


@dataclass
class Batch:
    tenant: Tenant
    actor: Actor
    now: datetime
    results: list
    customers: list = field(default_factory=list)  # (index, cleaned)
    purchases: list = field(default_factory=list)
    events: list = field(default_factory=list)
    touched: dict = field(default_factory=dict)  # engagement id -> Row (locked) or Engagement (new)
    journeys: dict = field(default_factory=dict)  # offering id -> Journey, each read once per batch
    added_since: dict = field(default_factory=dict)  # stored engagement id -> earliest event time added

    def journeys_of(self, offering_ids: set) -> dict:
        if missing := set(offering_ids) - set(self.journeys):
            self.journeys.update(projections.load_journeys(missing))
        return self.journeys

    def ok(self, index: int, status: int, **extra: Any) -> None:
        self.results[index] = {"index": index, "status": status, **extra}

    def fail(self, index: int, exc: Invalid | Missing | Conflict) -> None:
        status, error = error_result(exc)
        self.results[index] = {"index": index, "status": status, "error": error}


def _shape(item: Any) -> tuple[str, dict]:
    if not isinstance(item, dict) or set(item) - {"kind", "data"}:
        raise cleaners.invalid("kind", "Each item is an object {kind, data}.")
    kind, data = item.get("kind"), item.get("data")
    if not isinstance(kind, str) or kind not in cleaners.CLEANERS:
        raise cleaners.invalid("kind", f"{kind!r} is not one of: customer, purchase, event.")
    if not isinstance(data, dict):
        raise cleaners.invalid("data", "Must be an object.")
    return kind, cleaners.CLEANERS[kind](data)


def batch_ingest(*, tenant: Tenant, items: list, actor: Actor, now: datetime | None = None) -> list[dict]:
    """Per-item results [{index, status, id? | error?}] in input order."""
    batch = Batch(tenant=tenant, actor=actor, now=now or timezone.now(), results=[None] * len(items))
    for index, item in enumerate(items):
        try:
            kind, cleaned = _shape(item)
        except Invalid as exc:
            batch.fail(index, exc)
            continue
        getattr(batch, f"{kind}s").append((index, cleaned))
    try:
        with transaction.atomic():
            _write(batch)
    except IntegrityError:
        log.info("batch met a concurrent writer; replaying it one item at a time")
        _one_at_a_time(batch)
    return batch.results


def _write(batch: Batch) -> None:
    candidates = _check_purchases(batch)
    customer_ids = _upsert_customers(batch, candidates)
    new_engagements = _insert_purchases(batch, candidates, customer_ids)
    _insert_events(batch, new_engagements)
    if batch.touched:
        rows = sorted(batch.touched.values(), key=lambda row: row.id)
        journeys = batch.journeys_of({row.offering_id for row in rows})
        projections.refresh(batch.tenant, rows, now=batch.now, journeys=journeys, added_since=batch.added_since)


def _one_at_a_time(batch: Batch) -> None:
    """Every valid item again, in order, through the single-item services, each in its own transaction."""
    pending = sorted([(i, "customer", d) for i, d in batch.customers] + [(i, "purchase", d) for i, d in batch.purchases]
                     + [(i, "event", d) for i, d in batch.events], key=lambda t: t[0])  # fmt: skip
    tenant, actor = batch.tenant, batch.actor
    for index, kind, data in pending:
        try:
            with transaction.atomic():
                if kind == "customer":
                    customer, created = intake.upsert_customer(tenant=tenant, actor=actor, data=data)
                    batch.ok(index, 201 if created else 200, id=customer.external_id)
                elif kind == "purchase":
                    purchase, created = intake.record_purchase(tenant=tenant, actor=actor, data=data)
                    batch.ok(index, 201 if created else 200, id=purchase.external_id,
                             engagement=str(purchase.engagement.id))  # fmt: skip
                else:
                    event, created = intake.record_event(tenant=tenant, actor=actor, data=data)
                    batch.ok(index, 201 if created else 200, id=str(event.id))
        except (Invalid, Missing, Conflict) as exc:
            batch.fail(index, exc)


# Purchases, checked before anything is written ----------------------------------------------------


@dataclass
class Candidate:
    """A purchase item that passed every check that needs no customer id."""

    index: int
    data: dict
    offering: Offering
    owner: Member | None
    sales_rep: Member | None
    replays: Any = None  # the StoredPurchase, or the earlier Candidate, it repeats

    @property
    def external_id(self) -> str:
        return self.data["external_id"]

    @property
    def customer_ref(self) -> str:
        ref = self.data["customer"]
        return ref["external_id"] if isinstance(ref, dict) else ref

    def values(self) -> dict:
        """What a replay must repeat (queries.REPLAYED_FIELDS)."""
        return {
            "customer": self.customer_ref, "offering": self.offering.pk, "purchased_at": self.data["purchased_at"],
            "amount": self.data["amount"], "currency": self.data["currency"],
            "success_criteria": self.data["success_criteria"],
            "owner": getattr(self.owner, "pk", None), "sales_rep": getattr(self.sales_rep, "pk", None),
        }  # fmt: skip


def _members_by_email(batch: Batch) -> dict:
    emails = {p[k].lower() for _, p in batch.purchases for k in ("owner", "sales_rep") if p[k]}
    if not emails:
        return {}
    rows = Member.objects.filter(user__email__in=emails, is_active=True).select_related("user")
    return {m.user.email.lower(): m for m in rows}


def _member(members: dict, email: str | None, field_name: str) -> Member | None:
    if not email:
        return None
    member = members.get(email.lower())
    if member is None:
        raise cleaners.invalid(field_name, f"{email!r} is not a member of this company.")
    cleaners.responsible(member, field_name)  # as for a purchase sent alone
    return member


def _check_purchases(batch: Batch) -> list[Candidate]:
    """Validate purchase items and sort out replays, so a failing item writes nothing (not even its
    inline customer), as when it is sent alone."""
    if not batch.purchases:
        return []
    offerings = {o.key: o for o in Offering.objects.filter(key__in={p["offering"] for _, p in batch.purchases})}
    members = _members_by_email(batch)
    external_ids = {p["external_id"] for _, p in batch.purchases}
    stored = queries.stored_purchases(batch.tenant, external_ids)
    known = _known_customers(batch)
    candidates: list[Candidate] = []
    first_new: dict[str, Candidate] = {}
    for index, data in batch.purchases:
        try:
            candidate = _candidate(batch, index, data, offerings, members)
            _check_customer_ref(candidate, known)
            _match_replay(candidate, stored.get(candidate.external_id), first_new.get(candidate.external_id))
        except (Invalid, Missing, Conflict) as exc:
            batch.fail(index, exc)
            continue
        if isinstance(data["customer"], dict):
            known.setdefault(candidate.customer_ref, index)
        if candidate.replays is None:
            first_new[candidate.external_id] = candidate
        candidates.append(candidate)
    return candidates


def _known_customers(batch: Batch) -> dict:
    """{external_id: index of the item that creates it, or -1 when stored} for customer references."""
    refs = {p["customer"] for _, p in batch.purchases if isinstance(p["customer"], str)}
    known = dict.fromkeys(queries.stored_customers(batch.tenant, refs), -1)
    for index, cleaned in batch.customers:
        known.setdefault(cleaned["external_id"], index)
    return known


def _no_customer(ref: str) -> Missing:
    return Missing("customer", f"No customer {ref!r}.")


def _check_customer_ref(candidate: Candidate, known: dict) -> None:
    """A purchase naming a customer by external_id needs it stored or created by an earlier item."""
    if not isinstance(candidate.data["customer"], dict) and known.get(candidate.customer_ref, 1e9) > candidate.index:
        raise _no_customer(candidate.customer_ref)


def _candidate(batch: Batch, index: int, data: dict, offerings: dict, members: dict) -> Candidate:
    offering = offerings.get(data["offering"])
    if offering is None:
        raise Missing("offering", f"No offering {data['offering']!r}.")
    cleaners.recorded_time(data["purchased_at"], "purchased_at", batch.now)
    owner, sales_rep = _member(members, data["owner"], "owner"), _member(members, data["sales_rep"], "sales_rep")
    return Candidate(index=index, data=data, offering=offering, owner=owner, sales_rep=sales_rep)


def _match_replay(candidate: Candidate, stored: StoredPurchase | None, earlier: Candidate | None) -> None:
    """The same external_id again: a replay when every value matches, else a conflict naming what differs."""
    if stored is not None:
        previous = stored.values
    elif earlier is not None:
        previous = earlier.values()
    else:
        return
    differing = cleaners.purchase_differences(previous, candidate.values())
    if differing:
        raise Conflict(*cleaners.conflict_message(candidate.external_id, differing))
    candidate.replays = stored or earlier


# Customers (plus those given inline in purchases that passed their checks) -------------------------


# Writes a customer only when a value differs (an unchanged one keeps its updated_at); returns the ids of
# those inserted or updated.
UPSERT_CUSTOMERS = """
INSERT INTO {customers} AS c (tenant_id, {names}, created_at, updated_at)
SELECT %(tenant)s, v.*, %(now)s, %(now)s FROM {unnest}
ON CONFLICT (tenant_id, external_id) DO UPDATE
    SET name = excluded.name, email = excluded.email, segment = excluded.segment, attributes = excluded.attributes,
        updated_at = excluded.updated_at
    WHERE (c.name, c.email, c.segment, c.attributes)
        IS DISTINCT FROM (excluded.name, excluded.email, excluded.segment, excluded.attributes)
RETURNING external_id, id
"""
CUSTOMER_COLUMNS = ("id", "external_id", "name", "email", "segment", "attributes")


def _upsert_customers(batch: Batch, candidates: list[Candidate]) -> dict:
    """Upsert every customer with one statement; returns {external_id: (id, first batch index or -1)}.

    Fields an item leaves out keep their stored (or earlier-in-batch) values.
    """
    inline = [(c.index, c.data["customer"]) for c in candidates if isinstance(c.data["customer"], dict)]
    items = sorted(batch.customers + inline, key=lambda pair: pair[0])
    wanted = {c["external_id"] for _, c in items} | {c.customer_ref for c in candidates}
    stored = queries.stored_customers(batch.tenant, wanted)
    merged: dict[str, dict] = {}
    first_seen: dict[str, int] = {}
    standalone = {i for i, _ in batch.customers}
    for index, cleaned in items:
        ext = cleaned["external_id"]
        created = ext not in stored and ext not in first_seen
        first_seen.setdefault(ext, index)
        base = merged.get(ext) or _customer_fields(stored.get(ext))
        merged[ext] = {**base, **cleaned}
        if index in standalone:
            batch.ok(index, 201 if created else 200, id=ext)
    ids = {ext: row["id"] for ext, row in stored.items()}
    if merged:
        ids.update(_write_customers(batch, merged.values()))
    if missing := set(merged) - set(ids):  # inserted meanwhile by another writer, with the same values
        ids.update((ext, row["id"]) for ext, row in queries.stored_customers(batch.tenant, missing).items())
    return {ext: (cid, -1 if ext in stored else first_seen[ext]) for ext, cid in ids.items()}


def _write_customers(batch: Batch, customers: Iterable[dict]) -> list[tuple]:
    # In the order of their external ids, as every writer takes them: two batches that share customers (two
    # chunks of an import) wait for each other instead of deadlocking.
    ordered = sorted(customers, key=lambda c: c["external_id"])
    rows = [(c.get("id") or uuid.uuid4(), *(c[name] for name in CUSTOMER_COLUMNS[1:])) for c in ordered]
    sql = UPSERT_CUSTOMERS.format(customers=table(Customer), names=", ".join(CUSTOMER_COLUMNS),
                                  unnest=unnest(Customer, CUSTOMER_COLUMNS))  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, {**columns(Customer, CUSTOMER_COLUMNS, rows), "tenant": batch.tenant.pk, "now": batch.now})
        return cursor.fetchall()


def _customer_fields(row: Mapping[str, Any] | None) -> dict:
    if row is None:
        return {"email": "", "segment": "", "attributes": {}}
    return dict(row)


# Purchases, written -----------------------------------------------------------------------------


PURCHASE_COLUMNS = ("tenant_id", "id", "external_id", "customer_id", "offering_id", "purchased_at", "amount",
                    "currency", "success_criteria", "created_at")  # fmt: skip
ENGAGEMENT_COLUMNS = tuple(f.attname for f in Engagement._meta.concrete_fields)
ENGAGEMENT_DEFAULTS = {f.attname: f.get_default() for f in Engagement._meta.concrete_fields if not f.primary_key}


class NewEngagement:
    """An engagement a purchase opens, before it is stored: its columns as attributes, and the `owner` the
    owner rules choose; all that the rules, `derive` and the INSERT read. Building an Engagement instance
    instead took 30 ms per thousand, an eighth of an import's time."""

    __slots__ = (*ENGAGEMENT_COLUMNS, "owner")
    id: uuid.UUID
    offering_id: uuid.UUID
    pos_at: datetime
    created_at: datetime
    updated_at: datetime

    def __init__(self, **values: Any):
        for name, value in {**ENGAGEMENT_DEFAULTS, "id": uuid.uuid4(), "owner": None, **values}.items():
            setattr(self, name, value)

    def row(self) -> tuple:
        return tuple(getattr(self, name) for name in ENGAGEMENT_COLUMNS)


def _insert_purchases(batch: Batch, candidates: list[Candidate], customer_ids: dict) -> dict:
    """Insert new purchases and their engagements; returns {purchase external_id: (engagement, index)}.

    An engagement is inserted with its projection derived, unless an event of this batch names its purchase:
    that one is derived with its events afterwards."""
    purchases: list[tuple] = []
    engagements: list[NewEngagement] = []
    new: dict[str, tuple[NewEngagement, int]] = {}
    for candidate in candidates:
        replayed = candidate.replays
        if isinstance(replayed, Candidate):
            replayed = new.get(candidate.external_id, (None,))[0]
        if replayed is not None:
            engagement_id = replayed.engagement_id if isinstance(replayed, StoredPurchase) else replayed.id
            batch.ok(candidate.index, 200, id=candidate.external_id, engagement=str(engagement_id))
            continue
        found = customer_ids.get(candidate.customer_ref)
        if found is None or found[1] > candidate.index:
            batch.fail(candidate.index, _no_customer(candidate.customer_ref))
            continue
        purchase, engagement = _rows_for(batch, candidate, found[0])
        purchases.append(purchase)
        engagements.append(engagement)
        new[candidate.external_id] = (engagement, candidate.index)
        batch.ok(candidate.index, 201, id=candidate.external_id, engagement=str(engagement.id))
    if engagements:
        with_events = [new[ref][0] for ref in {e["purchase"] for _, e in batch.events} if ref in new]
        _open(batch, purchases, engagements, with_events)
    return new


def _open(batch: Batch, purchases: list[tuple], engagements: list[NewEngagement], with_events: list) -> None:
    """Store new purchases and their engagements, owned by rule; those `with_events` are derived once their
    events are stored, the others now."""
    chosen = assignment.assign(batch.tenant, engagements)
    later = {engagement.id for engagement in with_events}
    now_derived = [engagement for engagement in engagements if engagement.id not in later]
    opened = projections.derive_opened(batch.tenant, now_derived, now=batch.now,
                                       journeys=batch.journeys_of({e.offering_id for e in now_derived}))  # fmt: skip
    insert_rows(Purchase, PURCHASE_COLUMNS, purchases)
    for engagement in engagements:
        engagement.created_at = engagement.updated_at = batch.now
    insert_rows(Engagement, ENGAGEMENT_COLUMNS, [engagement.row() for engagement in engagements])
    assignment.record(batch.tenant, chosen)
    projections.publish_transitions(batch.tenant, opened)
    batch.touched.update((engagement.id, engagement) for engagement in with_events)


def _rows_for(batch: Batch, candidate: Candidate, customer_id: uuid.UUID) -> tuple[tuple, NewEngagement]:
    """The new purchase's row (in PURCHASE_COLUMNS order) and its engagement."""
    data, purchase_id, offering_id = candidate.data, uuid.uuid4(), candidate.offering.pk
    purchase = (batch.tenant.pk, purchase_id, candidate.external_id, customer_id, offering_id, data["purchased_at"],
                data["amount"], data["currency"], data["success_criteria"], batch.now)  # fmt: skip
    engagement = NewEngagement(
        tenant_id=batch.tenant.pk, purchase_id=purchase_id, customer_id=customer_id, offering_id=offering_id,
        pos_at=data["purchased_at"], owner_id=getattr(candidate.owner, "pk", None),
        sales_rep_id=getattr(candidate.sales_rep, "pk", None),
    )  # fmt: skip
    return purchase, engagement


# Events -----------------------------------------------------------------------------------------

# Joined to the list rather than filtered by `= ANY`: for a thousand names the planner would read every
# purchase of the tenant instead of looking each one up in the (tenant, external_id) index. Locked in id
# order, so two batches (or a batch and a single event) never deadlock.
LOCK_BY_PURCHASE = """
SELECT p.external_id, {columns} FROM unnest({refs}::text[]) AS r(external_id)
JOIN {purchases} p ON p.tenant_id = %(tenant)s AND p.external_id = r.external_id
JOIN {engagements} e ON e.purchase_id = p.id AND e.tenant_id = %(tenant)s
ORDER BY e.id FOR UPDATE OF e
"""


def _lock_by_purchase(tenant: Tenant, refs: set[str]) -> dict[str, Row]:
    """{purchase external_id: Row} of the named purchases' engagements, locked until the transaction ends."""
    if not refs:
        return {}
    columns = ", ".join(f'e."{c}"' for c in ROW_COLUMNS)
    sql = LOCK_BY_PURCHASE.format(refs=array("refs"), columns=columns, purchases=table(Purchase),
                                  engagements=table(Engagement))  # fmt: skip
    with fast_timestamps() as cursor:
        cursor.execute(sql, {"refs": sorted(refs), "tenant": tenant.pk})
        return {row[0]: Row(row[1:]) for row in cursor.fetchall()}


def _insert_events(batch: Batch, new_engagements: dict) -> None:
    if not batch.events:
        return
    refs = {e["purchase"] for _, e in batch.events} - set(new_engagements)
    by_purchase = {ext: (row, -1) for ext, row in _lock_by_purchase(batch.tenant, refs).items()}
    stored = {row.id for row, _ in by_purchase.values()}
    by_purchase.update(new_engagements)
    journeys = batch.journeys_of({e.offering_id for e, _ in by_purchase.values()})
    milestones = {(oid, m.key): m.id for oid, journey in journeys.items() for m in journey.milestones}
    wanted = {e["external_id"] for _, e in batch.events if e["external_id"]}
    known_ids = dict(Event.objects.filter(external_id__in=wanted).values_list("external_id", "id")) if wanted else {}
    rows: list[tuple] = []
    for index, data in batch.events:
        try:
            engagement = _event_engagement(data, index, by_purchase)
            row = _event_row(batch, data, engagement, milestones, len(rows))
        except (Invalid, Missing) as exc:
            batch.fail(index, exc)
            continue
        external_id = data["external_id"]
        if external_id and external_id in known_ids:
            batch.ok(index, 200, id=str(known_ids[external_id]))
            continue
        if external_id:
            known_ids[external_id] = row[0]
        rows.append(row)
        batch.touched[engagement.id] = engagement
        if engagement.id in stored:
            at, since = data["occurred_at"], batch.added_since.get(engagement.id)
            batch.added_since[engagement.id] = at if since is None else min(since, at)
        batch.ok(index, 201, id=str(row[0]))
    if rows:
        insert_rows(Event, EVENT_COLUMNS, rows)


def _event_engagement(data: dict, index: int, by_purchase: dict) -> Any:
    found = by_purchase.get(data["purchase"])
    if found is None or found[1] > index:
        raise Missing("purchase", f"No purchase {data['purchase']!r}.")
    return found[0]


def _event_row(batch: Batch, data: dict, engagement: Any, milestones: dict, position: int) -> tuple:
    """The event as a tuple in EVENT_COLUMNS order. created_at grows with the position in the batch, so
    events at the same instant keep the order they were sent in (the projection breaks ties by it)."""
    occurred_at = data["occurred_at"]
    cleaners.event_time(occurred_at, purchased_at=engagement.pos_at, now=batch.now)
    milestone_id = None
    if data["milestone"]:
        milestone_id = milestones.get((engagement.offering_id, data["milestone"]))
        if milestone_id is None:
            raise cleaners.invalid("milestone", f"{data['milestone']!r} is not a milestone of this offering.")
    return (
        uuid.uuid4(), batch.tenant.pk, engagement.id, data["type"], occurred_at, milestone_id, data["score"],
        data["comment"], data["reason"], data["criteria_met"], data["external_id"], batch.actor.source,
        batch.actor.label,
        batch.now + timedelta(microseconds=position),
    )  # fmt: skip
