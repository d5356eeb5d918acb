"""POST /customers/ (upsert by external_id), GET /customers/ and /customers/{external_id}/."""

import pytest

from engagement.models import Customer
from tenants.scoping import tenant_scope
from tests.api.conftest import ago, count, error_of, iso

CUSTOMER_KEYS = {"external_id", "name", "email", "segment", "attributes", "created_at", "updated_at"}


def test_post_creates_201_with_the_customer(acme, api):
    response = api.post(
        "customers/",
        {"external_id": "C-1", "name": "Ada", "email": "ada@example.com", "segment": "smb", "attributes": {"tier": 2}},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == CUSTOMER_KEYS
    assert {k: body[k] for k in CUSTOMER_KEYS - {"created_at", "updated_at"}} == {
        "external_id": "C-1", "name": "Ada", "email": "ada@example.com", "segment": "smb", "attributes": {"tier": 2},
    }  # fmt: skip
    with tenant_scope(acme):
        stored = Customer.objects.get()
    assert (stored.external_id, stored.name, stored.segment, stored.attributes) == ("C-1", "Ada", "smb", {"tier": 2})


def test_optional_fields_default_to_empty(api):
    body = api.post("customers/", {"external_id": "C-1", "name": "Ada"}).json()
    assert (body["email"], body["segment"], body["attributes"]) == ("", "", {})


def test_post_again_updates_200_and_keeps_one_row(acme, api):
    assert api.post("customers/", {"external_id": "C-1", "name": "Ada", "segment": "smb"}).status_code == 201
    response = api.post("customers/", {"external_id": "C-1", "name": "Ada Lovelace", "segment": "enterprise"})
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["segment"]) == ("Ada Lovelace", "enterprise")
    assert count(acme, Customer) == 1
    with tenant_scope(acme):
        assert Customer.objects.get().name == "Ada Lovelace"


def test_post_the_same_values_again_is_200(acme, api):
    first = api.post("customers/", {"external_id": "C-1", "name": "Ada"})
    second = api.post("customers/", {"external_id": "C-1", "name": "Ada"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json()


def test_get_detail_and_404(api):
    created = api.post("customers/", {"external_id": "C-1", "name": "Ada"}).json()
    response = api.get("customers/C-1/")
    assert response.status_code == 200
    assert response.json() == created
    error = error_of(api.get("customers/C-2/"), 404, "not_found")
    assert error["message"] == "Not found."


def test_external_ids_with_spaces_and_dots_are_addressable(api):
    api.post("customers/", {"external_id": "crm 42.a", "name": "Spaced"})
    assert api.get("customers/crm%2042.a/").json()["name"] == "Spaced"


@pytest.fixture
def three_customers(api):
    for ext, name, email, segment in (
        ("C-1", "Ada Lovelace", "ada@example.com", "smb"),
        ("C-2", "Grace Hopper", "grace@navy.example", "enterprise"),
        ("C-3", "Alan Turing", "alan@example.com", "smb"),
    ):
        assert (
            api.post("customers/", {"external_id": ext, "name": name, "email": email, "segment": segment}).status_code
            == 201
        )


def _ids(response):
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"results", "next"}
    return sorted(c["external_id"] for c in body["results"])


def test_list_returns_every_customer(api, three_customers):
    response = api.get("customers/")
    assert _ids(response) == ["C-1", "C-2", "C-3"]
    assert response.json()["next"] is None
    assert all(set(c) == CUSTOMER_KEYS for c in response.json()["results"])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"segment": "smb"}, ["C-1", "C-3"]),
        ({"segment": "enterprise"}, ["C-2"]),
        ({"segment": "none-such"}, []),
        ({"search": "hopper"}, ["C-2"]),
        ({"search": "example.com"}, ["C-1", "C-3"]),
        ({"search": "C-3"}, ["C-3"]),
        ({"search": "lovelace", "segment": "enterprise"}, []),
    ],
)
def test_list_search_and_segment_narrow(api, three_customers, params, expected):
    assert _ids(api.get("customers/", params)) == expected


def test_list_pages_with_a_cursor(api, three_customers):
    first = api.get("customers/", {"limit": 2}).json()
    assert len(first["results"]) == 2
    assert first["next"].startswith("http://testserver/api/v1/customers/?cursor=")
    second = api.get(first["next"]).json()
    assert len(second["results"]) == 1
    assert second["next"] is None
    seen = [c["external_id"] for c in first["results"] + second["results"]]
    assert sorted(seen) == ["C-1", "C-2", "C-3"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "No id"}, {"external_id"}),
        ({"external_id": "C-1"}, {"name"}),
        ({"external_id": "C-1", "name": "Ada", "nickname": "A", "tier": 1}, {"nickname", "tier"}),
        ({"external_id": "C-1", "name": "Ada", "email": "not-an-email"}, {"email"}),
        ({"external_id": "C-1", "name": "Ada", "attributes": ["a"]}, {"attributes"}),
        ({"external_id": "C-1", "name": "Ada", "segment": "s" * 65}, {"segment"}),
        ({"external_id": "x" * 256, "name": "Ada"}, {"external_id"}),
        ({"external_id": "C-1", "name": ""}, {"name"}),
    ],
)
def test_invalid_customer_is_400_naming_the_fields(acme, api, body, fields):
    error = error_of(api.post("customers/", body), 400, "invalid")
    assert set(error["fields"]) == fields
    assert count(acme, Customer) == 0


def test_unknown_fields_are_named_not_dropped(api):
    error = error_of(api.post("customers/", {"external_id": "C-1", "name": "Ada", "colour": "red"}), 400, "invalid")
    assert error == {"code": "invalid", "message": "colour: Unknown field.", "fields": {"colour": ["Unknown field."]}}


@pytest.mark.parametrize("via", ["customers", "purchase"])
def test_an_upsert_without_the_optional_fields_keeps_the_stored_ones(acme, api, software, via):
    stored = {"external_id": "C-7", "name": "Ada", "email": "ada@example.com", "segment": "enterprise",
              "attributes": {"tier": 1}}  # fmt: skip
    assert api.post("customers/", stored).status_code == 201
    if via == "customers":
        assert api.post("customers/", {"external_id": "C-7", "name": "Ada L."}).status_code == 200
    else:
        body = {"external_id": "P-7", "customer": {"external_id": "C-7", "name": "Ada L."}, "offering": "software",
                "purchased_at": iso(ago(1))}  # fmt: skip
        assert api.post("purchases/", body).status_code == 201
    customer = api.get("customers/C-7/").json()
    assert {k: customer[k] for k in stored} == {**stored, "name": "Ada L."}
