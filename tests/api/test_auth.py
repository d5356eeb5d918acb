"""Authentication (401) and scopes (403) on every endpoint."""

import pytest

from engagement.models import Customer, Engagement, Event, Note, Offering, Purchase
from tenants.api_keys import api_key_revoke
from tenants.scoping import tenant_scope
from tests.api.conftest import JOURNEY, Api, ago, count, error_of, iso

ENGAGEMENT_ID = "00000000-0000-4000-8000-000000000000"
# Every endpoint of this suite's scope (metrics and alerts are tested with their apps).
ENDPOINTS = [
    ("get", "customers/"),
    ("post", "customers/"),
    ("get", "customers/C-1/"),
    ("get", "offerings/"),
    ("post", "offerings/"),
    ("get", "offerings/software/"),
    ("put", "offerings/software/"),
    ("post", "purchases/"),
    ("post", "events/"),
    ("post", "batch/"),
    ("get", "engagements/"),
    ("get", f"engagements/{ENGAGEMENT_ID}/"),
    ("patch", f"engagements/{ENGAGEMENT_ID}/"),
]


def _call(client, method, path):
    if method == "get":
        return client.get(path)
    return getattr(client, method)(path, {})


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_key_is_401_with_a_bearer_challenge(db, method, path):
    response = _call(Api(), method, path)
    error = error_of(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert error["fields"] == {}


@pytest.mark.parametrize(
    "authorization",
    ["Token abc", "Bearer", "Bearer    ", "bearer pov_abcdefgh_xyz", "Basic dXNlcjpwYXNz", "pov_abcdefgh_xyz"],
)
def test_malformed_authorization_header_is_401(db, authorization):
    error = error_of(Api(authorization=authorization).get("customers/"), 401, "authentication_failed")
    assert error["message"] == "Use 'Authorization: Bearer <api key>'."


@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_key_is_401(acme_write_key, method):
    key, raw = acme_write_key
    wrong_secret = f"pov_{key.prefix}_{'x' * 32}"
    for candidate in (wrong_secret, "pov_00000000_" + "y" * 32, "not-a-key", raw + "x"):
        response = _call(Api(candidate), method, "customers/")
        error = error_of(response, 401, "authentication_failed")
        assert error["message"] == "This API key is not valid or has been revoked."


def test_revoked_key_is_401_and_was_200_before(acme, acme_write_key, actor):
    key, raw = acme_write_key
    client = Api(raw)
    assert client.get("customers/").status_code == 200
    with tenant_scope(acme):
        api_key_revoke(tenant=acme, key=key, actor=actor)
    error_of(client.get("customers/"), 401, "authentication_failed")
    error_of(client.post("customers/", {"external_id": "C-9", "name": "Nine"}), 401, "authentication_failed")
    assert count(acme, Customer) == 0


def test_another_keys_revocation_leaves_this_key_working(acme, acme_write_key, acme_read_key, actor):
    with tenant_scope(acme):
        api_key_revoke(tenant=acme, key=acme_read_key[0], actor=actor)
    assert Api(acme_write_key[1]).get("customers/").status_code == 200
    error_of(Api(acme_read_key[1]).get("customers/"), 401, "authentication_failed")


# 403: the read scope ----------------------------------------------------------------------------------


def _write_requests(engagement_id):
    """A valid request for every write endpoint, as (method, path, body)."""
    return [
        ("post", "customers/", {"external_id": "C-new", "name": "New"}),
        ("post", "offerings/", {"key": "training", "name": "Training", "milestones": JOURNEY}),
        ("put", "offerings/software/", {"key": "software", "name": "Renamed", "milestones": JOURNEY}),
        ("put", "offerings/new-one/", {"key": "new-one", "name": "New", "milestones": JOURNEY}),
        ("post", "purchases/", {"external_id": "P-new", "customer": "C-1", "offering": "software",
                                "purchased_at": iso(ago(2))}),
        ("post", "events/", {"type": "milestone", "purchase": "P-1", "milestone": "onboarded",
                             "occurred_at": iso(ago(1))}),
        ("post", "batch/", {"items": [{"kind": "customer", "data": {"external_id": "C-b", "name": "B"}}]}),
        ("patch", f"engagements/{engagement_id}/", {"owner": "owner@acme.test"}),
    ]  # fmt: skip


def _rows(tenant):
    return {model.__name__: count(tenant, model) for model in (Customer, Offering, Purchase, Event, Note)}


def test_read_key_is_403_on_every_write_and_writes_nothing(acme, api_read, acme_purchase, members):
    before = _rows(acme)
    for method, path, body in _write_requests(acme_purchase.engagement.id):
        error = error_of(getattr(api_read, method)(path, body), 403, "permission_denied")
        assert error["message"] == "This API key has the read scope; writing needs a key with the write scope."
    assert _rows(acme) == before
    with tenant_scope(acme):
        assert Offering.objects.get(key="software").name == "Software"
        assert Engagement.objects.get().owner is None


def test_write_key_succeeds_on_every_write_that_the_read_key_may_not(acme, api, acme_purchase, members):
    # The positive counterpart: the same requests with a write key pass.
    statuses = [
        getattr(api, method)(path, body).status_code
        for method, path, body in _write_requests(acme_purchase.engagement.id)
    ]
    assert statuses == [201, 201, 200, 201, 201, 201, 200, 200]


def test_read_key_reads_every_list_and_detail(api_read, acme_purchase):
    engagement_id = acme_purchase.engagement.id
    for path in ("customers/", "customers/C-1/", "offerings/", "offerings/software/", "engagements/",
                 f"engagements/{engagement_id}/"):  # fmt: skip
        assert api_read.get(path).status_code == 200, path


def test_read_key_is_403_even_for_an_invalid_body(api_read):
    # Scope is checked before the body: a read key learns nothing about validation.
    error_of(api_read.post("customers/", {"bogus": True}), 403, "permission_denied")
