"""One item of input (a customer, purchase or event payload, already shape-checked) to a service
call, resolving the references it names. Shared by the single endpoints and the batch fallback."""

from django.db import transaction

from engagement import queries
from engagement.errors import Missing
from engagement.models import Customer, Engagement, Offering
from engagement.services import customer_upsert, event_record, purchase_record
from tenants.prepared import Prepared


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


def _engagement_by_purchase(tenant_id, purchase_ref):
    """The engagement of the named purchase, with what the API shows of it, row-locked: one query."""
    return (
        Engagement.objects.select_related(*queries.ENGAGEMENT_RELATED)
        .select_for_update(of=("self",))
        # The purchase's tenant too, or its (tenant, external_id) index cannot find it.
        .filter(purchase__tenant_id=tenant_id, purchase__external_id=purchase_ref)
        .order_by()[:1]
    )


_locked_by_purchase = Prepared(_engagement_by_purchase, scoped=True)


def _locked_engagement(purchase_ref):
    found = _locked_by_purchase(purchase_ref)
    if not found:
        raise Missing("purchase", f"No purchase {purchase_ref!r}.")
    return found[0]


def record_event(*, tenant, actor, data):
    """Returns (event, created) for the purchase the payload names; `event.engagement` is the engagement
    after the event, with its related rows loaded."""
    data = dict(data)
    with transaction.atomic():
        engagement = _locked_engagement(data.pop("purchase"))
        event, created = event_record(tenant=tenant, actor=actor, engagement=engagement, lock_held=True, **data)
    if event.engagement_id == engagement.id:
        event.engagement = engagement
    else:  # a duplicate external_id recorded on another engagement
        event.engagement = queries.engagement_for(event.engagement_id)
    return event, created
