"""One item of input (a customer, purchase or event payload, already shape-checked) to a service
call, resolving the references it names. Shared by the single endpoints and the batch fallback."""

from django.db import transaction

from engagement import queries
from engagement.errors import Missing
from engagement.models import Customer, Offering
from engagement.services import customer_upsert, event_record, purchase_record


def upsert_customer(*, tenant, actor, data):
    return customer_upsert(tenant=tenant, actor=actor, **data)


def _customer(tenant, actor, ref):
    if isinstance(ref, dict):
        return customer_upsert(tenant=tenant, actor=actor, **ref)[0]
    customer = Customer.objects.filter(external_id=ref).first()
    if customer is None:
        raise Missing("customer", f"No customer {ref!r}; send the customer as an object to create it.")
    return customer


def _offering(key):
    offering = Offering.objects.filter(key=key).first()
    if offering is None:
        raise Missing("offering", f"No offering {key!r}.")
    return offering


def record_purchase(*, tenant, actor, data):
    """Returns (purchase, created); the customer object, if given, is upserted in the same transaction."""
    with transaction.atomic():
        return purchase_record(
            tenant=tenant,
            actor=actor,
            external_id=data["external_id"],
            customer=_customer(tenant, actor, data["customer"]),
            offering=_offering(data["offering"]),
            purchased_at=data["purchased_at"],
            amount=data.get("amount"),
            currency=data.get("currency") or "",
            owner=queries.member_by_email(data.get("owner"), "owner"),
            sales_rep=queries.member_by_email(data.get("sales_rep"), "sales_rep"),
        )


def record_event(*, tenant, actor, data):
    """Returns (event, created) for the purchase the payload names."""
    data = dict(data)
    purchase = queries.purchase_ref(data.pop("purchase"))
    engagement = queries.engagement_for(purchase.engagement.id)
    return event_record(tenant=tenant, actor=actor, engagement=engagement, **data)
