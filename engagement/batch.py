"""The batch intake (POST /batch/): up to 1,000 customers, purchases and events in one call.

Items are validated by plain dict checks (batch_items) and written set-based: one statement per kind
per batch (customers upserted, purchases + engagements inserted, events inserted), then every touched
projection rebuilt with a fixed number of queries. Items are processed in order: a reference to an
object that a *later* item creates fails as it would one call at a time. Valid items persist even
when others fail. If the set-based path meets a concurrent writer (a unique violation), the batch is
replayed one item at a time through the single-item services instead.
"""

import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from engagement import intake
from engagement.batch_items import CLEANERS, ItemError, invalid
from engagement.errors import Conflict, Invalid, Missing
from engagement.models import Customer, Engagement, Event, Milestone, Offering, Purchase
from engagement.rebuild import rebuild
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
    touched: dict = field(default_factory=dict)  # engagement id -> Engagement (locked or new)

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
        _one_at_a_time(batch)
    return batch.results


def _write(batch):
    customer_ids = _upsert_customers(batch)
    new_engagements = _insert_purchases(batch, customer_ids)
    _insert_events(batch, new_engagements)
    if batch.touched:
        rebuilt = rebuild(list(batch.touched.values()), now=batch.now, grace_days=batch.tenant.grace_days)
        publish_transitions(batch.tenant, rebuilt)


# Customers (plus those given inline in purchases) ------------------------------------------------


def _customer_items(batch):
    """(index, cleaned customer) in order, including inline customers of purchases."""
    inline = [(i, p["customer"]) for i, p in batch.purchases if isinstance(p["customer"], dict)]
    return sorted(batch.customers + inline, key=lambda pair: pair[0])


def _upsert_customers(batch):
    """Upsert every customer with one statement; returns {external_id: (id, first batch index or -1)}."""
    items = _customer_items(batch)
    ids = {c["external_id"] for _, c in items}
    existing = dict(Customer.objects.filter(external_id__in=ids).values_list("external_id", "id"))
    latest, first_seen = {}, {}
    standalone = {i for i, _ in batch.customers}
    for index, cleaned in items:
        ext = cleaned["external_id"]
        created = ext not in existing and ext not in first_seen
        first_seen.setdefault(ext, index)
        latest[ext] = cleaned
        if index in standalone:
            batch.ok(index, 201 if created else 200, id=ext)
    if latest:
        Customer.objects.bulk_create(
            [Customer(tenant=batch.tenant, **c) for c in latest.values()],
            update_conflicts=True,
            unique_fields=["tenant", "external_id"],
            update_fields=["name", "email", "segment", "attributes", "updated_at"],
        )
    known = dict(existing)
    if set(latest) - set(existing):
        known.update(
            Customer.objects.filter(external_id__in=set(latest) - set(existing)).values_list("external_id", "id")
        )
    return {ext: (cid, -1 if ext in existing else first_seen[ext]) for ext, cid in known.items()}


# Purchases --------------------------------------------------------------------------------------


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


def _resolve_customer(ref, index, customer_ids):
    ext = ref["external_id"] if isinstance(ref, dict) else ref
    found = customer_ids.get(ext)
    if found is None or found[1] > index:
        raise ItemError(404, "not_found", f"No customer {ext!r}.", {"customer": [f"No customer {ext!r}."]})
    return found[0]


def _insert_purchases(batch, customer_ids):
    """Insert new purchases and their engagements; returns {purchase external_id: (engagement, index)}."""
    if not batch.purchases:
        return {}
    offerings = {o.key: o for o in Offering.objects.filter(key__in={p["offering"] for _, p in batch.purchases})}
    members = _members_by_email(batch)
    stored = {
        p.external_id: p
        for p in Purchase.objects.filter(external_id__in={p["external_id"] for _, p in batch.purchases}).select_related(
            "engagement"
        )
    }
    new_purchases, new = [], {}
    for index, data in batch.purchases:
        try:
            purchase, engagement = _purchase_row(batch, index, data, customer_ids, offerings, members)
        except ItemError as error:
            batch.fail(index, error)
            continue
        previous = stored.get(purchase.external_id) or new.get(purchase.external_id, (None,))[0]
        if previous is not None:
            _replay(batch, index, previous, purchase, engagement)
            continue
        new_purchases.append((purchase, engagement))
        new[purchase.external_id] = (purchase, engagement, index)
        batch.ok(index, 201, id=purchase.external_id, engagement=str(engagement.id))
    if new_purchases:
        Purchase.objects.bulk_create([p for p, _ in new_purchases])
        Engagement.objects.bulk_create([e for _, e in new_purchases])
        for _, engagement in new_purchases:
            batch.touched[engagement.id] = engagement
    return {ext: (engagement, index) for ext, (_, engagement, index) in new.items()}


def _purchase_row(batch, index, data, customer_ids, offerings, members):
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
    customer_id = _resolve_customer(data["customer"], index, customer_ids)
    purchase = Purchase(
        tenant=batch.tenant, external_id=data["external_id"], customer_id=customer_id, offering=offering,
        purchased_at=data["purchased_at"], amount=amount, currency=currency,
    )  # fmt: skip
    engagement = Engagement(
        tenant=batch.tenant, purchase=purchase, customer_id=customer_id, offering=offering,
        pos_at=data["purchased_at"], owner=_member(members, data["owner"], "owner"),
        sales_rep=_member(members, data["sales_rep"], "sales_rep"),
    )  # fmt: skip
    return purchase, engagement


def _replay(batch, index, previous, purchase, engagement):
    """The same external_id again: 200 when every value matches, 409 naming what differs."""
    fields = ("customer_id", "offering_id", "purchased_at", "amount", "currency")
    differing = [f.removesuffix("_id") for f in fields if getattr(previous, f) != getattr(purchase, f)]
    stored_engagement = getattr(previous, "engagement", None)
    for name in ("owner_id", "sales_rep_id"):
        wanted = getattr(engagement, name)
        if wanted is not None and stored_engagement is not None and getattr(stored_engagement, name) != wanted:
            differing.append(name.removesuffix("_id"))
    if differing:
        message = f"Purchase {purchase.external_id!r} already exists with other values for: {', '.join(differing)}."
        batch.fail(
            index, ItemError(409, "conflict", message, {d: ["Differs from the stored purchase."] for d in differing})
        )
        return
    batch.ok(index, 200, id=purchase.external_id, engagement=str(stored_engagement.id) if stored_engagement else None)


# Events -----------------------------------------------------------------------------------------


def _insert_events(batch, new_engagements):
    if not batch.events:
        return
    refs = {e["purchase"] for _, e in batch.events}
    stored = dict(
        Purchase.objects.filter(external_id__in=refs - set(new_engagements)).values_list("external_id", "engagement")
    )
    locked = {
        e.id: e for e in Engagement.objects.select_for_update().filter(id__in=stored.values()).order_by("id")
    }  # serializes with single-event writes to the same engagements
    by_purchase = {ext: (locked[eid], -1) for ext, eid in stored.items() if eid in locked}
    by_purchase.update(new_engagements)
    milestones = _milestones_for({e.offering_id for e, _ in by_purchase.values()})
    seen = set(
        Event.objects.filter(
            external_id__in={e["external_id"] for _, e in batch.events if e["external_id"]}
        ).values_list("external_id", "id")
    )
    known_ids = dict(seen)
    rows = []
    for index, data in batch.events:
        try:
            engagement = _event_engagement(data, index, by_purchase)
            event = _event_row(batch, data, engagement, milestones)
        except ItemError as error:
            batch.fail(index, error)
            continue
        if event.external_id and event.external_id in known_ids:
            batch.ok(index, 200, id=str(known_ids[event.external_id]))
            continue
        if event.external_id:
            known_ids[event.external_id] = event.id
        rows.append(event)
        batch.touched[engagement.id] = engagement
        batch.ok(index, 201, id=str(event.id))
    Event.objects.bulk_create(rows, batch_size=1000)


def _milestones_for(offering_ids):
    rows = Milestone.objects.filter(offering_id__in=offering_ids).values_list("offering_id", "key", "id")
    return {(offering_id, key): mid for offering_id, key, mid in rows}


def _event_engagement(data, index, by_purchase):
    found = by_purchase.get(data["purchase"])
    if found is None or found[1] > index:
        message = f"No purchase {data['purchase']!r}."
        raise ItemError(404, "not_found", message, {"purchase": [message]})
    return found[0]


def _event_row(batch, data, engagement, milestones):
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
    return Event(
        tenant=batch.tenant, engagement=engagement, type=data["type"], occurred_at=occurred_at,
        milestone_id=milestone_id, score=data["score"], comment=data["comment"], reason=data["reason"],
        external_id=data["external_id"], source=batch.actor.source, recorded_by=batch.actor.label,
    )  # fmt: skip


# The fallback: one item at a time ----------------------------------------------------------------


def _one_at_a_time(batch):
    """Replay every valid item through the single-item services, in order."""
    pending = sorted(
        [(i, "customer", d) for i, d in batch.customers]
        + [(i, "purchase", d) for i, d in batch.purchases]
        + [(i, "event", d) for i, d in batch.events]
    , key=lambda t: t[0])  # fmt: skip
    for index, kind, data in pending:
        try:
            with transaction.atomic():
                _single(batch, index, kind, data)
        except Invalid as exc:
            fields = exc.message_dict
            name, messages = next(iter(fields.items()))
            batch.fail(index, ItemError(400, "invalid", f"{name}: {messages[0]}", fields))
        except Missing as exc:
            batch.fail(index, ItemError(404, "not_found", exc.message, {exc.field: [exc.message]}))
        except Conflict as exc:
            batch.fail(index, ItemError(409, "conflict", exc.message, exc.fields))


def _single(batch, index, kind, data):
    tenant, actor = batch.tenant, batch.actor
    if kind == "customer":
        customer, created = intake.upsert_customer(tenant=tenant, actor=actor, data=data)
        batch.ok(index, 201 if created else 200, id=customer.external_id)
    elif kind == "purchase":
        purchase, created = intake.record_purchase(tenant=tenant, actor=actor, data=data)
        batch.ok(index, 201 if created else 200, id=purchase.external_id, engagement=str(purchase.engagement.id))
    else:
        event, created = intake.record_event(tenant=tenant, actor=actor, data=data)
        batch.ok(index, 201 if created else 200, id=str(event.id))
