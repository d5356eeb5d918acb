from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from engagement import outbox
from engagement.errors import Conflict, Invalid
from engagement.models import AppendOnlyError, Engagement, Event, MilestoneReach, Note, OutboxMessage
from engagement.services import (
    customer_upsert,
    engagement_reassign,
    event_record,
    note_add,
    offering_save,
    purchase_record,
)
from tests.factories import CustomerFactory, MemberFactory, make_offering

NOW = timezone.now()


@pytest.fixture
def offering(scoped):
    return make_offering(scoped, due_days=(2, 7, 14))


@pytest.fixture
def customer(scoped):
    return CustomerFactory(tenant=scoped)


def _purchase(tenant, customer, offering, actor, days_ago=1, external_id="p-1", **extra):
    purchase, _ = purchase_record(
        tenant=tenant, external_id=external_id, customer=customer, offering=offering,
        purchased_at=NOW - timedelta(days=days_ago), actor=actor, **extra,
    )  # fmt: skip
    return purchase.engagement


def test_purchase_opens_an_engagement_due_at_the_first_milestone(scoped, customer, offering, actor):
    engagement = _purchase(scoped, customer, offering, actor, days_ago=1)
    assert engagement.status == "on_track"
    assert engagement.next_step == "m1"
    assert engagement.next_due_at == engagement.pos_at + timedelta(days=2)
    assert OutboxMessage.objects.filter(kind=outbox.CHANGED).exists()


def test_old_purchase_without_events_is_stalled_past_due_plus_grace(scoped, customer, offering, actor):
    # Due on day 2, grace 3 days: stalled after day 5.
    assert _purchase(scoped, customer, offering, actor, days_ago=4.9, external_id="a").status == "on_track"
    assert _purchase(scoped, customer, offering, actor, days_ago=5.1, external_id="b").status == "stalled"


def test_purchase_replay_same_body_returns_stored_and_other_body_conflicts(scoped, customer, offering, actor):
    first, created = purchase_record(
        tenant=scoped, external_id="p-9", customer=customer, offering=offering,
        purchased_at=NOW - timedelta(days=1), amount="10.50", currency="eur", actor=actor,
    )  # fmt: skip
    again, created_again = purchase_record(
        tenant=scoped, external_id="p-9", customer=customer, offering=offering,
        purchased_at=NOW - timedelta(days=1), amount="10.50", currency="EUR", actor=actor,
    )  # fmt: skip
    assert created and not created_again and again.pk == first.pk
    with pytest.raises(Conflict) as exc:
        purchase_record(
            tenant=scoped, external_id="p-9", customer=customer, offering=offering,
            purchased_at=NOW - timedelta(days=2), amount="10.50", currency="EUR", actor=actor,
        )  # fmt: skip
    assert "purchased_at" in exc.value.message
    assert Engagement.objects.count() == 1


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"purchased_at": NOW.replace(tzinfo=None)}, "purchased_at", "time zone offset"),
        ({"purchased_at": NOW + timedelta(days=1)}, "purchased_at", "in the future"),
        ({"amount": "abc", "currency": "EUR"}, "amount", "valid number"),
        ({"amount": "1.234", "currency": "EUR"}, "amount", "2 after"),
        ({"amount": "5", "currency": "EURO"}, "currency", "ISO 4217"),
        ({"amount": "5"}, "currency", "currency of the amount"),
    ],
)
def test_purchase_rejects_bad_input_naming_the_field(scoped, customer, offering, actor, kwargs, field, text):
    values = {"purchased_at": NOW - timedelta(days=1), **kwargs}
    with pytest.raises(Invalid) as exc:
        purchase_record(tenant=scoped, external_id="x", customer=customer, offering=offering, actor=actor, **values)
    assert text in " ".join(exc.value.message_dict[field])


def test_milestones_move_the_projection_and_pov_sets_days_to_value(scoped, customer, offering, actor):
    engagement = _purchase(scoped, customer, offering, actor, days_ago=8)
    pos = engagement.pos_at
    engagement = event_record(tenant=scoped, engagement=engagement, type="milestone", milestone="m1",
                              occurred_at=pos + timedelta(days=1), actor=actor)[0].engagement  # fmt: skip
    assert (engagement.status, engagement.next_step) == ("on_track", "m2")
    event_record(tenant=scoped, engagement=engagement, type="milestone", milestone="m3",
                 occurred_at=pos + timedelta(days=6, hours=12), actor=actor)  # fmt: skip
    engagement.refresh_from_db()
    assert engagement.status == "reached"
    assert engagement.pov_at == pos + timedelta(days=6, hours=12)
    assert engagement.days_to_value == pytest.approx(6.5)
    assert engagement.next_step == "" and engagement.next_due_at is None
    assert MilestoneReach.objects.filter(engagement=engagement).count() == 2
    reached = [s for m in OutboxMessage.objects.filter(kind=outbox.REACHED_POV) for s in outbox.subjects(m)]
    assert reached == [{"engagement": str(engagement.id), "from": "on_track", "to": "reached"}]


def test_pause_stops_the_value_clock(scoped, customer, offering, actor):
    engagement = _purchase(scoped, customer, offering, actor, days_ago=10)
    pos = engagement.pos_at
    for type_, day in (("paused", 1), ("resumed", 3)):
        event_record(tenant=scoped, engagement=engagement, type=type_, occurred_at=pos + timedelta(days=day),
                     actor=actor)  # fmt: skip
    engagement = event_record(tenant=scoped, engagement=engagement, type="milestone", milestone="m3",
                              occurred_at=pos + timedelta(days=5), actor=actor)[0].engagement  # fmt: skip
    assert engagement.calendar_days_to_value == pytest.approx(5)
    assert engagement.days_to_value == pytest.approx(3)


def test_duplicate_event_external_id_is_accepted_once(scoped, customer, offering, actor):
    engagement = _purchase(scoped, customer, offering, actor)
    kwargs = {
        "tenant": scoped,
        "engagement": engagement,
        "type": "milestone",
        "milestone": "m1",
        "occurred_at": engagement.pos_at + timedelta(hours=1),
        "external_id": "ev-1",
        "actor": actor,
    }
    first, created = event_record(**kwargs)
    second, created_again = event_record(**kwargs)
    assert created and not created_again and first.pk == second.pk
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"type": "milestone", "milestone": "nope"}, "milestone", "not a milestone of this offering"),
        ({"type": "milestone"}, "milestone", "needs the milestone key"),
        ({"type": "satisfaction", "score": 6}, "score", "1 to 5"),
        ({"type": "satisfaction", "score": 0}, "score", "1 to 5"),
        ({"type": "satisfaction"}, "score", "1 to 5"),
        ({"type": "lost", "score": 3}, "score", "Only satisfaction"),
        ({"type": "paused", "milestone": "m1"}, "milestone", "Only milestone events"),
        ({"type": "celebrated"}, "type", "not one of"),
        ({"type": "lost", "offset": timedelta(days=-1)}, "occurred_at", "before the purchase"),
        ({"type": "lost", "offset": timedelta(days=30)}, "occurred_at", "in the future"),
        ({"type": "lost", "naive": True}, "occurred_at", "time zone offset"),
    ],
)
def test_event_rejects_bad_input_naming_the_field(scoped, customer, offering, actor, kwargs, field, text):
    engagement = _purchase(scoped, customer, offering, actor, days_ago=2)
    kwargs = dict(kwargs)
    occurred_at = engagement.pos_at + kwargs.pop("offset", timedelta(hours=1))
    if kwargs.pop("naive", False):
        occurred_at = occurred_at.replace(tzinfo=None)
    with pytest.raises(Invalid) as exc:
        event_record(tenant=scoped, engagement=engagement, occurred_at=occurred_at, actor=actor, **kwargs)
    assert text in " ".join(exc.value.message_dict[field])
    assert Event.objects.count() == 0


def test_a_stored_event_is_never_rewritten_through_the_orm(scoped, customer, offering, actor):
    engagement = _purchase(scoped, customer, offering, actor)
    event, _ = event_record(tenant=scoped, engagement=engagement, type="milestone", milestone="m1",
                            occurred_at=engagement.pos_at + timedelta(hours=1), actor=actor)  # fmt: skip
    event.comment = "rewritten"

    with pytest.raises(AppendOnlyError):
        event.save(update_fields=["comment"])
    with transaction.atomic(), pytest.raises(IntegrityError):  # a plain save inserts: the id is taken
        event.save()
    assert Event.objects.get(pk=event.pk).comment == ""


def test_customer_upsert_creates_then_updates(scoped, actor):
    customer, created = customer_upsert(tenant=scoped, external_id="c1", name="Ada", actor=actor)
    same, created_again = customer_upsert(tenant=scoped, external_id="c1", name="Ada L.", segment="ent", actor=actor)
    assert created and not created_again and same.pk == customer.pk
    customer.refresh_from_db()
    assert (customer.name, customer.segment) == ("Ada L.", "ent")


def test_reassign_records_a_handoff_note(scoped, customer, offering, actor):
    engagement = _purchase(scoped, customer, offering, actor)
    alice = MemberFactory(tenant=scoped, user__email="alice@acme.test")
    engagement, handoff = engagement_reassign(
        tenant=scoped, engagement=engagement, owner=alice, note="Call on Monday", actor=actor
    )
    assert engagement.owner_id == alice.pk
    assert handoff.kind == "handoff"
    assert "nobody → alice@acme.test" in handoff.body and "Call on Monday" in handoff.body
    # Reassigning to the same owner changes nothing and writes no note.
    assert engagement_reassign(tenant=scoped, engagement=engagement, owner=alice, actor=actor)[1] is None
    assert Note.objects.count() == 1


def test_note_add_requires_text(scoped, customer, offering, actor):
    engagement = _purchase(scoped, customer, offering, actor)
    with pytest.raises(Invalid):
        note_add(tenant=scoped, engagement=engagement, body="   ", actor=actor)
    assert note_add(tenant=scoped, engagement=engagement, body="Kick-off done", actor=actor).kind == "note"


def test_offering_save_replaces_the_journey_and_rebuilds_projections(scoped, customer, actor):
    milestones = [{"key": "a", "name": "A", "due_day": 2}, {"key": "b", "name": "B", "due_day": 9}]
    offering, created = offering_save(tenant=scoped, key="tv", name="TV", milestones=milestones, actor=actor)
    assert created and offering.target_days == 9
    engagement = _purchase(scoped, customer, offering, actor, days_ago=1)
    event_record(tenant=scoped, engagement=engagement, type="milestone", milestone="a",
                 occurred_at=engagement.pos_at + timedelta(hours=2), actor=actor)  # fmt: skip
    assert engagement.status == "on_track"
    # Make "a" the PoV milestone by dropping "b": the engagement has now reached PoV.
    offering_save(tenant=scoped, key="tv", name="TV", milestones=milestones[:1], actor=actor)
    engagement.refresh_from_db()
    assert engagement.status == "reached"
    # "a" has an event: it cannot be removed.
    with pytest.raises(Conflict):
        offering_save(tenant=scoped, key="tv", name="TV", milestones=[{"key": "c", "name": "C", "due_day": 1}],
                      actor=actor)  # fmt: skip


@pytest.mark.parametrize(
    ("milestones", "field"),
    [
        ([], "milestones"),
        ([{"key": "a", "name": "A", "due_day": 5}, {"key": "a", "name": "B", "due_day": 6}], "milestones.1.key"),
        ([{"key": "a", "name": "A", "due_day": 5}, {"key": "b", "name": "B", "due_day": 4}], "milestones.1.due_day"),
        ([{"key": "satisfaction", "name": "S", "due_day": 5}], "milestones.0.key"),
        ([{"key": "a b", "name": "S", "due_day": 5}], "milestones.0.key"),
        ([{"key": "a", "name": "", "due_day": 5}], "milestones.0.name"),
        ([{"key": "a", "name": "A", "due_day": -1}], "milestones.0.due_day"),
    ],
)
def test_offering_save_rejects_bad_journeys(scoped, actor, milestones, field):
    with pytest.raises(Invalid) as exc:
        offering_save(tenant=scoped, key="tv", name="TV", milestones=milestones, actor=actor)
    assert field in exc.value.message_dict
