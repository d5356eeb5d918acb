"""Fixtures for the REST API tests: keys for two tenants ("acme" and "charlie"), a JSON client per key,
and a small record built through the services."""

import json
from datetime import UTC, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from engagement.services import customer_upsert, event_record, offering_save, purchase_record
from tenants.api_keys import api_key_create
from tenants.scoping import tenant_scope
from tenants.services import member_add

API = "/api/v1/"
NOW = timezone.now()
JOURNEY = [
    {"key": "kickoff", "name": "Kickoff", "due_day": 2},
    {"key": "onboarded", "name": "Onboarded", "due_day": 7},
    {"key": "live", "name": "Live", "due_day": 14},
]
ERROR_KEYS = {"code", "message", "fields"}


def iso(value):
    """An aware datetime as ISO 8601 with its offset."""
    return value.isoformat()


def z(value):
    """How the API writes an instant: UTC with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ago(days=0, **extra):
    return NOW - timedelta(days=days, **extra)


class Api:
    """django.test.Client speaking JSON with `Authorization: Bearer <key>`."""

    def __init__(self, raw_key=None, authorization=None):
        self.raw_key = raw_key
        self.client = Client()
        if authorization is not None:
            self.authorization = authorization
        else:
            self.authorization = f"Bearer {raw_key}" if raw_key else None

    def _extra(self, headers):
        extra = {}
        if self.authorization is not None:
            extra["HTTP_AUTHORIZATION"] = self.authorization
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        return extra

    @staticmethod
    def url(path):
        return path if path.startswith(("/", "http://")) else API + path

    def get(self, path, params=None, headers=None):
        return self.client.get(self.url(path), data=params or {}, **self._extra(headers))

    def _send(self, method, path, data, headers, body):
        if body is None:
            body = json.dumps(data if data is not None else {})
        send = getattr(self.client, method)
        return send(self.url(path), data=body, content_type="application/json", **self._extra(headers))

    def post(self, path, data=None, headers=None, body=None):
        return self._send("post", path, data, headers, body)

    def put(self, path, data=None, headers=None, body=None):
        return self._send("put", path, data, headers, body)

    def patch(self, path, data=None, headers=None, body=None):
        return self._send("patch", path, data, headers, body)

    def delete(self, path, headers=None):
        return self.client.delete(self.url(path), **self._extra(headers))


def error_of(response, status, code=None):
    """The `error` object of a JSON error response, after checking the status and the format."""
    assert response.status_code == status, (response.status_code, response.content[:2000])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["fields"], dict), error
    if code is not None:
        assert error["code"] == code, error
    return error


def count(tenant, model, **lookup):
    with tenant_scope(tenant):
        return model.objects.filter(**lookup).count()


@pytest.fixture
def acme(tenant):
    return tenant


@pytest.fixture
def charlie(other_tenant):
    return other_tenant


def _key(tenant, scope, actor):
    return api_key_create(tenant=tenant, name=f"{tenant.slug}-{scope}", scope=scope, actor=actor)


@pytest.fixture
def acme_write_key(acme, actor):
    return _key(acme, "write", actor)


@pytest.fixture
def acme_read_key(acme, actor):
    return _key(acme, "read", actor)


@pytest.fixture
def api(acme_write_key):
    """acme's write key."""
    return Api(acme_write_key[1])


@pytest.fixture
def api_read(acme_read_key):
    return Api(acme_read_key[1])


@pytest.fixture
def charlie_api(charlie, actor):
    return Api(_key(charlie, "write", actor)[1])


@pytest.fixture
def charlie_read_api(charlie, actor):
    return Api(_key(charlie, "read", actor)[1])


@pytest.fixture
def members(acme, charlie):
    """Members by email: two owners and a sales rep of acme; one owner of charlie."""
    found = {}
    for tenant, email, role in (
        (acme, "owner@acme.test", "owner"),
        (acme, "second@acme.test", "owner"),
        (acme, "sales@acme.test", "sales"),
        (charlie, "owner@charlie.test", "owner"),
    ):
        found[email] = member_add(tenant=tenant, email=email, role=role)[0]
    return found


@pytest.fixture
def software(acme, actor):
    """acme's offering `software`: kickoff (day 2), onboarded (day 7), live (day 14, PoV)."""
    with tenant_scope(acme):
        return offering_save(tenant=acme, key="software", name="Software", milestones=JOURNEY, actor=actor)[0]


@pytest.fixture
def acme_purchase(acme, software, actor):
    """Purchase P-1 of customer C-1 (segment enterprise), bought 20 days ago, kickoff reached."""
    with tenant_scope(acme):
        customer = customer_upsert(tenant=acme, external_id="C-1", name="Ada", segment="enterprise", actor=actor)[0]
        purchase = purchase_record(
            tenant=acme, external_id="P-1", customer=customer, offering=software, purchased_at=ago(20), actor=actor
        )[0]
        event_record(
            tenant=acme, engagement=purchase.engagement, type="milestone", milestone="kickoff",
            occurred_at=ago(19), external_id="E-1", actor=actor,
        )  # fmt: skip
        return purchase


@pytest.fixture
def charlie_data(charlie, actor):
    """charlie's own offering, customer and purchase, with ids unlike acme's."""
    with tenant_scope(charlie):
        offering = offering_save(
            tenant=charlie, key="consulting", name="Consulting", actor=actor,
            milestones=[{"key": "workshop", "name": "Workshop", "due_day": 5}],
        )[0]  # fmt: skip
        customer = customer_upsert(tenant=charlie, external_id="CH-1", name="Charlie's client", actor=actor)[0]
        purchase = purchase_record(
            tenant=charlie, external_id="CH-P-1", customer=customer, offering=offering, purchased_at=ago(3),
            actor=actor,
        )[0]  # fmt: skip
        return purchase
