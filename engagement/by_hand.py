"""Pages to add a purchase and to edit a customer by hand, for a company without a developer: each form
becomes the API's body and goes through the API's cleaners and services, so it is refused and recorded
exactly as the same body sent to POST /api/v1/purchases/ or /api/v1/customers/ would be."""

import json
from typing import Any

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render

from engagement import cleaners, intake, queries
from engagement.errors import Conflict, Invalid, Missing
from engagement.models import Customer, Offering
from engagement.views import local_time
from tenants.web import ACTING_ROLES, error_messages, roles, web_actor

PURCHASE_FIELDS = ("external_id", "customer_id", "customer_name", "customer_email", "customer_segment", "offering",
                   "purchased_at", "amount", "currency", "owner", "sales_rep", "success_criteria")  # fmt: skip
CUSTOMER_FIELDS = ("name", "email", "segment", "attributes")
# The purchase form's required fields, by the names the API's errors give them: all are said at once.
REQUIRED = {"customer.external_id": "customer_id", "customer.name": "customer_name", "external_id": "external_id"}


def _purchase_body(values: dict, tenant) -> dict:
    """The form as the API's purchase body; the customer is created or updated with it, as there."""
    blank = {field: ["This field may not be blank."] for field, name in REQUIRED.items() if not values[name]}
    if blank:
        raise Invalid(blank)
    customer = {"external_id": values["customer_id"], "name": values["customer_name"]}
    customer.update({k: values[f"customer_{k}"] for k in ("email", "segment") if values[f"customer_{k}"]})
    purchased_at = local_time(values["purchased_at"], tenant, "purchased_at")
    return {
        "external_id": values["external_id"], "customer": customer, "offering": values["offering"],
        "purchased_at": purchased_at.isoformat(), "amount": values["amount"] or None,
        "currency": values["currency"].upper(), "owner": values["owner"] or None,
        "sales_rep": values["sales_rep"] or None,
        "success_criteria": values["success_criteria"].splitlines(),  # one a line
    }  # fmt: skip


@roles(ACTING_ROLES, read=ACTING_ROLES)
def purchase_new(request, slug):
    values, errors = dict.fromkeys(PURCHASE_FIELDS, ""), []
    if request.method == "POST":
        values = {name: request.POST.get(name, "").strip() for name in PURCHASE_FIELDS}
        try:
            data = cleaners.clean_purchase(_purchase_body(values, request.tenant))
            purchase, created = intake.record_purchase(tenant=request.tenant, actor=web_actor(request), data=data)
        except (Invalid, Conflict, Missing) as exc:
            errors = error_messages(exc, {"owner": "Owner"})
        else:
            said = "Purchase recorded: the engagement is open." if created else "That purchase was already recorded."
            messages.success(request, said)
            return redirect("engagement", slug=slug, engagement_id=purchase.engagement.id)
    context = {
        "values": values, "errors": errors, "members": queries.responsible_members(),
        "offerings": Offering.objects.order_by("name").values_list("key", "name"),
    }  # fmt: skip
    return render(request, "engagement/purchase_new.html", context, status=400 if errors else 200)


def attributes_text(attributes: dict) -> str:
    """One `name: value` line per attribute, each read back by attributes_from_text as it is stored."""
    return "\n".join(f"{k}: {_value_text(v)}" for k, v in attributes.items())


def _value_text(value: Any) -> str:
    """Text as it is, unless it would read back as something else (a number, true, JSON, spaces around it,
    several lines): then, like any other value, as JSON ("123" in quotes stays text)."""
    if isinstance(value, str) and value.splitlines() == [value] and _value_from_text(value) == value:
        return value
    return json.dumps(value)


def _value_from_text(text: str) -> Any:
    """A value that reads as JSON (a number, true, a list, a quoted text) is kept as such; others are text."""
    value = text.strip()
    try:
        return json.loads(value) if value[:1] in '-0123456789tfn[{"' else value
    except ValueError:
        return value


def attributes_from_text(text: str) -> dict:
    """The reverse of attributes_text."""
    found = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise Invalid({"attributes": [f"Line {number} needs the form 'name: value'."]})
        found[name.strip()] = _value_from_text(value)
    return found


@roles(ACTING_ROLES, read=ACTING_ROLES)
def customer_edit(request, slug, customer_id):
    customer = get_object_or_404(Customer, pk=customer_id)
    values = {
        "name": customer.name, "email": customer.email, "segment": customer.segment,
        "attributes": attributes_text(customer.attributes),
    }  # fmt: skip
    errors = []
    if request.method == "POST":
        values = {name: request.POST.get(name, "").strip() for name in CUSTOMER_FIELDS}
        try:
            body = {**values, "external_id": customer.external_id,
                    "attributes": attributes_from_text(values["attributes"])}  # fmt: skip
            intake.upsert_customer(tenant=request.tenant, actor=web_actor(request), data=cleaners.clean_customer(body))
        except Invalid as exc:
            errors = error_messages(exc)
        else:
            messages.success(request, f"{values['name']} saved.")
            return redirect("customer-edit", slug=slug, customer_id=customer.id)
    engagements = customer.engagements.select_related("offering")
    context = {"customer": customer, "values": values, "errors": errors, "engagements": engagements}
    return render(request, "engagement/customer_form.html", context, status=400 if errors else 200)
