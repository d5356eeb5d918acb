from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from tenants.api_keys import api_key_lookup
from tenants.models import ApiKey, Member, Tenant
from tenants.scoping import tenant_scope


def _run(*args):
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_tenant_with_a_generated_password_that_signs_in(db):
    out = _run("create_tenant", "globex", "--name", "Globex", "--admin-email", "Boss@Globex.test",
               "--time-zone", "Europe/Paris")  # fmt: skip
    tenant = Tenant.objects.get(slug="globex")
    assert (tenant.name, tenant.time_zone) == ("Globex", "Europe/Paris")
    password = out.split("password: ")[1].split()[0]
    user = authenticate(username="boss@globex.test", password=password)
    assert user is not None
    with tenant_scope(tenant):
        assert Member.unscoped.get(user=user, tenant=tenant).role == "admin"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["acme", "--name", "Again", "--admin-email", "a@b.test"], "already exists"),
        (["new-one", "--name", "N", "--admin-email", "a@b.test", "--time-zone", "Mars/Olympus"], "time zone"),
        (["new-one", "--name", "N", "--admin-email", "a@b.test", "--admin-password", "123"], "password"),
        (["Bad Slug", "--name", "N", "--admin-email", "a@b.test"], "slug"),
    ],
)
def test_create_tenant_refuses_bad_input_and_creates_nothing(tenant, args, message):
    with pytest.raises(CommandError) as exc:
        _run("create_tenant", *args)
    assert message in str(exc.value).lower()
    assert Tenant.objects.count() == 1


def test_create_api_key_prints_the_key_alone_on_the_last_line_and_stores_only_its_hash(tenant):
    out = _run("create_api_key", "--tenant", "acme", "--name", "CRM sync", "--scope", "write")
    raw = out.strip().splitlines()[-1]
    assert raw.startswith("pov_") and " " not in raw
    key = api_key_lookup(raw)
    assert (key.tenant_id, key.scope, key.name) == (tenant.pk, "write", "CRM sync")
    with tenant_scope(tenant):
        stored = ApiKey.objects.get()
    assert raw not in (stored.hashed_key, stored.prefix) and raw.split("_")[1] == stored.prefix
    assert api_key_lookup(raw[:-1] + ("x" if raw[-1] != "x" else "y")) is None


def test_create_api_key_refuses_an_unknown_tenant_or_a_duplicate_name(tenant):
    with pytest.raises(CommandError, match="No tenant"):
        _run("create_api_key", "--tenant", "nope", "--name", "k")
    _run("create_api_key", "--tenant", "acme", "--name", "k")
    with pytest.raises(CommandError, match="already has a key"):
        _run("create_api_key", "--tenant", "acme", "--name", "k")
