"""Writes to the record. Each is keyword-only with an `actor`, runs in one transaction, and
publishes what others react to through the outbox (DESIGN.md). Projections are stored by
engagement.projections, the one writer of derived rows."""

from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from engagement import assignment, cleaners, outbox, projections
from engagement.errors import Conflict, Invalid
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
)
from engagement.projection import SATISFACTION_STEP
from engagement.sql import field, quote, table
from tenants.actors import Actor, audit
from tenants.models import Member, Tenant

UNSET: Any = object()


# Customers ------------------------------------------------------------------------------------


def customer_upsert(
    *, tenant: Tenant, external_id: str, name: str, actor: Actor, email: str | None = None,
    segment: str | None = None, attributes: dict | None = None,
) -> tuple[Customer, bool]:  # fmt: skip
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


MILESTONE_NAME_MAX = field(Milestone, "name").max_length or 0


def _within_length(**values: tuple[str | None, int]) -> None:
    """Refuse text longer than its column (the web forms reach services without a serializer)."""
    errors = {
        field: [f"At most {limit} characters."] for field, (text, limit) in values.items() if len(text or "") > limit
    }
    if errors:
        raise Invalid(errors)


def _validate_journey(milestones: list[dict], requires_satisfaction: bool, satisfaction_threshold: int) -> None:
    errors = {}
    if not milestones:
        errors["milestones"] = ["A journey needs at least one milestone; the last one is the PoV milestone."]
    seen, previous_due = set(), 0
    for i, m in enumerate(milestones or ()):
        key, due_day = m.get("key"), m.get("due_day")
        if not isinstance(key, str) or not cleaners.KEY_RE.match(key):
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
    *, tenant: Tenant, key: str, name: str, milestones: list[dict], actor: Actor, requires_satisfaction: bool = False,
    satisfaction_threshold: int = 4, confirm_value: bool = False, new: bool = False,
) -> tuple[Offering, bool]:  # fmt: skip
    """Create or replace an offering and its journey (list order = milestone order; last = PoV); with
    `new`, an existing key is a Conflict instead (creating must never overwrite).

    Milestones are matched by key; removing one that has events is refused. Projections of the
    offering's engagements are rebuilt because due days and the PoV milestone may have moved.
    """
    if not isinstance(key, str) or not cleaners.KEY_RE.match(key):
        raise Invalid({"key": ["Use 1-64 letters, digits, '-', '_' or '.'."]})
    if not (name or "").strip():
        raise Invalid({"name": ["This field is required."]})
    _within_length(name=(name, field(Offering, "name").max_length or 0))
    _validate_journey(milestones, requires_satisfaction, satisfaction_threshold)
    with transaction.atomic():
        offering, created = Offering.objects.select_for_update().get_or_create(
            tenant=tenant, key=key, defaults={"name": name}
        )
        if new and not created:
            message = f"The key {key!r} is taken by the journey {offering.name!r}; edit that one or choose another key."
            raise Conflict(message, {"key": [message]})
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
            projections.rebuild_all(tenant, Engagement.objects.filter(offering=offering))
    return offering, created


def _replace_milestones(tenant: Tenant, offering: Offering, milestones: list[dict]) -> None:
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


def purchase_record(
    *, tenant: Tenant, external_id: str, customer: Customer, offering: Offering, purchased_at: datetime,
    actor: Actor, amount: Any = None, currency: str = "", owner: Member | None = None,
    sales_rep: Member | None = None, success_criteria: list[str] | None = None, now: datetime | None = None,
) -> tuple[Purchase, bool]:  # fmt: skip
    """Record a point of sale and open its engagement. Returns (purchase, created).

    The same external_id with the same values returns the stored purchase; with other values it
    is a Conflict naming the fields that differ.
    """
    now = now or timezone.now()
    cleaners.aware(purchased_at, "purchased_at")
    cleaners.recorded_time(purchased_at, "purchased_at", now)
    cleaners.responsible(owner, "owner")
    cleaners.responsible(sales_rep, "sales_rep")
    amount, currency = cleaners.money(amount, currency)
    criteria = cleaners.success_criteria(success_criteria or [])
    values = {"customer": customer.external_id, "offering": offering.pk, "purchased_at": purchased_at,
              "amount": amount, "currency": currency, "success_criteria": criteria}  # fmt: skip
    wanted = {**values, "owner": getattr(owner, "pk", None), "sales_rep": getattr(sales_rep, "pk", None)}
    existing = _stored(external_id)
    if existing is None:
        try:
            with transaction.atomic():
                purchase = _open_purchase(tenant, external_id, customer, offering, values, owner, sales_rep, now)
                engagement = purchase.engagement  # its owner may come from an assignment rule
                audit(tenant=tenant, actor=actor, action="engagement.created", target=engagement,
                      purchase=external_id, owner=_who(engagement.owner), sales_rep=_who(sales_rep))  # fmt: skip
                return purchase, True
        except IntegrityError:
            existing = _stored(external_id)
            if existing is None:
                raise
    differing = cleaners.purchase_differences(stored_purchase(existing), wanted)
    if differing:
        raise Conflict(*cleaners.conflict_message(external_id, differing))
    return existing, False


def _stored(external_id: str) -> Purchase | None:
    return Purchase.objects.select_related("customer", "engagement").filter(external_id=external_id).first()


def stored_purchase(purchase: Purchase) -> dict:
    """What a replay of `purchase` must repeat, as `purchase_record` and the batch compare it."""
    engagement = purchase.engagement
    return {
        "customer": purchase.customer.external_id, "offering": purchase.offering_id,
        "purchased_at": purchase.purchased_at, "amount": purchase.amount, "currency": purchase.currency,
        "success_criteria": purchase.success_criteria, "owner": engagement.owner_id,
        "sales_rep": engagement.sales_rep_id,
    }  # fmt: skip


def _open_purchase(
    tenant: Tenant, external_id: str, customer: Customer, offering: Offering, values: dict, owner: Member | None,
    sales_rep: Member | None, now: datetime,
) -> Purchase:  # fmt: skip
    purchase = Purchase.objects.create(
        tenant=tenant, external_id=external_id, customer=customer, offering=offering,
        purchased_at=values["purchased_at"], amount=values["amount"], currency=values["currency"],
        success_criteria=values["success_criteria"],
    )  # fmt: skip
    engagement = Engagement(
        tenant=tenant, purchase=purchase, customer=customer, offering=offering, pos_at=purchase.purchased_at,
        owner=owner, sales_rep=sales_rep,
    )  # fmt: skip
    chosen = assignment.assign(tenant, [engagement])
    opened = projections.derive_opened(tenant, [engagement], now=now)
    engagement.save(force_insert=True)
    assignment.record(tenant, chosen)
    projections.publish_transitions(tenant, opened)
    return purchase


# Events ---------------------------------------------------------------------------------------


def _resolve_milestone(type_: str, milestone: Any, by_key: dict) -> Milestone | None:
    if type_ != EventType.MILESTONE:
        if milestone not in (None, ""):
            raise Invalid({"milestone": [f"Only milestone events name a milestone, not {type_} events."]})
        return None
    key = milestone.key if isinstance(milestone, Milestone) else milestone
    if not key:
        raise Invalid({"milestone": ["A milestone event needs the milestone key."]})
    found = by_key.get(key)
    if found is None or (isinstance(milestone, Milestone) and found.pk != milestone.pk):
        known = ", ".join(by_key)
        raise Invalid({"milestone": [f"{key!r} is not a milestone of this offering (known: {known})."]})
    return found


def event_record(
    *, tenant: Tenant, engagement: Engagement, type: str, occurred_at: datetime, actor: Actor,
    milestone: Any = None, score: Any = None, comment: str = "", reason: str = "", external_id: str | None = None,
    criteria_met: Any = None, now: datetime | None = None, already_locked: bool = False,
) -> tuple[Event, bool]:  # fmt: skip
    """Append an event and update the projection in the same transaction. Returns (event, created);
    `event.engagement` is the engagement after it.

    A repeated external_id returns the stored event (created False) and changes nothing. With
    already_locked=True the caller holds `engagement`'s row lock in its transaction (the API loads it
    locked with what it shows, in one query), so it is not read again.
    """
    now = now or timezone.now()
    if type not in EventType.values:
        raise Invalid({"type": [f"{type!r} is not one of: {', '.join(EventType.values)}."]})
    _within_length(comment=(comment, field(Event, "comment").max_length or 0),
                   reason=(reason, field(Event, "reason").max_length or 0))  # fmt: skip
    cleaners.event_time(occurred_at, purchased_at=engagement.pos_at, now=now)
    with transaction.atomic(savepoint=not already_locked):
        locked = engagement
        if not already_locked:
            locked = Engagement.objects.select_related("offering").select_for_update(of=("self",)).get(pk=engagement.pk)
        journey = projections.journey_of(locked.offering)
        by_key = {m.key: m for m in journey.milestones} if journey else {}
        milestone = _resolve_milestone(type, milestone, by_key)
        if type == EventType.SATISFACTION:
            score = cleaners.score(score)
        elif score is not None:
            raise Invalid({"score": ["Only satisfaction events carry a score."]})
        criteria_met = cleaners.criteria_met(criteria_met, type)
        event = Event(
            tenant=tenant, engagement=locked, type=type, occurred_at=occurred_at, milestone=milestone, score=score,
            comment=comment or "", reason=reason or "", criteria_met=criteria_met, external_id=external_id or None,
            source=actor.source, recorded_by=actor.label, created_at=timezone.now(),
        )  # fmt: skip
        if not _insert_once(event):
            return Event.objects.select_related("milestone", "engagement").get(external_id=external_id), False
        journeys = {locked.offering_id: journey} if journey else {}
        projections.refresh(tenant, [locked], now=now, journeys=journeys, added_since={locked.id: occurred_at})
        if actor.member is not None:
            # What a person records by hand; events from integrations carry `recorded_by` and are their own trail.
            audit(tenant=tenant, actor=actor, action=f"event.{type}", target=locked, event=str(event.id),
                  milestone=getattr(milestone, "key", None), status=locked.status)  # fmt: skip
    return event, True


EVENT_COLUMNS = ("id", "tenant_id", "engagement_id", "type", "occurred_at", "milestone_id", "score", "comment",
                 "reason", "criteria_met", "external_id", "source", "recorded_by", "created_at")  # fmt: skip


def _insert_once(event: Event) -> bool:
    """Insert the event unless its external_id is taken; True if inserted. ON CONFLICT rather than a
    look-up first: a concurrent duplicate cannot slip in between a check and the insert."""
    sql = (
        f"INSERT INTO {table(Event)} ({', '.join(quote(name) for name in EVENT_COLUMNS)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(EVENT_COLUMNS))}) "
        "ON CONFLICT (tenant_id, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        values = [field(Event, name).get_db_prep_save(getattr(event, name), connection) for name in EVENT_COLUMNS]
        cursor.execute(sql, values)
        return cursor.fetchone() is not None


# Ownership and notes --------------------------------------------------------------------------


def _who(member: Member | None) -> str:
    """A member in a handoff note, as people call them."""
    return member.name if member else "nobody"


def engagements_reassign(
    *, tenant: Tenant, engagement_ids: list[Any], owner: Member | None, actor: Actor, note: str = ""
) -> int:
    """Hand several engagements to `owner`, each as engagement_reassign does (a handoff note and an audit
    row each, in one transaction). Returns how many changed hands; ids of other tenants are not found."""
    moved = 0
    with transaction.atomic():
        for engagement in Engagement.objects.filter(id__in=engagement_ids).order_by("id"):
            _, handoff = engagement_reassign(tenant=tenant, engagement=engagement, actor=actor, owner=owner, note=note)
            moved += handoff is not None
    return moved


def engagement_reassign(
    *, tenant: Tenant, engagement: Engagement, actor: Actor, owner: Any = UNSET, sales_rep: Any = UNSET,
    note: str = "",
) -> tuple[Engagement, Note | None]:  # fmt: skip
    """Change the owner and/or sales rep; recorded as a handoff note and an audit row. Returns the
    engagement after the change and the handoff note (None when nothing changed)."""
    for member, name in ((owner, "owner"), (sales_rep, "sales_rep")):
        if member is not UNSET:
            cleaners.responsible(member, name)
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
        outbox.publish(tenant, [(outbox.CHANGED, {"engagement": str(locked.id)})])
    return locked, handoff


def success_criteria_set(*, tenant: Tenant, engagement: Engagement, criteria: Any, actor: Actor) -> list[str]:
    """Replace what the customer expects (cleaners.success_criteria); a change is noted in the timeline and
    audited. Returns the criteria stored."""
    cleaned = cleaners.success_criteria(criteria)
    with transaction.atomic():
        purchase = Purchase.objects.select_for_update().get(pk=engagement.purchase_id)
        if purchase.success_criteria == cleaned:
            return cleaned
        purchase.success_criteria = cleaned
        purchase.save(update_fields=["success_criteria"])
        Engagement.objects.filter(pk=engagement.pk).update(updated_at=timezone.now())
        listed = "\n".join(f"- {text}" for text in cleaned) or "(none)"
        _note(tenant, engagement, f"Success criteria:\n{listed}", NoteKind.NOTE, actor)
        audit(tenant=tenant, actor=actor, action="engagement.criteria_set", target=engagement, criteria=cleaned)
        outbox.publish(tenant, [(outbox.CHANGED, {"engagement": str(engagement.id)})])
    return cleaned


def note_add(*, tenant: Tenant, engagement: Engagement, body: str, actor: Actor, kind: str = NoteKind.NOTE) -> Note:
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


def _note(tenant: Tenant, engagement: Engagement, body: str, kind: str, actor: Actor) -> Note:
    return Note.objects.create(
        tenant=tenant, engagement=engagement, kind=kind, body=body, author=actor.member, author_label=actor.label
    )
