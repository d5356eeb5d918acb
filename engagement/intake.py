"""One cleaned item of input (a customer, purchase or event body, see engagement.cleaners) to a service
call, resolving the objects it names. Shared by the single endpoints and the batch's one-at-a-time replay."""

from django.db import transaction

from engagement import queries
from engagement.errors import Missing
from engagement.models import Customer, Event, Offering, Purchase
from engagement.services import customer_upsert, event_record, purchase_record
from tenants.actors import Actor
from tenants.models import Tenant


def upsert_customer(*, tenant: Tenant, actor: Actor, data: dict) -> tuple[Customer, bool]:
    return customer_upsert(tenant=tenant, actor=actor, **data)


def _customer(tenant: Tenant, actor: Actor, ref: str | dict) -> Customer:
    if isinstance(ref, dict):
        return customer_upsert(tenant=tenant, actor=actor, **ref)[0]
    customer = Customer.objects.filter(external_id=ref).first()
    if customer is None:
        raise Missing("customer", f"No customer {ref!r}; send the customer as an object to create it.")
    return customer


def _offering(key: str) -> Offering:
    offering = Offering.objects.filter(key=key).first()
    if offering is None:
        raise Missing("offering", f"No offering {key!r}.")
    return offering


def record_purchase(*, tenant: Tenant, actor: Actor, data: dict) -> tuple[Purchase, bool]:
    """Returns (purchase, created); the customer object, if given, is upserted in the same transaction."""
    with transaction.atomic():
        return purchase_record(
            tenant=tenant, actor=actor, external_id=data["external_id"],
            customer=_customer(tenant, actor, data["customer"]), offering=_offering(data["offering"]),
            purchased_at=data["purchased_at"], amount=data.get("amount"), currency=data.get("currency") or "",
            owner=queries.member_by_email(data.get("owner"), "owner"),
            sales_rep=queries.member_by_email(data.get("sales_rep"), "sales_rep"),
            success_criteria=data.get("success_criteria"),
        )  # fmt: skip


def record_event(*, tenant: Tenant, actor: Actor, data: dict) -> tuple[Event, bool]:
    """Returns (event, created) for the purchase the body names; `event.engagement` is the engagement
    after the event, with what the API shows of it loaded."""
    data = dict(data)
    purchase = data.pop("purchase")
    with transaction.atomic():
        engagement = queries.locked_by_purchase(tenant, purchase)
        if engagement is None:
            raise Missing("purchase", f"No purchase {purchase!r}.")
        event, created = event_record(tenant=tenant, actor=actor, engagement=engagement, already_locked=True, **data)
    # A duplicate external_id may name an event of another engagement.
    same = event.engagement_id == engagement.id
    event.engagement = engagement if same else queries.engagement_for(event.engagement_id)
    return event, created
