"""The batch intake (POST /batch/): up to 1,000 customers, purchases and events in one call.

Items are validated by plain dict checks (batch_items) and written set-based: one statement per kind
per batch (customers upserted, purchases + engagements inserted, events inserted), then every touched
projection refreshed with a fixed number of statements (engagement.ingest_projection). Items are
processed in order: a reference to an object that a *later* item creates fails as it would one call at
a time. Valid items persist even
when others fail. If the set-based path meets a concurrent writer (a unique violation), the batch is
replayed one item at a time through the single-item services instead.
"""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from engagement.batch_fallback import one_at_a_time
from engagement.batch_items import CLEANERS, ItemError, invalid
from engagement.errors import Invalid
from engagement.ingest_projection import journeys_for, refresh
from engagement.ingest_sql import insert_events, lock_by_purchase, stored_event_ids
from engagement.models import Customer, Engagement, Offering, Purchase
from engagement.services import _clean_money, publish_transitions
from engagement.validation import FUTURE_TOLERANCE
from tenants.models import Member

log = logging.getLogger(__name__)
MAX_ITEMS = 1000


@dataclass
class Batch:
    tenant: object
    actor: object
    now: object
    results: list
    customers: list = field(default_factory=list)  # (index, cleaned)
    purchases: list = field(default_factory=list)
    events: list = field(default_factory=list)
    touched: dict = field(default_factory=dict)  # engagement id -> Tracked (locked) or Engagement (new)
    added_since: dict = field(default_factory=dict)  # stored engagement id -> earliest event time added
    journeys: dict = field(default_factory=dict)  # offering id -> Journey

    def ok(self, index, status, **extra):
        self.results[index] = {"index": index, "status": status, **extra}

    def fail(self, index, error):
        self.results[index] = {"index": index, "status": error.status, "error": error.as_result()}


def _shape(item):
    if not isinstance(item, dict) or set(item) - {"kind", "data"}:
        raise invalid("kind", "Each item is an object {kind, data}.")
    kind, data = item.get("kind"), item.get("data")
    if not isinstance(kind, str) or kind not in CLEANERS:
        raise invalid("kind", f"{kind!r} is not one of: customer, purchase, event.")
    if not isinstance(data, dict):
        raise invalid("data", "Must be an object.")
    return kind, CLEANERS[kind](data)


def batch_ingest(*, tenant, items, actor, now=None):
    """Per-item results [{index, status, id? | error?}] in input order."""
    batch = Batch(tenant=tenant, actor=actor, now=now or timezone.now(), results=[None] * len(items))
    for index, item in enumerate(items):
        try:
            kind, cleaned = _shape(item)
        except ItemError as error:
            batch.fail(index, error)
            continue
        getattr(batch, f"{kind}s").append((index, cleaned))
    try:
        with transaction.atomic():
            _write(batch)
    except IntegrityError:
        log.info("batch met a concurrent writer; replaying it one item at a time")
        one_at_a_time(batch)
    return batch.results


def _write(batch):
    candidates = _check_purchases(batch)
    customer_ids = _upsert_customers(batch, candidates)
    new_engagements = _insert_purchases(batch, candidates, customer_ids)
    _insert_events(batch, new_engagements)
    if batch.touched:
        rows = sorted(batch.touched.values(), key=lambda row: row.id)
        journeys = _journeys(batch, {row.offering_id for row in rows})
        rebuilt = refresh(batch.tenant, rows, journeys, now=batch.now, added_since=batch.added_since)
        publish_transitions(batch.tenant, rebuilt)


# Purchases, checked before anything is written ----------------------------------------------------


@dataclass
class Candidate:
    """A purchase item that passed every check that needs no customer id."""

    index: int
    data: dict
    offering: object
    amount: object
    currency: str
    owner: object
    sales_rep: object
    replays: object = None  # the stored Purchase, or the earlier Candidate, it repeats

    @property
    def external_id(self):
        return self.data["external_id"]

    @property
    def customer_ref(self):
        ref = self.data["customer"]
        return ref["external_id"] if isinstance(ref, dict) else ref

    def values(self):
        """What a replay must repeat: the stored purchase's fields, customer by external_id."""
        return {
            "customer": self.customer_ref, "offering": self.offering.pk, "purchased_at": self.data["purchased_at"],
            "amount": self.amount, "currency": self.currency,
        }  # fmt: skip


def _stored_values(purchase):
    return {
        "customer": purchase.customer.external_id, "offering": purchase.offering_id,
        "purchased_at": purchase.purchased_at, "amount": purchase.amount, "currency": purchase.currency,
    }  # fmt: skip


def _members_by_email(batch):
    emails = {p[k].lower() for _, p in batch.purchases for k in ("owner", "sales_rep") if p[k]}
    if not emails:
        return {}
    rows = Member.objects.filter(user__email__in=emails, is_active=True).select_related("user")
    return {m.user.email.lower(): m for m in rows}


def _member(members, email, field_name):
    if not email:
        return None
    member = members.get(email.lower())
    if member is None:
        raise invalid(field_name, f"{email!r} is not a member of this company.")
    return member


def _check_purchases(batch):
    """Validate purchase items and sort out replays, so a failing item writes nothing (not even its
    inline customer), as when it is sent alone."""
    if not batch.purchases:
        return []
    offerings = {o.key: o for o in Offering.objects.filter(key__in={p["offering"] for _, p in batch.purchases})}
    members = _members_by_email(batch)
    stored = {
        p.external_id: p
        for p in Purchase.objects.filter(external_id__in={p["external_id"] for _, p in batch.purchases}).select_related(
            "customer", "engagement"
        )
    }
    known = _known_customers(batch)
    candidates, first_new = [], {}
    for index, data in batch.purchases:
        try:
            candidate = _candidate(batch, index, data, offerings, members)
            _check_customer_ref(candidate, known)
            _match_replay(candidate, stored.get(candidate.external_id), first_new.get(candidate.external_id))
        except ItemError as error:
            batch.fail(index, error)
            continue
        if isinstance(data["customer"], dict):
            known.setdefault(candidate.customer_ref, index)
        if candidate.replays is None:
            first_new[candidate.external_id] = candidate
        candidates.append(candidate)
    return candidates


def _known_customers(batch):
    """{external_id: index of the item that creates it, or -1 when stored} for customer references."""
    refs = {p["customer"] for _, p in batch.purchases if isinstance(p["customer"], str)}
    known = dict.fromkeys(Customer.objects.filter(external_id__in=refs).values_list("external_id", flat=True), -1)
    for index, cleaned in batch.customers:
        known.setdefault(cleaned["external_id"], index)
    return known


def _check_customer_ref(candidate, known):
    """A purchase naming a customer by external_id needs it stored or created by an earlier item."""
    if isinstance(candidate.data["customer"], dict):
        return
    ref = candidate.customer_ref
    if known.get(ref, candidate.index + 1) > candidate.index:
        raise ItemError(404, "not_found", f"No customer {ref!r}.", {"customer": [f"No customer {ref!r}."]})


def _candidate(batch, index, data, offerings, members):
    offering = offerings.get(data["offering"])
    if offering is None:
        message = f"No offering {data['offering']!r}."
        raise ItemError(404, "not_found", message, {"offering": [message]})
    if data["purchased_at"] > batch.now + FUTURE_TOLERANCE:
        raise invalid("purchased_at", f"{data['purchased_at'].isoformat()} is more than 5 minutes in the future.")
    try:
        amount, currency = _clean_money(data["amount"], data["currency"])
    except Invalid as exc:
        name, messages = next(iter(exc.message_dict.items()))
        raise invalid(name, messages[0]) from None
    return Candidate(
        index=index, data=data, offering=offering, amount=amount, currency=currency,
        owner=_member(members, data["owner"], "owner"), sales_rep=_member(members, data["sales_rep"], "sales_rep"),
    )  # fmt: skip


def _match_replay(candidate, stored, earlier):
    """The same external_id again: a replay when every value matches, else 409 naming what differs."""
    previous = stored or earlier
    if previous is None:
        return
    if stored is not None:
        values = _stored_values(stored)
        owners = {"owner": stored.engagement.owner_id, "sales_rep": stored.engagement.sales_rep_id}
    else:
        values = earlier.values()
        owners = {"owner": getattr(earlier.owner, "pk", None), "sales_rep": getattr(earlier.sales_rep, "pk", None)}
    differing = [name for name, value in candidate.values().items() if values[name] != value]
    for name in ("owner", "sales_rep"):
        wanted = getattr(candidate, name)
        if wanted is not None and owners[name] != wanted.pk:
            differing.append(name)
    if differing:
        message = f"Purchase {candidate.external_id!r} already exists with other values for: {', '.join(differing)}."
        raise ItemError(409, "conflict", message, {d: ["Differs from the stored purchase."] for d in differing})
    candidate.replays = previous


# Customers (plus those given inline in purchases that passed their checks) -------------------------


def _upsert_customers(batch, candidates):
    """Upsert every customer with one statement; returns {external_id: (id, first batch index or -1)}.

    Fields an item leaves out keep their stored (or earlier-in-batch) values.
    """
    inline = [(c.index, c.data["customer"]) for c in candidates if isinstance(c.data["customer"], dict)]
    items = sorted(batch.customers + inline, key=lambda pair: pair[0])
    wanted = {c["external_id"] for _, c in items} | {c.customer_ref for c in candidates}
    stored = {
        row["external_id"]: row
        for row in Customer.objects.filter(external_id__in=wanted).values(
            "id", "external_id", "name", "email", "segment", "attributes"
        )
    }
    merged, first_seen = {}, {}
    standalone = {i for i, _ in batch.customers}
    for index, cleaned in items:
        ext = cleaned["external_id"]
        created = ext not in stored and ext not in first_seen
        first_seen.setdefault(ext, index)
        base = merged.get(ext) or _customer_fields(stored.get(ext))
        merged[ext] = {**base, **cleaned}
        if index in standalone:
            batch.ok(index, 201 if created else 200, id=ext)
    if merged:
        Customer.objects.bulk_create(
            [Customer(tenant=batch.tenant, **values) for values in merged.values()],
            update_conflicts=True,
            unique_fields=["tenant", "external_id"],
            update_fields=["name", "email", "segment", "attributes", "updated_at"],
        )
    ids = {ext: row["id"] for ext, row in stored.items()}
    new = set(merged) - set(stored)
    if new:
        ids.update(Customer.objects.filter(external_id__in=new).values_list("external_id", "id"))
    return {ext: (cid, -1 if ext in stored else first_seen[ext]) for ext, cid in ids.items()}


def _customer_fields(row):
    if row is None:
        return {"email": "", "segment": "", "attributes": {}}
    return {k: row[k] for k in ("external_id", "name", "email", "segment", "attributes")}


# Purchases, written -----------------------------------------------------------------------------


def _resolve_customer(ref, index, customer_ids):
    found = customer_ids.get(ref)
    if found is None or found[1] > index:
        raise ItemError(404, "not_found", f"No customer {ref!r}.", {"customer": [f"No customer {ref!r}."]})
    return found[0]


def _insert_purchases(batch, candidates, customer_ids):
    """Insert new purchases and their engagements; returns {purchase external_id: (engagement, index)}."""
    rows, new = [], {}
    for candidate in candidates:
        replayed = candidate.replays
        if isinstance(replayed, Candidate):
            replayed = new.get(candidate.external_id, (None,))[0]
        if replayed is not None:
            engagement_id = replayed.engagement.id if isinstance(replayed, Purchase) else replayed.id
            batch.ok(candidate.index, 200, id=candidate.external_id, engagement=str(engagement_id))
            continue
        try:
            customer_id = _resolve_customer(candidate.customer_ref, candidate.index, customer_ids)
        except ItemError as error:
            batch.fail(candidate.index, error)
            continue
        purchase, engagement = _rows_for(batch, candidate, customer_id)
        rows.append((purchase, engagement))
        new[candidate.external_id] = (engagement, candidate.index)
        batch.ok(candidate.index, 201, id=candidate.external_id, engagement=str(engagement.id))
    if rows:
        Purchase.objects.bulk_create([p for p, _ in rows])
        Engagement.objects.bulk_create([e for _, e in rows])
        for _, engagement in rows:
            batch.touched[engagement.id] = engagement
    return new


def _rows_for(batch, candidate, customer_id):
    data = candidate.data
    purchase = Purchase(
        tenant=batch.tenant, external_id=candidate.external_id, customer_id=customer_id,
        offering=candidate.offering, purchased_at=data["purchased_at"], amount=candidate.amount,
        currency=candidate.currency,
    )  # fmt: skip
    engagement = Engagement(
        tenant=batch.tenant, purchase=purchase, customer_id=customer_id, offering=candidate.offering,
        pos_at=data["purchased_at"], owner=candidate.owner, sales_rep=candidate.sales_rep,
    )  # fmt: skip
    return purchase, engagement


# Events -----------------------------------------------------------------------------------------


def _journeys(batch, offering_ids):
    """Journeys by offering id, each read once per batch."""
    missing = set(offering_ids) - set(batch.journeys)
    if missing:
        batch.journeys.update(journeys_for(missing))
    return batch.journeys


def _insert_events(batch, new_engagements):
    if not batch.events:
        return
    refs = {e["purchase"] for _, e in batch.events} - set(new_engagements)
    # Locked in id order: serializes with single-event writes to the same engagements.
    by_purchase = {ext: (row, -1) for ext, row in lock_by_purchase(batch.tenant, refs).items()}
    stored = {row.id for row, _ in by_purchase.values()}
    by_purchase.update(new_engagements)
    journeys = _journeys(batch, {e.offering_id for e, _ in by_purchase.values()})
    milestones = {(oid, m.key): m.id for oid, journey in journeys.items() for m in journey.milestones}
    known_ids = stored_event_ids(batch.tenant, (e["external_id"] for _, e in batch.events))
    rows = []
    for index, data in batch.events:
        try:
            engagement = _event_engagement(data, index, by_purchase)
            row = _event_row(batch, data, engagement, milestones, len(rows))
        except ItemError as error:
            batch.fail(index, error)
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
    insert_events(rows)


def _event_engagement(data, index, by_purchase):
    found = by_purchase.get(data["purchase"])
    if found is None or found[1] > index:
        message = f"No purchase {data['purchase']!r}."
        raise ItemError(404, "not_found", message, {"purchase": [message]})
    return found[0]


def _event_row(batch, data, engagement, milestones, position):
    """The event as a tuple in EVENT_COLUMNS order. created_at grows with the position in the batch, so
    events at the same instant keep the order they were sent in (the projection breaks ties by it)."""
    occurred_at = data["occurred_at"]
    if occurred_at < engagement.pos_at:
        raise invalid(
            "occurred_at", f"{occurred_at.isoformat()} is before the purchase ({engagement.pos_at.isoformat()})."
        )
    if occurred_at > batch.now + FUTURE_TOLERANCE:
        raise invalid("occurred_at", f"{occurred_at.isoformat()} is more than 5 minutes in the future.")
    milestone_id = None
    if data["milestone"]:
        milestone_id = milestones.get((engagement.offering_id, data["milestone"]))
        if milestone_id is None:
            raise invalid("milestone", f"{data['milestone']!r} is not a milestone of this offering.")
    return (
        uuid.uuid4(), batch.tenant.pk, engagement.id, data["type"], occurred_at, milestone_id, data["score"],
        data["comment"], data["reason"], data["external_id"], batch.actor.source, batch.actor.label,
        batch.now + timedelta(microseconds=position),
    )  # fmt: skip
