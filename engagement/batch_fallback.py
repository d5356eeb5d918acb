"""The batch's fallback: when the set-based path meets a concurrent writer (a unique violation), the
valid items are replayed in order through the single-item services, each in its own transaction."""

from django.db import transaction

from engagement import intake
from engagement.batch_items import ItemError
from engagement.errors import Conflict, Invalid, Missing


def one_at_a_time(batch):
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
