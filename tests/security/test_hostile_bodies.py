"""Malformed request bodies on every write endpoint of the API.

Truncated or not-quite JSON, nesting deep enough to exhaust a recursive parser, bytes that are not UTF-8,
bodies over one MiB, numbers and times out of range (alone and as batch items) and content types other
than JSON: each gets a clear 4xx in the API's JSON error format, never a 500, and nothing is stored.
"""

# The API fixtures are imported by name, so pytest finds them here; F811 flags each use.
# ruff: noqa: F811

import json

import pytest

from engagement.models import Customer, Event, Note, Offering, Purchase
from metrics.alerts import stalled_scan
from metrics.models import Alert
from tenants.scoping import tenant_scope
from tests.api.conftest import (  # noqa: F401 - fixtures of the API tests, used by name below
    JOURNEY,
    acme,
    acme_purchase,
    acme_write_key,
    ago,
    api,
    iso,
    software,
)
from tests.security.conftest import assert_clear_error

MIB = 1024 * 1024


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
