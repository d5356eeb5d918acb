"""Hostile query parameters, path ids and headers on the API.

Invalid UTF-8, NUL, huge and out-of-range values in every parameter of every list, hostile ids in every
route that takes one, and hostile Authorization and Idempotency-Key headers: each is answered, or refused
with a clear 4xx in the API's JSON error format, never a 500.
"""

# The API fixtures are imported by name, so pytest finds them here; F811 flags each use.
# ruff: noqa: F811

import pytest

from engagement.models import Customer
from tenants.scoping import tenant_scope
from tests.api.conftest import (  # noqa: F401 - fixtures of the API tests, used by name below
    Api,
    acme,
    acme_purchase,
    acme_write_key,
    api,
    software,
)
from tests.security.conftest import assert_clear_error

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
