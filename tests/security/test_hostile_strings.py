"""Hostile input in the string fields of the API's write endpoints, alone and as batch items.

The promise guarded here: a value one character over the model's limit is a 400 naming the field, a value
of exactly the limit is stored exactly as sent, and a NUL or a lone surrogate is refused naming the field,
never a 500. tests/api/test_limits.py pins the basic limits with one sample each; this module goes through
every string field of every write endpoint.
"""

# The API fixtures are imported by name, so pytest finds them here; F811 flags each use.
# ruff: noqa: F811

import json
from dataclasses import dataclass

import pytest

from engagement.models import Customer, Engagement, Event, Milestone, Note, Offering, Purchase
from engagement.services import customer_upsert, offering_save, purchase_record
from tenants.scoping import tenant_scope
from tenants.services import member_add
from tests.api.conftest import (  # noqa: F401 - fixtures of the API tests, used by name below
    acme,
    acme_purchase,
    acme_write_key,
    ago,
    api,
    charlie,
    error_of,
    iso,
    members,
    software,
)

# Values ----------------------------------------------------------------------------------------------


def email_of_length(length, local="a"):
    """A valid address of exactly `length` characters: a 64-character local part, labels of 62."""
    local_part = (local * 64)[:64]
    remaining = length - len(local_part) - 1 - len(".com")
    labels = []
    while remaining > 63:
        labels.append("b" * 62)
        remaining -= 63  # the label and its dot
    labels.append("b" * remaining)
    address = f"{local_part}@{'.'.join(labels)}.com"
    assert len(address) == length, (len(address), length)
    return address


def text_of_length(length, letter="x"):
    return letter * length


# The string fields of the write endpoints ------------------------------------------------------------


@dataclass(frozen=True)
class Refs:
    """Objects whose ids are as long as the model allows, so a maximal reference can name them."""

    customer: str
    offering: str
    milestone: str
    purchase: str
    member: str
    engagement: str


@pytest.fixture
def long_refs(acme, software, acme_purchase, members, actor):
    """acme's objects with maximal ids: customer (255), offering key (64) with a milestone key (64),
    purchase (255) of that offering, and a member whose email has 254 characters."""
    with tenant_scope(acme):
        customer, _ = customer_upsert(tenant=acme, external_id="c" * 255, name="Long", actor=actor)
        offering, _ = offering_save(
            tenant=acme,
            key="k" * 64,
            name="Long",
            actor=actor,
            milestones=[{"key": "m" * 64, "name": "M", "due_day": 5}],
        )
        purchase, _ = purchase_record(
            tenant=acme, external_id="p" * 255, customer=customer, offering=offering, purchased_at=ago(10), actor=actor
        )
        member, _ = member_add(tenant=acme, email=email_of_length(254, "o"), role="owner")
    return Refs(customer.external_id, offering.key, "m" * 64, purchase.external_id, member.user.email,
                str(acme_purchase.engagement.id))  # fmt: skip


def _customer(value_for, field):
    return {"external_id": "C-9", "name": "Ada", **value_for(field)}


def _purchase(value_for, field, refs):
    body = {"external_id": "P-9", "customer": "C-1", "offering": "software", "purchased_at": iso(ago(5))}
    if field.startswith("customer."):
        inner = field.split(".", 1)[1]
        body["customer"] = {"external_id": "C-9", "name": "Ada", **{inner: value_for(field)[field]}}
        return body
    if field == "currency":
        body["amount"] = "10.00"
    return {**body, **value_for(field)}


def _event(value_for, field, refs):
    body = {"type": "milestone", "purchase": "P-1", "milestone": "onboarded", "occurred_at": iso(ago(1))}
    if field in ("milestone", "purchase"):  # the long purchase, of the offering with the long milestone key
        body.update(purchase=refs.purchase, milestone=refs.milestone)
    return {**body, **value_for(field)}


def _offering(value_for, field, refs):
    milestone = {"key": "kickoff", "name": "Kickoff", "due_day": 3}
    if field.startswith("milestones.0."):
        milestone.update({field.rsplit(".", 1)[1]: value_for(field)[field]})
        return {"key": "fresh", "name": "Fresh", "milestones": [milestone]}
    return {"key": "fresh", "name": "Fresh", "milestones": [milestone], **value_for(field)}


def _reassign(value_for, field, refs):
    if field == "note":
        return {"owner": "second@acme.test", **value_for(field)}
    return value_for(field)


@dataclass(frozen=True)
class StringField:
    """One string field of one endpoint: its longest accepted length (the model's), how to build a body
    around a value, and how to read back what was stored."""

    endpoint: str
    field: str
    max_length: int
    kind: str = "text"  # text | email | ref (names an object that must exist) | currency

    def __str__(self):
        return f"{self.endpoint}:{self.field}"


CUSTOMER_FIELDS = [
    StringField("customers", "external_id", 255),
    StringField("customers", "name", 255),
    StringField("customers", "email", 254, "email"),
    StringField("customers", "segment", 64),
]
PURCHASE_FIELDS = [
    StringField("purchases", "external_id", 255),
    StringField("purchases", "customer", 255, "ref"),
    StringField("purchases", "customer.external_id", 255),
    StringField("purchases", "customer.name", 255),
    StringField("purchases", "customer.email", 254, "email"),
    StringField("purchases", "customer.segment", 64),
    StringField("purchases", "offering", 64, "ref"),
    StringField("purchases", "currency", 3, "currency"),
    StringField("purchases", "owner", 254, "ref"),
    StringField("purchases", "sales_rep", 254, "ref"),
]
EVENT_FIELDS = [
    StringField("events", "purchase", 255, "ref"),
    StringField("events", "milestone", 64, "ref"),
    StringField("events", "comment", 4000),
    StringField("events", "reason", 500),
    StringField("events", "external_id", 255),
]
OFFERING_FIELDS = [
    StringField("offerings", "key", 64, "key"),
    StringField("offerings", "name", 200),
    StringField("offerings", "milestones.0.key", 64, "key"),
    StringField("offerings", "milestones.0.name", 200),
]
REASSIGN_FIELDS = [
    StringField("engagements", "owner", 254, "ref"),
    StringField("engagements", "sales_rep", 254, "ref"),
    StringField("engagements", "note", 10000),
]
SINGLE_FIELDS = CUSTOMER_FIELDS + PURCHASE_FIELDS + EVENT_FIELDS + OFFERING_FIELDS + REASSIGN_FIELDS
# The batch takes customers, purchases and events with the single endpoints' rules.
BATCH_KINDS = {"customers": "customer", "purchases": "purchase", "events": "event"}
BATCH_FIELDS = CUSTOMER_FIELDS + PURCHASE_FIELDS + EVENT_FIELDS


def maximal_value(spec, refs):
    """The longest value the field accepts (for references: an existing object with such an id)."""
    if spec.kind == "ref":
        return {
            "customer": refs.customer, "offering": refs.offering, "milestone": refs.milestone,
            "purchase": refs.purchase, "owner": refs.member, "sales_rep": refs.member,
        }[spec.field]  # fmt: skip
    if spec.kind == "email":
        return email_of_length(spec.max_length)
    if spec.kind == "currency":
        return "EUR"
    return text_of_length(spec.max_length, "K" if spec.kind == "key" else "x")


def overlong_value(spec):
    if spec.kind == "email" or spec.field in ("owner", "sales_rep"):
        return email_of_length(spec.max_length + 1)
    if spec.kind == "currency":
        return "EURO"
    return text_of_length(spec.max_length + 1, "K" if spec.kind == "key" else "x")


def body_for(spec, value, refs):
    """A body of `spec.endpoint` that is valid except, perhaps, for `value` in `spec.field`."""

    def value_for(field):
        return {field: value}

    if spec.endpoint == "customers":
        return _customer(value_for, spec.field)
    builder = {"purchases": _purchase, "events": _event, "offerings": _offering, "engagements": _reassign}
    return builder[spec.endpoint](value_for, spec.field, refs)


def send(api, spec, body, refs):
    if spec.endpoint == "engagements":
        return api.patch(f"engagements/{refs.engagement}/", body=json.dumps(body))
    return api.post(f"{spec.endpoint}/", body=json.dumps(body))


def send_raw(api, spec, raw, refs):
    if spec.endpoint == "engagements":
        return api.patch(f"engagements/{refs.engagement}/", body=raw)
    return api.post(f"{spec.endpoint}/", body=raw)


def stored_value(tenant, spec, value, refs):
    """What the database holds for the field after the write that sent `value`."""
    with tenant_scope(tenant):
        if spec.endpoint == "customers":
            return getattr(
                Customer.objects.get(external_id=value if spec.field == "external_id" else "C-9"), spec.field
            )
        if spec.endpoint == "purchases":
            return _stored_purchase_value(spec, value)
        if spec.endpoint == "events":
            event = Event.objects.select_related("engagement__purchase", "milestone").latest("created_at")
            return {"purchase": event.engagement.purchase.external_id,
                    "milestone": event.milestone.key if event.milestone else None}.get(spec.field) or getattr(
                event, spec.field)  # fmt: skip
        if spec.endpoint == "offerings":
            return _stored_offering_value(spec, value)
        engagement = Engagement.objects.select_related("owner__user", "sales_rep__user").get(pk=refs.engagement)
        if spec.field == "note":
            return (
                Note.objects.filter(engagement=engagement, kind="handoff").latest("created_at").body.split("\n", 1)[1]
            )
        return getattr(engagement, spec.field).user.email


def _stored_purchase_value(spec, value):
    purchase = Purchase.objects.select_related("customer", "offering").get(
        external_id=value if spec.field == "external_id" else "P-9"
    )
    if spec.field.startswith("customer."):
        return getattr(purchase.customer, spec.field.split(".", 1)[1])
    if spec.field in ("owner", "sales_rep"):
        return getattr(purchase.engagement, spec.field).user.email
    return {"customer": purchase.customer.external_id, "offering": purchase.offering.key}.get(spec.field) or getattr(
        purchase, spec.field
    )


def _stored_offering_value(spec, value):
    if spec.field == "key":
        return Offering.objects.get(key=value).key
    offering = Offering.objects.get(key="fresh")
    if spec.field == "name":
        return offering.name
    return getattr(Milestone.objects.get(offering=offering), spec.field.rsplit(".", 1)[1])


def _field_id(spec):
    return str(spec)


# Strings at and over the model's limit ---------------------------------------------------------------


@pytest.mark.parametrize("spec", SINGLE_FIELDS, ids=_field_id)
def test_a_string_one_over_the_limit_is_a_400_naming_the_field(acme, api, long_refs, spec):
    response = send(api, spec, body_for(spec, overlong_value(spec), long_refs), long_refs)
    error = error_of(response, 400, "invalid")
    assert list(error["fields"]) == [spec.field], error


@pytest.mark.parametrize("spec", SINGLE_FIELDS, ids=_field_id)
def test_a_string_of_exactly_the_limit_is_stored_unchanged(acme, api, long_refs, spec):
    value = maximal_value(spec, long_refs)
    response = send(api, spec, body_for(spec, value, long_refs), long_refs)
    assert response.status_code in (200, 201), response.content[:2000]
    assert stored_value(acme, spec, value, long_refs) == value


def batch_body(spec, value, refs):
    return {"items": [{"kind": BATCH_KINDS[spec.endpoint], "data": body_for(spec, value, refs)}]}


@pytest.mark.parametrize("spec", BATCH_FIELDS, ids=_field_id)
def test_a_batch_item_one_over_the_limit_fails_alone_naming_the_field(acme, api, long_refs, spec):
    items = batch_body(spec, overlong_value(spec), long_refs)["items"]
    fine = {"kind": "customer", "data": {"external_id": "C-kept", "name": "Kept"}}
    response = api.post("batch/", {"items": [*items, fine]})
    assert response.status_code == 200, response.content[:2000]
    failed, kept = response.json()["results"]
    assert failed["status"] == 400 and list(failed["error"]["fields"]) == [spec.field], failed
    assert kept["status"] == 201
    with tenant_scope(acme):
        assert Customer.objects.filter(external_id="C-kept").exists()


@pytest.mark.parametrize("spec", BATCH_FIELDS, ids=_field_id)
def test_a_batch_item_of_exactly_the_limit_is_stored_unchanged(acme, api, long_refs, spec):
    value = maximal_value(spec, long_refs)
    response = api.post("batch/", batch_body(spec, value, long_refs))
    assert response.status_code == 200, response.content[:2000]
    assert response.json()["results"][0]["status"] in (200, 201), response.json()
    assert stored_value(acme, spec, value, long_refs) == value


# NUL characters and lone surrogates in every string field ---------------------------------------------


def with_bad_character(spec, character):
    """A value of the field's kind holding `character`."""
    if spec.kind == "email" or spec.field in ("owner", "sales_rep"):
        return f"a{character}b@example.com"
    return f"A{character}B"


def assert_rejected_naming(response, spec, batch=False):
    if not batch:
        error = error_of(response, 400, "invalid")
        assert list(error["fields"]) == [spec.field], error
        return
    assert response.status_code == 200, response.content[:2000]
    (result,) = response.json()["results"]
    assert result["status"] == 400 and list(result["error"]["fields"]) == [spec.field], result


@pytest.mark.parametrize("spec", SINGLE_FIELDS, ids=_field_id)
def test_an_escaped_nul_in_any_string_field_is_a_400_naming_it(acme, api, long_refs, spec):
    body = body_for(spec, with_bad_character(spec, "\x00"), long_refs)
    assert "\\u0000" in json.dumps(body)
    assert_rejected_naming(send(api, spec, body, long_refs), spec)


@pytest.mark.parametrize("spec", BATCH_FIELDS, ids=_field_id)
def test_an_escaped_nul_in_any_batch_item_field_fails_that_item_naming_it(acme, api, long_refs, spec):
    response = api.post("batch/", batch_body(spec, with_bad_character(spec, "\x00"), long_refs))
    assert_rejected_naming(response, spec, batch=True)


@pytest.mark.parametrize("spec", SINGLE_FIELDS, ids=_field_id)
def test_a_raw_nul_byte_in_any_string_field_is_a_400(acme, api, long_refs, spec):
    raw = json.dumps(body_for(spec, with_bad_character(spec, "\x00"), long_refs)).replace("\\u0000", "\x00")
    error = error_of(send_raw(api, spec, raw, long_refs), 400, "parse_error")
    assert "NUL" in error["message"]


@pytest.mark.parametrize("spec", SINGLE_FIELDS, ids=_field_id)
def test_a_lone_surrogate_in_any_string_field_is_a_400_naming_it(acme, api, long_refs, spec):
    # Valid JSON ("\ud800" escaped) but not Unicode text: it can be neither stored nor sent back as UTF-8.
    body = json.dumps(body_for(spec, with_bad_character(spec, "\ud800"), long_refs))
    assert "\\ud800" in body
    error = error_of(send_raw(api, spec, body, long_refs), 400, "parse_error")
    assert list(error["fields"]) == [spec.field], error
    assert "surrogate" in error["message"]


@pytest.mark.parametrize("spec", BATCH_FIELDS, ids=_field_id)
def test_a_lone_surrogate_in_a_batch_item_is_a_400_naming_its_path(acme, api, long_refs, spec):
    # Like invalid UTF-8, text that is not Unicode makes the whole body unreadable, not one item.
    body = json.dumps(batch_body(spec, with_bad_character(spec, "\ud800"), long_refs))
    error = error_of(api.post("batch/", body=body), 400, "parse_error")
    assert list(error["fields"]) == [f"items.0.data.{spec.field}"], error
    with tenant_scope(acme):
        assert not Customer.objects.filter(external_id="C-9").exists()


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ('{"external_id": "C-9", "name": "Ada", "attributes": {"note": "\\udfff"}}', "attributes.note"),
        ('{"external_id": "C-9", "name": "Ada", "attributes": {"\\ud800": 1}}', "attributes.\\ud800"),
        ('{"\\ud800x": "x", "external_id": "C-9", "name": "Ada"}', "\\ud800x"),
    ],
    ids=["attribute-value", "attribute-key", "top-level-key"],
)
def test_a_lone_surrogate_anywhere_in_a_body_is_a_400(acme, api, body, path):
    error = error_of(api.post("customers/", body=body), 400, "parse_error")
    assert list(error["fields"]) == [path], error
    with tenant_scope(acme):
        assert not Customer.objects.exists()
