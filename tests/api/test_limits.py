"""Size limits (413), throttling (429 with Retry-After), strict JSON (400) and unknown paths (404 JSON)."""

import json
from types import SimpleNamespace

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings

from engagement.models import Customer
from tenants import api_base
from tenants.models import ApiKey
from tests.api.conftest import Api, count, error_of

MIB = 1024 * 1024


def _big_customer(size):
    body = json.dumps({"external_id": "C-1", "name": "Ada", "attributes": {"blob": ""}})
    return body.replace('"blob": ""', '"blob": "' + "x" * (size - len(body)) + '"')


# 413 -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["customers/", "purchases/", "events/", "offerings/", "batch/"])
def test_body_over_one_mib_is_413(acme, api, path):
    body = _big_customer(MIB + 1)
    assert len(body) == MIB + 1
    error = error_of(api.post(path, body=body), 413, "too_large")
    assert error["message"] == "The body is larger than 1 MiB."
    assert count(acme, Customer) == 0


def test_body_over_one_mib_with_an_idempotency_key_is_413(acme, api):
    error_of(api.post("customers/", body=_big_customer(MIB + 1), headers={"Idempotency-Key": "big"}), 413, "too_large")
    assert count(acme, Customer) == 0


def test_put_over_one_mib_is_413(api):
    error_of(api.put("offerings/software/", body=_big_customer(MIB + 1)), 413, "too_large")


def test_body_just_under_one_mib_is_read(api):
    # Under the limit the body is parsed: this one fails validation (400), not the size check.
    error = error_of(api.post("customers/", body=_big_customer(MIB - 16)), 400, "invalid")
    assert set(error["fields"]) == {"attributes"}


def _items(n):
    return [{"kind": "customer", "data": {"external_id": f"C-{i}", "name": f"N{i}"}} for i in range(n)]


def test_batch_of_1001_items_is_413(acme, api):
    error = error_of(api.post("batch/", {"items": _items(1001)}), 413, "too_large")
    assert error["message"] == "A batch holds at most 1000 items; split it."
    assert count(acme, Customer) == 0


def test_batch_of_1000_items_is_accepted(acme, api):
    response = api.post("batch/", {"items": _items(1000)})
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [201] * 1000
    assert count(acme, Customer) == 1000


# 429 -------------------------------------------------------------------------------------------------

WINDOW = 60
FROZEN = 1_800_000_000 + 15  # 15 s into a 60 s window


def _forget_buckets():
    """Empty the buckets of every key at the frozen instant. Only these keys: on Redis the cache shares its
    database with the Celery broker, so cache.clear() (FLUSHDB) would drop queued tasks of other runs."""
    bucket = int(FROZEN // WINDOW)
    keys = [f"throttle:{k.tenant_id}:key:{k.pk}:{b}" for k in ApiKey.unscoped.all() for b in (bucket, bucket + 1)]
    cache.delete_many(keys)


@pytest.fixture
def three_a_minute(monkeypatch, acme_write_key, acme_read_key, charlie_api):
    """API_RATE_LIMIT = 3 a minute, at a frozen instant 15 s into a window, with empty buckets."""
    monkeypatch.setattr(api_base, "time", SimpleNamespace(time=lambda: FROZEN))
    with override_settings(API_RATE_LIMIT=(3, WINDOW)):
        _forget_buckets()
        yield
        _forget_buckets()


def test_the_fourth_request_in_a_window_is_429_with_retry_after(acme, api, three_a_minute):
    assert [api.get("customers/").status_code for _ in range(3)] == [200, 200, 200]
    response = api.get("customers/")
    error = error_of(response, 429, "throttled")
    assert response["Retry-After"] == "45"
    assert "45 seconds" in error["message"]
    # Writes count against the same bucket and are refused too.
    error_of(api.post("customers/", {"external_id": "C-1", "name": "Ada"}), 429, "throttled")
    assert count(acme, Customer) == 0


def test_another_key_is_not_throttled(acme, api, api_read, charlie_api, three_a_minute):
    for _ in range(3):
        api.get("customers/")
    error_of(api.get("customers/"), 429, "throttled")
    # The same tenant's other key and another tenant's key have their own buckets.
    assert [api_read.get("customers/").status_code for _ in range(3)] == [200, 200, 200]
    assert [charlie_api.get("customers/").status_code for _ in range(3)] == [200, 200, 200]
    error_of(api_read.get("customers/"), 429, "throttled")


def test_the_next_window_starts_afresh(api, three_a_minute, monkeypatch):
    for _ in range(4):
        api.get("customers/")
    monkeypatch.setattr(api_base, "time", SimpleNamespace(time=lambda: FROZEN + 45))
    assert api.get("customers/").status_code == 200


def test_a_window_counts_in_the_cache_and_expires_after_it(acme, api, acme_write_key, three_a_minute):
    for _ in range(2):
        api.get("customers/")
    key = f"throttle:{acme.pk}:key:{acme_write_key[0].pk}:{int(FROZEN // WINDOW)}"
    assert cache.get(key) == 2
    if settings.REDIS_URL:  # the window's key goes away with it
        client = redis.Redis.from_url(settings.REDIS_URL)
        assert 0 < client.ttl(cache.make_and_validate_key(key)) <= WINDOW + 5


def test_requests_without_a_key_are_401_not_throttled(db, three_a_minute):
    assert [Api().get("customers/").status_code for _ in range(5)] == [401] * 5


# Strict JSON (400) -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "The body is not valid JSON"),
        ('["a", "list"]', "The body must be a JSON object."),
        ('{"external_id": "C-1", "name": NaN}', "The body is not valid JSON: NaN is not valid JSON"),
        ('{"external_id": "C-1", "name": Infinity}', "The body is not valid JSON: Infinity is not valid JSON"),
        ('{"external_id": "C-1", "name": "A\x00"}', "The body contains a NUL character."),
        ('{"a": ' * 40 + "1" + "}" * 40, "The body is nested deeper than 32 levels."),
    ],
)
def test_malformed_json_is_400(acme, api, body, message):
    error = error_of(api.post("customers/", body=body), 400, "parse_error")
    assert error["message"].startswith(message), error
    assert count(acme, Customer) == 0


def test_escaped_nul_in_a_string_is_400_naming_the_field(acme, api):
    error = error_of(api.post("customers/", body='{"external_id": "C-1", "name": "A\\u0000"}'), 400, "invalid")
    assert set(error["fields"]) == {"name"}
    assert count(acme, Customer) == 0


@pytest.mark.parametrize(
    "path",
    ["engagements/?sales_rep=a%00b", "customers/?search=%00", "metrics/summary/?owner=x%00", "alerts/?state=%00"],
)
def test_a_nul_in_a_query_parameter_is_400_naming_it(acme, api, path):
    error = error_of(api.get(path), 400, "invalid")
    assert list(error["fields"]) == [path.split("?")[1].split("=")[0]]


def test_invalid_utf8_is_400(api):
    error = error_of(api.post("customers/", body=b'{"name": "\xff"}'), 400, "parse_error")
    assert "UTF-8" in error["message"]


def test_another_content_type_is_415_in_the_json_error_format(api):
    response = api.client.post(
        api.url("customers/"), data="external_id=C-1&name=Ada", content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=api.authorization,
    )  # fmt: skip
    error_of(response, 415, "unsupported_media_type")


# Unknown paths (404 JSON) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/whatever", "/api/v1/whatever/", "/api/v2/customers/", "/api/", "/api/v1/customers/C-1/extra/"]
)
def test_unknown_api_path_is_404_json(db, api, path):
    for client in (api, Api()):
        error = error_of(client.get(path), 404, "not_found")
        assert error == {"code": "not_found", "message": "No such endpoint or object.", "fields": {}}
    error_of(api.post(path, {}), 404, "not_found")


# Guessing keys ---------------------------------------------------------------------------------------


@pytest.fixture
def three_bad_keys_a_minute(monkeypatch):
    """API_BAD_KEY_LIMIT = 3 a minute at the frozen instant, with this address's bucket empty."""
    monkeypatch.setattr(api_base, "time", SimpleNamespace(time=lambda: FROZEN))
    bucket = f"badkey:127.0.0.1:{int(FROZEN // WINDOW)}"
    with override_settings(API_BAD_KEY_LIMIT=(3, WINDOW)):
        cache.delete(bucket)
        yield
        cache.delete(bucket)


def test_an_address_guessing_keys_is_throttled_before_any_lookup(acme, api, three_bad_keys_a_minute, monkeypatch):
    guesser = Api("pov_guess_0000000000000000")
    assert [guesser.get("customers/").status_code for _ in range(3)] == [401, 401, 401]
    looked_up = []
    monkeypatch.setattr(api_base, "api_key_lookup", lambda raw: looked_up.append(raw))
    response = guesser.get("customers/")
    error_of(response, 429, "throttled")
    assert response["Retry-After"] == "45"
    assert looked_up == [], "a throttled guess still reached the database"


def test_a_valid_key_from_elsewhere_is_not_held_back(acme, api, three_bad_keys_a_minute):
    guesser = Api("pov_guess_0000000000000000")
    for _ in range(3):
        guesser.get("customers/")
    other = Api(api.raw_key)
    other.client.defaults["REMOTE_ADDR"] = "198.51.100.7"
    assert other.get("customers/").status_code == 200
