"""Writes to the record. Each is keyword-only with an `actor`, runs in one transaction, and
publishes what others react to through the outbox (DESIGN.md)."""

import re
from collections import defaultdict
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from engagement import outbox
from engagement.errors import Conflict, Invalid
from engagement.ingest_projection import refresh
from engagement.ingest_sql import EVENT_COLUMNS, insert_event_once
from engagement.models import (
    Customer,
    Engagement,
    Event,
    EventType,
    Milestone,
    Note,
    NoteKind,
    Offering,
    Purchase,
    Status,
)
from engagement.projection import SATISFACTION_STEP, Journey, MilestoneSpec
from engagement.rebuild import rebuild, rebuild_all
from engagement.validation import aware, event_time, not_in_future
from engagement.validation import score as valid_score
from tenants.actors import audit

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
UNSET = object()

TRANSITION_KINDS = {Status.REACHED: outbox.REACHED_POV, Status.LOST: outbox.LOST, Status.STALLED: outbox.STALLED}


def publish_transitions(tenant, rebuilt, *, announce=True):
    """Outbox rows for status changes others react to, plus one 'changed' for metrics.

    announce=False (bulk imports such as the demo seed) publishes only 'changed', so reactions meant
    for live events (webhooks, customer emails) do not fire for history.
    """
    moved = defaultdict(list)  # (kind, from, to): engagement ids
    for e, old in rebuilt.transitions:
        if announce and e.status in TRANSITION_KINDS:
            moved[(TRANSITION_KINDS[e.status], old, e.status)].append(e.id)
    items = [
        item
        for (kind, old, new), ids in moved.items()
        for item in outbox.listed(kind, "engagement", ids, {"from": old, "to": new})
    ]
    if rebuilt.changed:
        items.append((outbox.CHANGED, {"count": rebuilt.changed}))
    outbox.publish_many(tenant, items)


# Customers ------------------------------------------------------------------------------------


def customer_upsert(*, tenant, external_id, name, actor, email=None, segment=None, attributes=None):
    """Create or update by external_id; None leaves a stored value as it is. Returns (customer, created)."""
    given = {"name": name, "email": email, "segment": segment, "attributes": attributes}
    defaults = {"email": "", "segment": "", "attributes": {}}
    values = {k: v for k, v in given.items() if v is not None}
    with transaction.atomic():
        customer, created = Customer.objects.select_for_update().get_or_create(
            tenant=tenant, external_id=external_id, defaults={**defaults, **values}
        )
        if not created and any(getattr(customer, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(customer, k, v)
            customer.save()
    return customer, created


# Offerings and journeys -----------------------------------------------------------------------


MILESTONE_NAME_MAX = Milestone._meta.get_field("name").max_length


def _within_length(**values):
    """Refuse text longer than its column (the web forms reach services without a serializer)."""
    errors = {
        field: [f"At most {limit} characters."] for field, (text, limit) in values.items() if len(text or "") > limit
    }
    if errors:
        raise Invalid(errors)


def _validate_journey(milestones, requires_satisfaction, satisfaction_threshold):
    errors = {}
    if not milestones:
        errors["milestones"] = ["A journey needs at least one milestone; the last one is the PoV milestone."]
    seen, previous_due = set(), 0
    for i, m in enumerate(milestones or ()):
        key, due_day = m.get("key"), m.get("due_day")
        if not isinstance(key, str) or not KEY_RE.match(key):
            errors[f"milestones.{i}.key"] = ["Use 1-64 letters, digits, '-', '_' or '.'."]
        elif key == SATISFACTION_STEP:
            errors[f"milestones.{i}.key"] = ["'satisfaction' is reserved for the satisfaction step."]
        elif key in seen:
            errors[f"milestones.{i}.key"] = [f"{key!r} appears twice in this journey."]
        seen.add(key)
        if not (m.get("name") or "").strip():
            errors[f"milestones.{i}.name"] = ["This field is required."]
        elif len(m["name"]) > MILESTONE_NAME_MAX:
            errors[f"milestones.{i}.name"] = [f"At most {MILESTONE_NAME_MAX} characters."]
        if isinstance(due_day, bool) or not isinstance(due_day, int) or not 0 <= due_day <= 3650:
            errors[f"milestones.{i}.due_day"] = ["A whole number of days from the purchase, 0 to 3650."]
        elif due_day < previous_due:
            errors[f"milestones.{i}.due_day"] = [
                f"Due on day {due_day}, before the milestone before it (day {previous_due})."
            ]
        else:
            previous_due = due_day
    if not isinstance(satisfaction_threshold, int) or not 1 <= satisfaction_threshold <= 5:
        errors["satisfaction_threshold"] = ["A whole number from 1 to 5."]
    if errors:
        raise Invalid(errors)


def offering_save(
    *, tenant, key, name, milestones, actor, requires_satisfaction=False, satisfaction_threshold=4, confirm_value=False
):
    """Create or replace an offering and its journey (list order = milestone order; last = PoV).

    Milestones are matched by key; removing one that has events is refused. Projections of the
    offering's engagements are rebuilt because due days and the PoV milestone may have moved.
    """
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise Invalid({"key": ["Use 1-64 letters, digits, '-', '_' or '.'."]})
    if not (name or "").strip():
        raise Invalid({"name": ["This field is required."]})
    _within_length(name=(name, Offering._meta.get_field("name").max_length))
    _validate_journey(milestones, requires_satisfaction, satisfaction_threshold)
    with transaction.atomic():
        offering, created = Offering.objects.select_for_update().get_or_create(
            tenant=tenant, key=key, defaults={"name": name}
        )
        before = [] if created else list(Milestone.objects.filter(offering=offering).values_list("key", flat=True))
        offering.name = name
        offering.requires_satisfaction = bool(requires_satisfaction)
        offering.satisfaction_threshold = satisfaction_threshold
        offering.confirm_value = bool(confirm_value)
        offering.target_days = milestones[-1]["due_day"]
        offering.save()
        _replace_milestones(tenant, offering, milestones)
        after = [m["key"] for m in milestones]
        audit(tenant=tenant, actor=actor, action="offering.created" if created else "offering.updated", target=offering,
              key=key, milestones=after, added=[k for k in after if k not in before],
              removed=[k for k in before if k not in after])  # fmt: skip
        if not created:
            publish_transitions(
                tenant, rebuild_all(Engagement.objects.filter(offering=offering), grace_days=tenant.grace_days)
            )
    return offering, created


def _replace_milestones(tenant, offering, milestones):
    existing = {m.key: m for m in Milestone.objects.filter(offering=offering)}
    wanted = {m["key"] for m in milestones}
    removed = [m for k, m in existing.items() if k not in wanted]
    used = [m.key for m in removed if Event.objects.filter(milestone=m).exists()]
    if used:
        raise Conflict(
            f"Milestones {', '.join(used)} have recorded events and cannot be removed.", {"milestones": used}
        )
    Milestone.objects.filter(pk__in=[m.pk for m in removed]).delete()
    # Shift the kept ones out of the way first: (offering, order) and the single PoV are unique.
    Milestone.objects.filter(offering=offering).update(order=F("order") + 10000, is_pov=False)
    last = len(milestones) - 1
    for order, spec in enumerate(milestones):
        values = {"name": spec["name"], "order": order, "due_day": spec["due_day"], "is_pov": order == last}
        if spec["key"] in existing:
            Milestone.objects.filter(pk=existing[spec["key"]].pk).update(**values)
        else:
            Milestone.objects.create(tenant=tenant, offering=offering, key=spec["key"], **values)


# Purchases ------------------------------------------------------------------------------------


def _clean_money(amount, currency):
    errors = {}
    if amount is not None:
        try:
            amount = Decimal(str(amount))
        except InvalidOperation:
            errors["amount"] = [f"{amount!r} is not a number."]
        else:
            if not amount.is_finite() or (amount != 0 and amount.adjusted() >= 12) or amount.as_tuple().exponent < -2:
                errors["amount"] = ["Use at most 12 digits before and 2 after the decimal point."]
    currency = (currency or "").upper()
    if currency and not CURRENCY_RE.match(currency):
        errors["currency"] = [f"{currency!r} is not an ISO 4217 code (e.g. EUR, USD)."]
    if amount is not None and not currency and not errors:
        errors["currency"] = ["Give the currency of the amount (ISO 4217, e.g. EUR)."]
    if errors:
        raise Invalid(errors)
    return amount, currency


def _same_purchase(existing, values):
    """Names of the fields where a replayed purchase differs from the stored one."""
    return [k for k, v in values.items() if getattr(existing, k) != v]


def purchase_record(
    *, tenant, external_id, customer, offering, purchased_at, actor,
    amount=None, currency="", owner=None, sales_rep=None, now=None,
):  # fmt: skip
    """Record a point of sale and open its engagement. Returns (purchase, created).

    The same external_id with the same values returns the stored purchase; with other values it
    is a Conflict naming the fields that differ.
    """
    now = now or timezone.now()
    aware(purchased_at, "purchased_at")
    not_in_future(purchased_at, "purchased_at", now)
    amount, currency = _clean_money(amount, currency)
    values = {
        "customer_id": customer.pk,
        "offering_id": offering.pk,
        "purchased_at": purchased_at,
        "amount": amount,
        "currency": currency,
    }
    existing = Purchase.objects.filter(external_id=external_id).first()
    if existing is None:
        try:
            with transaction.atomic():
                purchase = _open_purchase(tenant, external_id, values, owner, sales_rep, now)
                audit(tenant=tenant, actor=actor, action="engagement.created", target=purchase.engagement,
                      purchase=external_id, owner=_who(owner), sales_rep=_who(sales_rep))  # fmt: skip
                return purchase, True
        except IntegrityError:
            existing = Purchase.objects.filter(external_id=external_id).first()
            if existing is None:
                raise
    differing = _same_purchase(existing, values)
    engagement = existing.engagement
    if owner is not None and engagement.owner_id != owner.pk:
        differing.append("owner")
    if sales_rep is not None and engagement.sales_rep_id != sales_rep.pk:
        differing.append("sales_rep")
    if differing:
        raise Conflict(
            f"Purchase {external_id!r} already exists with other values for: {', '.join(differing)}.",
            {name.removesuffix("_id"): ["Differs from the stored purchase."] for name in differing},
        )
    return existing, False


def _open_purchase(tenant, external_id, values, owner, sales_rep, now):
    purchase = Purchase.objects.create(tenant=tenant, external_id=external_id, **values)
    engagement = Engagement.objects.create(
        tenant=tenant,
        purchase=purchase,
        customer_id=values["customer_id"],
        offering_id=values["offering_id"],
        pos_at=values["purchased_at"],
        owner=owner,
        sales_rep=sales_rep,
    )
    publish_transitions(tenant, rebuild([engagement], now=now, grace_days=tenant.grace_days))
    purchase.engagement = engagement
    return purchase


# Events ---------------------------------------------------------------------------------------


# Journeys by (offering id, offering.updated_at), per process: every journey edit goes through
# offering_save, which saves the offering, so a changed journey is looked up under a new key.
_journeys = {}
JOURNEYS_KEPT = 512


def _journey_of(engagement):
    """The journey of the engagement's offering and its milestones by key: from the process's cache when
    the caller loaded the offering with the engagement (its updated_at names the journey's version),
    otherwise from one query."""
    if not Engagement.offering.is_cached(engagement):
        return _load_journey(engagement.offering_id)
    key = (engagement.offering_id, engagement.offering.updated_at)
    found = _journeys.get(key)
    if found is None:
        if len(_journeys) >= JOURNEYS_KEPT:
            _journeys.clear()
        found = _journeys[key] = _load_journey(engagement.offering_id)
    return found


def _load_journey(offering_id):
    """The offering's journey and its milestones by key, from one query."""
    milestones = list(Milestone.objects.filter(offering_id=offering_id).select_related("offering").order_by("order"))
    if not milestones:
        return None, {}
    offering = milestones[0].offering
    journey = Journey(
        milestones=tuple(MilestoneSpec(id=m.id, key=m.key, order=m.order, due_day=m.due_day) for m in milestones),
        requires_satisfaction=offering.requires_satisfaction,
        satisfaction_threshold=offering.satisfaction_threshold,
    )
    return journey, {m.key: m for m in milestones}


def _resolve_milestone(engagement, type_, milestone, by_key):
    if type_ != EventType.MILESTONE:
        if milestone not in (None, ""):
            raise Invalid({"milestone": [f"Only milestone events name a milestone, not {type_} events."]})
        return None
    if isinstance(milestone, Milestone):
        if milestone.offering_id != engagement.offering_id:
            raise Invalid({"milestone": [f"{milestone.key!r} is not a milestone of this engagement's offering."]})
        return milestone
    if not milestone:
        raise Invalid({"milestone": ["A milestone event needs the milestone key."]})
    found = by_key.get(milestone)
    if found is None:
        known = ", ".join(by_key)
        raise Invalid({"milestone": [f"{milestone!r} is not a milestone of this offering (known: {known})."]})
    return found


def event_record(
    *, tenant, engagement, type, occurred_at, actor,
    milestone=None, score=None, comment="", reason="", external_id=None, now=None, lock_held=False,
):  # fmt: skip
    """Append an event and update the projection in the same transaction. Returns (event, created).

    A repeated external_id returns the stored event (created False) and changes nothing. With
    lock_held=True the caller has loaded `engagement` with its row lock in the current transaction (the
    API finds it by purchase in that same query), so it is not read again.
    """
    now = now or timezone.now()
    if type not in EventType.values:
        raise Invalid({"type": [f"{type!r} is not one of: {', '.join(EventType.values)}."]})
    _within_length(comment=(comment, Event._meta.get_field("comment").max_length),
                   reason=(reason, Event._meta.get_field("reason").max_length))  # fmt: skip
    event_time(occurred_at, purchased_at=engagement.pos_at, now=now)
    # A caller holding the lock runs this in its own transaction: no savepoint needed inside it.
    with transaction.atomic(savepoint=not lock_held):
        locked = engagement if lock_held else Engagement.objects.select_for_update().get(pk=engagement.pk)
        journey, milestones = _journey_of(locked)
        milestone = _resolve_milestone(locked, type, milestone, milestones)
        if type == EventType.SATISFACTION:
            valid_score(score)
        elif score is not None:
            raise Invalid({"score": ["Only satisfaction events carry a score."]})
        event = Event(
            tenant=tenant, engagement=locked, type=type, occurred_at=occurred_at, milestone=milestone, score=score,
            comment=comment or "", reason=reason or "", external_id=external_id or None, source=actor.source,
            recorded_by=actor.label, created_at=timezone.now(),
        )  # fmt: skip
        if not insert_event_once(tuple(getattr(event, column) for column in EVENT_COLUMNS)):
            return Event.objects.select_related("milestone").get(external_id=external_id), False
        event._state.adding, event._state.db = False, "default"
        journeys = {locked.offering_id: journey} if journey else {}
        rebuilt = refresh(tenant, [locked], journeys, now=now, added_since={locked.id: occurred_at})
        publish_transitions(tenant, rebuilt)
        if actor.member is not None:
            # What a person records by hand; events from integrations carry `recorded_by` and are their own trail.
            audit(tenant=tenant, actor=actor, action=f"event.{type}", target=locked, event=str(event.id),
                  milestone=getattr(milestone, "key", None), status=locked.status)  # fmt: skip
    if locked is not engagement:
        _refresh(engagement, locked)
    return event, True


def _refresh(stale, fresh):
    """Let the caller's instance show the new projection without another query."""
    for field in fresh._meta.concrete_fields:
        setattr(stale, field.attname, getattr(fresh, field.attname))


# Ownership and notes --------------------------------------------------------------------------


def _who(member):
    return member.user.email if member else "nobody"


def engagement_reassign(*, tenant, engagement, actor, owner=UNSET, sales_rep=UNSET, note=""):
    """Change the owner and/or sales rep; recorded as a handoff note and an audit row."""
    changes = []
    with transaction.atomic():
        locked = (
            Engagement.objects.select_for_update(of=("self",))
            .select_related("owner__user", "sales_rep__user")
            .get(pk=engagement.pk)
        )
        if owner is not UNSET and locked.owner_id != getattr(owner, "pk", None):
            changes.append(f"Owner: {_who(locked.owner)} → {_who(owner)}")
            locked.owner = owner
        if sales_rep is not UNSET and locked.sales_rep_id != getattr(sales_rep, "pk", None):
            changes.append(f"Sales rep: {_who(locked.sales_rep)} → {_who(sales_rep)}")
            locked.sales_rep = sales_rep
        if not changes:
            return locked, None
        locked.save(update_fields=["owner", "sales_rep", "updated_at"])
        body = "\n".join(changes + ([note.strip()] if note and note.strip() else []))
        handoff = _note(tenant, locked, body, NoteKind.HANDOFF, actor)
        audit(tenant=tenant, actor=actor, action="engagement.reassigned", target=locked, changes=changes)
        outbox.publish(tenant, outbox.CHANGED, {"engagement": str(locked.id)})
    _refresh(engagement, locked)
    return engagement, handoff


def note_add(*, tenant, engagement, body, actor, kind=NoteKind.NOTE):
    body = (body or "").strip()
    if not body:
        raise Invalid({"body": ["A note needs some text."]})
    if len(body) > 10000:
        raise Invalid({"body": ["Keep a note under 10,000 characters."]})
    if kind not in NoteKind.values:
        raise Invalid({"kind": [f"{kind!r} is not one of: {', '.join(NoteKind.values)}."]})
    with transaction.atomic():
        note = _note(tenant, engagement, body, kind, actor)
        audit(tenant=tenant, actor=actor, action="note.added", target=engagement, note=str(note.id), kind=kind)
        return note


def _note(tenant, engagement, body, kind, actor):
    return Note.objects.create(
        tenant=tenant, engagement=engagement, kind=kind, body=body, author=actor.member, author_label=actor.label
    )
