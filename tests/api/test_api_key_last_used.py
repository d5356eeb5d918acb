"""An API key's last use is recorded at most once a minute: a busy integration's requests do not each
write to the key's row, yet the time shown stays within a minute of the truth."""

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants.models import ApiKey
from tenants.scoping import tenant_scope


def _last_used(tenant, key):
    with tenant_scope(tenant):
        return ApiKey.objects.get(pk=key.pk).last_used_at


def _key_writes(captured):
    return [q["sql"] for q in captured if q["sql"].startswith("UPDATE") and "apikey" in q["sql"]]


def test_the_first_use_is_recorded_then_not_again_within_a_minute(acme, api, acme_write_key):
    key = acme_write_key[0]
    assert _last_used(acme, key) is None
    assert api.get("customers/").status_code == 200
    first = _last_used(acme, key)
    assert first is not None
    with CaptureQueriesContext(connection) as captured:
        assert api.get("customers/").status_code == 200
    assert _key_writes(captured) == []
    assert _last_used(acme, key) == first


def test_a_use_more_than_a_minute_after_the_last_is_recorded(acme, api, acme_write_key):
    key = acme_write_key[0]
    assert api.get("customers/").status_code == 200
    long_ago = _last_used(acme, key) - timedelta(minutes=2)
    with tenant_scope(acme):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=long_ago)
    with CaptureQueriesContext(connection) as captured:
        assert api.get("customers/").status_code == 200
    assert len(_key_writes(captured)) == 1
    assert _last_used(acme, key) > long_ago + timedelta(minutes=1)
