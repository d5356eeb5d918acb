"""Hostile input: bad bytes, bad JSON, bad sizes and markup, sent to every way in.

The promise guarded here: bad input gets a clear error (a 4xx JSON error naming what is wrong for the
API, a 400 or a form error for the web), never a 500; accepted data is stored exactly as sent; and
whatever a user or an API client typed is shown escaped on every page and email, and neutralised in
the CSV export. tests/api/test_limits.py pins the basic limits with one sample each; this module
goes through every field of every write endpoint and every page.
"""

# The API and web fixtures are imported by name, so pytest finds them here; F811 flags each use.
# ruff: noqa: F811

import csv
import io
import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.html import escape

from engagement.models import Customer, Engagement, Event, Milestone, Note, Offering, Purchase
from engagement.services import customer_upsert, event_record, note_add, offering_save, purchase_record
from metrics.alerts import stalled_scan
from metrics.models import Alert
from metrics.rollups import recompute_rollups
from notify.confirmations import answer_url, confirmation_email
from notify.digests import digest_for, digest_message
from notify.models import ValueConfirmation, WebhookEndpoint
from tenants.actors import Actor
from tenants.api_keys import api_key_create
from tenants.models import Tenant
from tenants.scoping import tenant_scope
from tenants.services import member_add
from tests.api.conftest import (  # noqa: F401 - fixtures of the API tests, used by name below
    JOURNEY,
    Api,
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
from tests.web.conftest import build_world, login  # noqa: F401 - `login` is a fixture

MIB = 1024 * 1024


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


# Malformed bodies, on every write endpoint ------------------------------------------------------------

WRITES = [
    ("post", "customers/"), ("post", "purchases/"), ("post", "events/"), ("post", "offerings/"),
    ("put", "offerings/software/"), ("post", "batch/"), ("patch", "engagements/{engagement}/"),
    ("post", "alerts/{alert}/acknowledge/"),
]  # fmt: skip


@pytest.fixture
def write_paths(acme, acme_purchase, actor):
    """The write endpoints with real ids filled in (an engagement and its open alert)."""
    with tenant_scope(acme):
        stalled_scan(acme)  # P-1 is past its day-7 milestone: stalled, with an open alert
        alert = Alert.objects.get(engagement=acme_purchase.engagement)
    ids = {"engagement": acme_purchase.engagement.id, "alert": alert.id}
    return [(method, path.format(**ids)) for method, path in WRITES]


def record_counts(tenant):
    with tenant_scope(tenant):
        return (Customer.objects.count(), Purchase.objects.count(), Event.objects.count(), Offering.objects.count(),
                Note.objects.count())  # fmt: skip


def assert_clear_error(response, status=400, code=None):
    """A 4xx in the API's JSON error format; never a 500."""
    if status is None:
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:2000])
        status = response.status_code
    return error_of(response, status, code)


MALFORMED = {
    "truncated": '{"external_id": "C-1", "name": "A',
    "trailing-garbage": '{"external_id": "C-1", "name": "Ada"} x',
    "two-objects": '{"external_id": "C-1"}{"name": "Ada"}',
    "single-quotes": "{'external_id': 'C-1'}",
    "trailing-comma": '{"external_id": "C-1",}',
    "comment": '{"external_id": "C-1" /* hi */}',
    "list": '[{"external_id": "C-1"}]',
    "string": '"C-1"',
    "number": "42",
    "null": "null",
    "true": "true",
    "bom": '\ufeff{"external_id": "C-1", "name": "Ada"}',
    "whitespace-only": "  \n\t ",
    "control-character": '{"external_id": "C-1", "name": "A\x01B"}',
    "huge-integer": '{"external_id": "C-1", "name": "Ada", "attributes": {"n": ' + "9" * 5000 + "}}",
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_json_is_a_400_on_every_write_endpoint(acme, api, write_paths, name):
    before = record_counts(acme)
    for method, path in write_paths:
        response = getattr(api, method)(path, body=MALFORMED[name])
        assert_clear_error(response, 400, "parse_error")
    assert record_counts(acme) == before


def nested(depth, opener, leaf, closer):
    """A customer whose attributes hold `depth` levels of arrays or objects."""
    deep = opener * depth + leaf + closer * depth
    return '{"external_id": "C-1", "name": "Ada", "attributes": {"deep": ' + deep + "}}"


@pytest.mark.parametrize("depth", [33, 1_000, 10_000, 100_000])
@pytest.mark.parametrize(("opener", "leaf", "closer"), [("[", "", "]"), ('{"a":', "0", "}")], ids=["arrays", "objects"])
def test_deeply_nested_json_is_a_400_never_a_recursion_error(acme, api, write_paths, depth, opener, leaf, closer):
    body, before = nested(depth, opener, leaf, closer), record_counts(acme)
    assert len(body) < MIB
    for method, path in write_paths:
        error = assert_clear_error(getattr(api, method)(path, body=body), 400, "parse_error")
        assert "nested" in error["message"] or "recursion" in error["message"], error
    assert record_counts(acme) == before


INVALID_UTF8 = {
    "lone-continuation": b'{"external_id": "C-1", "name": "\x80"}',
    "overlong-slash": b'{"external_id": "C-1", "name": "\xc0\xaf"}',
    "truncated-sequence": b'{"external_id": "C-1", "name": "\xe2\x82"}',
    "encoded-surrogate": b'{"external_id": "C-1", "name": "\xed\xa0\x80"}',
    "beyond-unicode": b'{"external_id": "C-1", "name": "\xf4\x90\x80\x80"}',
    "latin-1": '{"external_id": "C-1", "name": "Müller"}'.encode("latin-1"),
    "utf-16": '{"external_id": "C-1", "name": "Ada"}'.encode("utf-16"),
    "in-a-key": b'{"\xff": "C-1"}',
}


@pytest.mark.parametrize("name", INVALID_UTF8)
def test_invalid_utf8_is_a_400_on_every_write_endpoint(acme, api, write_paths, name):
    before = record_counts(acme)
    for method, path in write_paths:
        error = assert_clear_error(getattr(api, method)(path, body=INVALID_UTF8[name]), 400, "parse_error")
        assert "UTF-8" in error["message"]
    assert record_counts(acme) == before


def test_a_body_over_one_mib_is_a_413_on_every_write_endpoint(acme, api, write_paths):
    # tests/api/test_limits.py covers the POST endpoints; this adds PATCH and the alert actions.
    body = '{"note": "' + "x" * MIB + '"}'
    for method, path in write_paths:
        assert_clear_error(getattr(api, method)(path, body=body), 413, "too_large")
    assert record_counts(acme)[4] == 0  # no handoff note


# JSON numbers that overflow a float; json.dumps would write them as Infinity, so they go in as text.
HUGE, MINUS_HUGE = "__1e309__", "__-1e309__"


def dumps_with_literals(body):
    return json.dumps(body).replace(f'"{HUGE}"', "1e309").replace(f'"{MINUS_HUGE}"', "-1e309")


OUT_OF_RANGE = [
    ("events/", {"type": "satisfaction", "score": HUGE}, "score"),
    ("events/", {"type": "satisfaction", "score": MINUS_HUGE}, "score"),
    ("events/", {"type": "satisfaction", "score": 10**400}, "score"),
    ("events/", {"type": "satisfaction", "score": 2**63}, "score"),
    ("events/", {"type": "satisfaction", "score": 4.5}, "score"),
    ("events/", {"type": "satisfaction", "score": 1e-320}, "score"),
    ("offerings/", {"satisfaction_threshold": 10**400}, "satisfaction_threshold"),
    ("offerings/", {"milestones": [{"key": "a", "name": "A", "due_day": HUGE}]}, "milestones.0.due_day"),
    ("offerings/", {"milestones": [{"key": "a", "name": "A", "due_day": 2**64}]}, "milestones.0.due_day"),
    ("offerings/", {"milestones": [{"key": "a", "name": "A", "due_day": -(2**31)}]}, "milestones.0.due_day"),
    ("purchases/", {"amount": HUGE, "currency": "EUR"}, "amount"),
    ("purchases/", {"amount": 10**400, "currency": "EUR"}, "amount"),
    ("purchases/", {"amount": "1e999999999", "currency": "EUR"}, "amount"),
    ("purchases/", {"amount": "1e-999999999", "currency": "EUR"}, "amount"),
    ("purchases/", {"amount": "NaN", "currency": "EUR"}, "amount"),
    ("purchases/", {"amount": "sNaN", "currency": "EUR"}, "amount"),
    ("purchases/", {"amount": "-Infinity", "currency": "EUR"}, "amount"),
    ("purchases/", {"amount": "1" * 100, "currency": "EUR"}, "amount"),
    ("purchases/", {"purchased_at": "9999-12-31T23:59:59-14:00"}, "purchased_at"),  # past year 9999 in UTC
    ("purchases/", {"purchased_at": "0001-01-01T00:00:00+14:00"}, "purchased_at"),  # before year 1 in UTC
    ("purchases/", {"purchased_at": "2026-02-30T00:00:00Z"}, "purchased_at"),
    ("purchases/", {"purchased_at": "2026-01-01T00:00:00+99:00"}, "purchased_at"),
    ("purchases/", {"purchased_at": HUGE}, "purchased_at"),
    ("events/", {"occurred_at": "0001-01-01T00:00:00+23:59"}, "occurred_at"),
    ("events/", {"occurred_at": "9999-12-31T23:59:59-23:59"}, "occurred_at"),
]
BASES = {
    "events/": {"type": "milestone", "purchase": "P-1", "milestone": "onboarded", "occurred_at": iso(ago(1))},
    "offerings/": {"key": "fresh", "name": "Fresh", "milestones": JOURNEY},
    "purchases/": {"external_id": "P-9", "customer": "C-1", "offering": "software", "purchased_at": iso(ago(5))},
}


def _with(base, changes):
    body = {**base, **changes}
    if body.get("type") == "satisfaction":
        body.pop("milestone")
    return body


@pytest.mark.parametrize(("path", "changes", "field"), OUT_OF_RANGE, ids=[f"{p}{f}-{i}" for i, (p, _, f) in
                                                                       enumerate(OUT_OF_RANGE)])  # fmt: skip
def test_a_number_or_time_out_of_range_is_a_400_naming_the_field(acme, api, acme_purchase, path, changes, field):
    body = dumps_with_literals(_with(BASES[path], changes))
    error = assert_clear_error(api.post(path, body=body), 400, "invalid")
    assert list(error["fields"]) == [field], error


@pytest.mark.parametrize(("kind", "changes", "field"), [
    ("event", {"type": "satisfaction", "score": HUGE}, "score"),
    ("event", {"type": "satisfaction", "score": 10**400}, "score"),
    ("purchase", {"amount": HUGE, "currency": "EUR"}, "amount"),
    ("purchase", {"amount": 10**400, "currency": "EUR"}, "amount"),
    ("purchase", {"amount": "sNaN", "currency": "EUR"}, "amount"),
    pytest.param("purchase", {"amount": "1e999999999", "currency": "EUR"}, "amount"),
    ("purchase", {"purchased_at": "9999-12-31T23:59:59-14:00"}, "purchased_at"),
    pytest.param("purchase", {"purchased_at": "0001-01-01T00:00:00+14:00"}, "purchased_at"),
    ("event", {"occurred_at": "0001-01-01T00:00:00+23:59"}, "occurred_at"),
])  # fmt: skip
def test_a_number_out_of_range_fails_only_its_batch_item(acme, api, acme_purchase, kind, changes, field):
    data = _with(BASES[f"{kind}s/"], changes)
    fine = {"kind": "customer", "data": {"external_id": "C-kept", "name": "Kept"}}
    response = api.post("batch/", body=dumps_with_literals({"items": [{"kind": kind, "data": data}, fine]}))
    assert response.status_code == 200, response.content[:2000]
    failed, kept = response.json()["results"]
    assert failed["status"] == 400 and field in failed["error"]["fields"], failed
    assert kept["status"] == 201
    assert api.get("engagements/").status_code == 200  # nothing unreadable was stored


CONTENT_TYPES = [
    "text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/json-patch+json", "application/octet-stream", "", "application/json; charset=utf-16",
    "application/json; charset=latin-1", "application/jsonx", "*/*", "application/json\x00",
]  # fmt: skip


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_another_content_type_is_a_4xx_on_every_write_endpoint(acme, api, write_paths, content_type):
    body = '{"external_id": "C-1", "name": "Ada"}'
    for method, path in write_paths:
        send = getattr(api.client, method)
        response = send(api.url(path), data=body, content_type=content_type, HTTP_AUTHORIZATION=api.authorization)
        if response.status_code < 300:  # JSON with parameters, or "anything", may be read as JSON; that is all
            assert content_type.startswith("application/json;") or content_type == "*/*", (content_type, path)
            continue
        assert_clear_error(response, None)


# Query parameters, path parameters and headers --------------------------------------------------------

GET_PARAMETERS = {
    "customers/": ["search", "segment", "cursor", "limit"],
    "engagements/": ["status", "offering", "owner", "sales_rep", "segment", "purchased_from", "purchased_to",
                     "cursor", "limit"],
    "metrics/summary/": ["offering", "owner", "sales_rep", "segment", "purchased_from", "purchased_to"],
    "metrics/cohorts/": ["offering", "segment", "purchased_from"],
    "metrics/funnel/": ["offering", "owner"],
    "metrics/owners/": ["offering", "sales_rep"],
    "metrics/sales-reps/": ["offering", "owner"],
    "metrics/trend/": ["days", "offering"],
    "offerings/": ["cursor", "limit"],
    "alerts/": ["state", "cursor", "limit"],
}  # fmt: skip
HOSTILE_QUERY_VALUES = {
    "invalid-utf8": "%FF%FE%80",
    "encoded-surrogate": "%ED%A0%80",
    "overlong-utf8": "%C0%AF",
    "huge": "x" * 100_000,
    "huge-integer": "9" * 5000,
    "negative": "-99999999999999999999",
    "float-overflow": "1e309",
    "markup": "%3Cscript%3Ealert(1)%3C/script%3E",
    "sql": "'%20OR%201=1--",
    "nan": "NaN",
}


@pytest.mark.parametrize("value", HOSTILE_QUERY_VALUES)
def test_hostile_query_values_are_answered_without_a_500(acme, api, acme_purchase, value):
    for path, names in GET_PARAMETERS.items():
        for name in names:
            response = api.get(f"{path}?{name}={HOSTILE_QUERY_VALUES[value]}")
            assert response.status_code < 500, (path, name, response.content[:500])
            if response.status_code >= 400:
                assert_clear_error(response, None)


def test_a_nul_in_any_query_parameter_is_a_400_naming_it(acme, api, acme_purchase):
    # tests/api/test_limits.py samples four; every parameter of every list is refused the same way.
    for path, names in GET_PARAMETERS.items():
        for name in names:
            error = assert_clear_error(api.get(f"{path}?{name}=a%00b"), 400, "invalid")
            assert list(error["fields"]) == [name], (path, error)
    error = assert_clear_error(api.get("customers/?se%00arch=x"), 400, "invalid")
    assert list(error["fields"]) == ["se\x00arch"]


def test_many_query_parameters_are_answered_without_a_500(acme, api):
    query = "&".join(f"p{i}=x" for i in range(5000))
    for path in GET_PARAMETERS:
        assert api.get(f"{path}?{query}").status_code < 500


HOSTILE_IDS = {
    "nul": "a%00b",
    "invalid-utf8": "%FF%FE",
    "encoded-surrogate": "%ED%A0%80",
    "huge": "x" * 10_000,
    "dots": "..",
    "markup": "%3Cscript%3E",
    "not-a-uuid": "123",
    "almost-a-uuid": "00000000-0000-0000-0000-00000000000g",
}
ID_ROUTES = [
    ("get", "customers/{}/"), ("get", "offerings/{}/"), ("put", "offerings/{}/"), ("get", "engagements/{}/"),
    ("patch", "engagements/{}/"), ("post", "alerts/{}/acknowledge/"), ("post", "alerts/{}/resolve/"),
]  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_hostile_ids_in_the_path_are_a_clear_4xx(acme, api, acme_purchase, value):
    for method, route in ID_ROUTES:
        path = route.format(HOSTILE_IDS[value])
        response = api.get(path) if method == "get" else getattr(api, method)(path, {"key": "x"})
        assert_clear_error(response, None)


HOSTILE_AUTHORIZATION = {
    "huge-key": "Bearer " + "x" * 100_000,
    "nul": "Bearer pov_\x00abc",
    "latin-1": "Bearer pov_\xff\xfe",
    "keyword-only": "Bearer",
    "keyword-and-space": "Bearer ",
    "lowercase": "bearer pov_abc",
    "basic": "Basic Zm9vOmJhcg==",
    "three-parts": "Bearer pov_abc extra",
    "prefix-only": "Bearer pov_",
    "markup": "Bearer <script>alert(1)</script>",
    "sql": "Bearer ' OR 1=1--",
}


@pytest.mark.parametrize("authorization", HOSTILE_AUTHORIZATION)
def test_a_hostile_authorization_header_is_a_401(acme, api, authorization):
    client = Api(authorization=HOSTILE_AUTHORIZATION[authorization])
    for response in (client.get("customers/"), client.post("customers/", {"external_id": "C-9", "name": "Ada"})):
        error = assert_clear_error(response, 401)
        assert "<script>" not in error["message"]
    with tenant_scope(acme):
        assert not Customer.objects.filter(external_id="C-9").exists()


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("k" * 255, 201),
        ("k" * 256, 400),
        ("k" * 100_000, 400),
        (" ", 400),
        ("a\x00b", 400),
        ("\xff\xfe", 201),
        ("<script>alert(1)</script>", 201),
    ],
    ids=["255", "256", "100k", "blank", "nul", "latin-1", "markup"],
)
def test_hostile_idempotency_keys_are_used_or_refused_clearly(acme, api, key, status):
    body = {"external_id": "C-9", "name": "Ada"}
    first = api.post("customers/", body, headers={"Idempotency-Key": key})
    if status == 400:
        error = assert_clear_error(first, 400, "invalid")
        assert list(error["fields"]) == ["Idempotency-Key"], error
        with tenant_scope(acme):
            assert not Customer.objects.exists()
        return
    assert first.status_code == 201, first.content[:2000]
    replay = api.post("customers/", body, headers={"Idempotency-Key": key})
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (201, "true")


# Web pages: hostile query strings and form posts -------------------------------------------------------


@pytest.fixture
def world(tenant, actor):
    """acme with a member of every role, a stalled engagement with an open alert, and an API key."""
    return build_world(tenant, actor)


PAGES = ["", "engagements/", "engagements/export.csv", "alerts/", "team/", "journeys/", "settings/",
         "settings/webhooks/", "digest/", "settings/digests/"]  # fmt: skip
PAGE_PARAMETERS = ["q", "status", "offering", "owner", "sales_rep", "segment", "purchased_from", "purchased_to",
                   "sort", "page", "state", "mine", "member"]  # fmt: skip
HOSTILE_PAGE_VALUES = {
    "invalid-utf8": "%FF%FE%80",
    "encoded-surrogate": "%ED%A0%80",
    "nul": "a%00b",
    "huge": "x" * 50_000,
    "huge-integer": "9" * 5000,
    "markup": "%3Cscript%3Ealert(1)%3C/script%3E",
}


@pytest.mark.parametrize("value", list(HOSTILE_PAGE_VALUES))
def test_hostile_query_strings_on_pages_are_never_a_500(world, login, value):
    client, failures = web_client(login, world), []
    for page in PAGES:
        for name in PAGE_PARAMETERS:
            response = client.get(world.path(f"{page}?{name}={HOSTILE_PAGE_VALUES[value]}"))
            try:
                body = b"".join(response.streaming_content) if response.streaming else response.content
            except Exception:  # noqa: BLE001 - a CSV that breaks while streaming is a broken download
                failures.append((page, name, "error while streaming"))
                continue
            if response.status_code not in (200, 400, 404) or b"<script>alert(1)" in body:
                failures.append((page, name, response.status_code))
    assert not failures, "\n".join(map(str, failures))


def web_client(login, world):
    """The admin's client, answering a server error with its 500 page instead of raising it."""
    client = login(world.members["admin"])
    client.raise_request_exception = False
    return client


def web_forms(world):
    """(path, base form data, the fields a user types into) of every form under /t/<slug>/."""
    engagement = f"engagements/{world.engagement.id}/"
    return [
        (engagement + "note/", {"body": "Called"}, ["body"]),
        (engagement + "milestone/", {"milestone": "m1", "occurred_at": "", "comment": "ok"},
         ["milestone", "occurred_at", "comment"]),
        (engagement + "satisfaction/", {"score": "5", "comment": "ok"}, ["score", "comment"]),
        (engagement + "lost/", {"reason": "budget", "comment": ""}, ["reason", "comment"]),
        (engagement + "reassign/", {"owner": "teammate@acme.test", "note": "over to you"}, ["owner", "note"]),
        ("journeys/new/", {"key": "fresh", "name": "Fresh", "m_key": "a", "m_name": "A", "m_due": "3",
                           "satisfaction_threshold": "4"},
         ["key", "name", "m_key", "m_name", "m_due", "satisfaction_threshold"]),
        ("settings/members/invite/", {"email": "new@acme.test", "role": "viewer"}, ["email", "role"]),
        (f"settings/members/{world.teammate.id}/role/", {"role": "sales"}, ["role"]),
        ("settings/keys/create/", {"name": "CRM 2", "scope": "read"}, ["name", "scope"]),
        ("settings/company/", {"name": "Acme", "time_zone": "Europe/Berlin", "grace_days": "3",
                               "escalation_days": "7"}, ["name", "time_zone", "grace_days", "escalation_days"]),
        ("settings/webhooks/new/", {"url": "https://example.com/hook", "events": "alert.opened"}, ["url", "events"]),
        (f"alerts/{world.alert.id}/assign/", {"assignee": "", "next": ""}, ["assignee", "next"]),
        ("digest/", {"frequency": "weekly"}, ["frequency"]),
    ]  # fmt: skip


# Longer than any column these forms write to (the longest, a note, holds 10,000 characters).
OVERLONG = "y" * 10_001
HOSTILE_FORM_VALUES = {"nul": "a\x00b", "overlong": OVERLONG, "markup": "<script>alert(1)</script>"}


@pytest.mark.parametrize("value", list(HOSTILE_FORM_VALUES))
def test_hostile_form_values_are_a_form_error_or_stored_never_a_500(world, login, value):
    client, failures = web_client(login, world), []
    for path, base, fields in web_forms(world):
        for field in fields:
            response = client.post(world.path(path), {**base, field: HOSTILE_FORM_VALUES[value]})
            if response.status_code not in (200, 302, 400) or b"<script>alert(1)" in response.content:
                failures.append((path, field, response.status_code))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.parametrize(
    "raw",
    [b"body=%FF%FE", b"body=\xff\xfe", b"%FF=1&body=x", b"body=" + b"%00" * 10],
)
def test_undecodable_form_bodies_are_never_a_500(world, login, raw):
    client, failures = web_client(login, world), []
    for path, _, _ in web_forms(world):
        response = client.post(world.path(path), data=raw, content_type="application/x-www-form-urlencoded")
        if response.status_code not in (200, 302, 400):
            failures.append((path, response.status_code))
    assert not failures, "\n".join(map(str, failures))


def test_the_sign_in_form_refuses_hostile_values_with_a_form_error(world, client):
    for value in ("a\x00b@acme.test", "x" * 10_000 + "@acme.test", "<script>alert(1)</script>"):
        response = client.post("/accounts/login/", {"username": value, "password": value})
        assert response.status_code == 200 and b"<script>alert(1)" not in response.content
        assert "_auth_user_id" not in client.session


# Markup in every text field, on every page and email that shows it ------------------------------------

PAYLOAD = """<script>alert(1)</script>"'><img src=x onerror=alert(1)>"""
# Raw fragments that must never reach a page: each would run or break out of an attribute.
LIVE_MARKUP = ("<script>alert(1)", "<img src=x", "'><img", "\"'><")
ESCAPED = escape("<script>alert(1)</script>")
QUOTED_EMAIL = "x'&y@example.com"  # a valid address whose local part holds characters HTML must escape


@pytest.fixture
def marked_up(world, actor):
    """Every free-text field a user or an API client sets holds PAYLOAD: the company's name, a member's
    names, a customer (name, external id, segment, email), a purchase id, an offering and its milestones,
    a note, event comments and reasons, an API key (which labels what it records), a webhook URL;
    then the stalled scan (an alert) and the rollups (overview, team)."""
    tenant = world.tenant
    Tenant.objects.filter(pk=tenant.pk).update(name=PAYLOAD)
    tenant.refresh_from_db()
    owner = world.members["owner"]
    type(owner.user).objects.filter(pk=owner.user.pk).update(first_name=PAYLOAD, last_name=PAYLOAD)
    with tenant_scope(tenant):
        offering, _ = offering_save(
            tenant=tenant,
            key="xss",
            name=PAYLOAD,
            actor=actor,
            milestones=[
                {"key": "first", "name": PAYLOAD + " 1", "due_day": 2},
                {"key": "last", "name": PAYLOAD, "due_day": 9},
            ],
        )
        customer, _ = customer_upsert(
            tenant=tenant, external_id=PAYLOAD, name=PAYLOAD, segment=PAYLOAD, email=QUOTED_EMAIL, actor=actor
        )
        purchase, _ = purchase_record(
            tenant=tenant,
            external_id=PAYLOAD + "-p",
            customer=customer,
            offering=offering,
            purchased_at=timezone.now() - timedelta(days=20),
            actor=actor,
            owner=owner,
            sales_rep=world.members["sales"],
        )
        key, _ = api_key_create(tenant=tenant, name=PAYLOAD, scope="write", actor=actor)
        engagement = purchase.engagement
        event_record(
            tenant=tenant,
            engagement=engagement,
            type="milestone",
            milestone="first",
            comment=PAYLOAD,
            occurred_at=timezone.now() - timedelta(days=19),
            actor=Actor.for_api_key(key),
        )
        event_record(
            tenant=tenant,
            engagement=world.engagement,
            type="lost",
            reason=PAYLOAD,
            comment=PAYLOAD,
            occurred_at=timezone.now() - timedelta(days=1),
            actor=actor,
        )
        note_add(tenant=tenant, engagement=engagement, body=PAYLOAD, actor=Actor.for_member(owner))
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant, url="https://example.com/h?x=" + PAYLOAD, events=["alert.opened"], secret="whsec_test"
        )
        stalled_scan(tenant)
        recompute_rollups(tenant)
    return {"engagement": engagement, "offering": offering, "endpoint": endpoint, "owner": owner}  # fmt: skip


def assert_escaped(content, where):
    text = content.decode() if isinstance(content, bytes) else content
    for fragment in LIVE_MARKUP:
        assert fragment not in text, (where, fragment, text[max(0, text.find(fragment) - 300) :][:600])
    assert ESCAPED in text, (where, "the payload is not shown at all")


def test_every_page_shows_typed_markup_escaped(world, login, marked_up):
    engagement, endpoint, owner = marked_up["engagement"], marked_up["endpoint"], marked_up["owner"]
    pages = ["", "?segment=" + PAYLOAD, "engagements/", f"engagements/?q={PAYLOAD}", f"engagements/{engagement.id}/",
             "alerts/", "team/", "journeys/", "journeys/xss/", "settings/", "settings/webhooks/",
             f"settings/webhooks/{endpoint.id}/", f"settings/webhooks/{endpoint.id}/delete/", "digest/",
             f"settings/digests/?member={owner.id}"]  # fmt: skip
    client = login(world.members["admin"])
    for page in pages:
        response = client.get(world.path(page))
        assert response.status_code == 200, (page, response.status_code)
        assert_escaped(response.content, page)


def test_a_failed_form_shows_the_typed_markup_escaped(world, login, marked_up):
    client = login(world.members["admin"])
    engagement = marked_up["engagement"]
    failed = [
        client.post(world.path(f"engagements/{engagement.id}/milestone/"), {"milestone": PAYLOAD}),
        client.post(world.path(f"engagements/{engagement.id}/reassign/"), {"owner": PAYLOAD}),
        client.post(world.path("journeys/new/"), {"key": PAYLOAD, "name": PAYLOAD, "m_key": PAYLOAD}),
        client.post(world.path("settings/members/invite/"), {"email": PAYLOAD, "role": "viewer"}),
        client.post(world.path("settings/company/"), {"name": "Acme", "time_zone": PAYLOAD, "grace_days": "3",
                                                      "escalation_days": "7"}),
        client.post(world.path("settings/webhooks/new/"), {"url": PAYLOAD, "events": PAYLOAD}),
    ]  # fmt: skip
    for response in failed:
        assert response.status_code in (200, 400), response.status_code
        assert_escaped(response.content, response.request["PATH_INFO"])


def test_emails_show_typed_markup_escaped(world, marked_up):
    tenant, owner = world.tenant, marked_up["owner"]
    with tenant_scope(tenant):
        digest = digest_message(digest_for(tenant, owner, "daily"))
        confirmation = ValueConfirmation.objects.create(
            tenant=tenant, engagement=marked_up["engagement"], email=QUOTED_EMAIL, claimed_at=timezone.now()
        )
        asked = confirmation_email(tenant, confirmation)
    for name, message in (("digest", digest), ("confirmation", asked)):
        ((html, _),) = message.alternatives
        assert_escaped(html, name)


def test_the_value_confirmation_page_shows_typed_markup_escaped(world, marked_up, client):
    with tenant_scope(world.tenant):
        confirmation = ValueConfirmation.objects.create(
            tenant=world.tenant, engagement=marked_up["engagement"], email=QUOTED_EMAIL, claimed_at=timezone.now()
        )
        url = answer_url(confirmation, 5)
    response = client.get(url.split("://", 1)[-1].split("/", 1)[-1].join(["/", ""]))
    assert response.status_code == 200
    assert_escaped(response.content, "value confirmation")


# The CSV export: no cell a spreadsheet would run as a formula ------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_the_csv_export_neutralises_formulas_in_every_text_column(world, login, actor):
    tenant, typed = world.tenant, []
    with tenant_scope(tenant):
        for i, start in enumerate(FORMULA_STARTS):
            formula = f'{start}HYPERLINK("https://evil.example/?{i}","x")'
            rep = member_add(tenant=tenant, email=f"{'=+-'[i % 3]}rep{i}@acme.test", role="sales")[0]
            customer, _ = customer_upsert(
                tenant=tenant, external_id=formula + "c", name=formula, segment=formula, actor=actor
            )
            purchase_record(
                tenant=tenant,
                external_id=formula + "p",
                customer=customer,
                offering=world.offering,
                purchased_at=timezone.now() - timedelta(days=3),
                actor=actor,
                owner=rep,
                sales_rep=rep,
            )
            typed += [formula, formula + "c", formula + "p", rep.user.email]
    client = login(world.members["admin"])
    response = client.get(world.path("engagements/export.csv"))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))

    cells = [cell for row in rows[1:] for cell in row]
    assert [cell for cell in cells if cell.startswith(FORMULA_STARTS)] == []
    for value in typed:  # each is there, quoted, and otherwise as typed
        assert "'" + value in cells, value


@pytest.mark.parametrize("moment", ["0001-01-01T00:00", "9999-12-31T23:59", "10000-01-01T00:00", "2026-13-01T00:00"])
def test_a_time_out_of_range_on_the_milestone_form_is_a_form_error(world, login, moment):
    # Year 1 at midnight in Berlin (local mean time, +00:53) is year 0 in UTC: it cannot be compared or stored.
    client = login(world.members["owner"])
    response = client.post(world.path(f"engagements/{world.engagement.id}/milestone/"),
                           {"milestone": "m1", "occurred_at": moment})  # fmt: skip
    assert response.status_code == 400
    assert "occurred_at" in response.content.decode() or "out of range" in response.content.decode()
    with tenant_scope(world.tenant):
        assert not Event.objects.filter(engagement=world.engagement).exists()
