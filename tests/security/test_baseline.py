"""The security baseline: `check --deploy` is clean in production, every response carries the security
headers and a Content-Security-Policy that no page needs to break (no inline script, style or event
handler), sign-in is throttled per email and address together, passwords must be strong, and every change a
person or an API key makes to engagements, journeys, members, keys and webhooks lands in the audit log,
which only the tenant's own admins read."""

import html
import json
import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.tokens import default_token_generator
from django.db.models import F
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from notify.webhooks import endpoint_create
from tenants.api_keys import api_key_create
from tenants.forms import client_ip
from tenants.models import AuditEntry, User
from tenants.scoping import tenant_scope
from tests.conftest import ROOT
from tests.factories import MemberFactory
from tests.web import conftest as dashboards

# The dashboards' fixtures: tenant "acme" (and "charlie") with a member per role, an engagement, a key;
# `login` comes from tests/conftest.py.
acme, charlie = dashboards.acme, dashboards.charlie
PASSWORD = "correct-horse-battery"  # the factories' password
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'self'; object-src 'none'"
)


def directives(header):
    """A policy as {directive: [sources]}, so the order of directives does not matter."""
    parts = (part.split() for part in header.split(";") if part.strip())
    return {name: sorted(sources) for name, *sources in parts}


# check --deploy ---------------------------------------------------------------------------------------


def production_env():
    """What a production deployment sets, and nothing inherited from this test run."""
    keep = {"PATH", "HOME", "LANG", "SYSTEMROOT"}
    env = {name: value for name, value in os.environ.items() if name in keep}
    env.update(
        DJANGO_SETTINGS_MODULE="pov.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="pov.example.com",
        SITE_URL="https://pov.example.com",
        EMAIL_URL="smtp+tls://mailer:secret@mail.example.com:587",
        DATABASE_URL="postgres://pov@db.example.com:5432/pov",
        REDIS_URL="redis://redis.example.com:6379/0",
    )
    return env


def deploy_check(**overrides):
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env={**production_env(), **overrides}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_check_deploy_is_clean_in_production():
    result = deploy_check()
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_fails_when_https_redirect_is_turned_off():
    """The check above can fail: switching the redirect off is reported."""
    result = deploy_check(SECURE_SSL_REDIRECT="0")
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


# Headers -----------------------------------------------------------------------------------------------


def test_pages_carry_the_security_headers_and_the_exact_policy(client, db):
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    assert directives(response["Content-Security-Policy"]) == directives(CSP)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] in ("same-origin", "no-referrer", "strict-origin-when-cross-origin")
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_session_and_csrf_cookies_are_secure_in_production_settings():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS >= 31536000, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=production_env(), capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"] * 7


@override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_https_redirect_spares_the_health_endpoint_and_trusts_the_proxy(db):
    client = Client()  # a new client loads the middleware with the overridden settings

    plain = client.get("/accounts/login/")
    behind_tls_proxy = client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    health = client.get("/healthz")

    assert plain.status_code == 301 and plain["Location"] == "https://testserver/accounts/login/"
    assert behind_tls_proxy.status_code == 200
    assert health.status_code in (200, 503) and "Location" not in health


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, "6.6.6.6", "10.0.0.9"),  # no proxy: the header is the client's own claim, ignored
        (1, "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # one proxy appended the real client; the rest is forged
        (2, "6.6.6.6, 1.2.3.4, 10.0.0.2", "1.2.3.4"),
        (2, "1.2.3.4", "10.0.0.9"),  # fewer entries than proxies: misconfigured, fall back to the peer
    ],
)
def test_the_throttle_reads_the_client_address_the_trusted_proxies_saw(proxies, forwarded_for, expected):
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR=forwarded_for)
    with override_settings(TRUSTED_PROXY_COUNT=proxies):
        assert client_ip(request) == expected


# No inline code on any page ------------------------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"\sstyle\s*=", re.IGNORECASE)
STYLE_ELEMENT = re.compile(r"<style\b", re.IGNORECASE)


def inline_code(body):
    """Whatever a policy without 'unsafe-inline' would block: each kind, with its first match."""
    found = {}
    for name, pattern in (("script", INLINE_SCRIPT), ("event handler", EVENT_HANDLER),
                          ("style attribute", STYLE_ATTRIBUTE), ("style element", STYLE_ELEMENT)):  # fmt: skip
        match = pattern.search(body)
        if match:
            found[name] = body[max(0, match.start() - 60) : match.end() + 60]
    return found


def test_the_inline_code_check_catches_each_kind():
    assert inline_code('<script src="/static/a.js"></script><script type="application/json">{}</script>') == {}
    page = '<script>x()</script><a onclick="x()"></a><p style="color:red"></p><style>p{}</style>'
    assert set(inline_code(page)) == {"script", "event handler", "style attribute", "style element"}


def tenant_pages(world):
    """Every page under /t/<slug>/ an admin can open, with the objects of the world."""
    e, o = world.engagement.id, world.offering.key
    return [
        "", "?offering=" + o, "engagements/", f"engagements/{e}/", "alerts/", "team/", "journeys/",
        "journeys/new/", f"journeys/{o}/", "settings/", "settings/digests/", "settings/webhooks/", "digest/",
    ]  # fmt: skip


def test_no_page_has_inline_scripts_styles_or_event_handlers(acme, login, client, actor):
    with tenant_scope(acme.tenant):
        endpoint, _ = endpoint_create(tenant=acme.tenant, url="http://127.0.0.1:9/hook",
                                      events=["engagement.reached_pov"], actor=actor)  # fmt: skip
    anonymous = {path: Client().get(path) for path in ("/accounts/login/", "/api/docs/")}
    login(acme.members["admin"])
    pages = {path: client.get(acme.path(path)) for path in tenant_pages(acme)}
    pages[f"webhook {endpoint.id}"] = client.get(acme.path(f"settings/webhooks/{endpoint.id}/"))

    for path, response in {**anonymous, **pages}.items():
        assert response.status_code == 200, path
        assert "Content-Security-Policy" in response, path
        assert inline_code(response.content.decode()) == {}, path
    assert len(pages) == len(tenant_pages(acme)) + 1


def test_swagger_ui_loads_its_start_up_script_as_a_file(client, db):
    page = client.get("/api/docs/")
    script_url = re.search(r'<script src="([^"]*script=[^"]*)"', page.content.decode()).group(1)
    script = client.get(html.unescape(script_url))

    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode() and "/api/schema/" in script.content.decode()


def test_the_admin_runs_without_inline_code(client, db, tenant):
    staff = User.objects.create_superuser(email="root@acme.test", password=PASSWORD)
    client.force_login(staff)
    member = MemberFactory(tenant=tenant, user__email="someone@acme.test")

    for path in ("/admin/", "/admin/tenants/member/", f"/admin/tenants/member/{member.pk}/change/",
                 "/admin/tenants/tenant/add/"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 200, path
        assert inline_code(response.content.decode()) == {}, path
    assert inline_code(Client().get("/admin/login/").content.decode()) == {}


# Sign-in throttling --------------------------------------------------------------------------------------


def sign_in(email, password, address, path="/accounts/login/"):
    """A fresh browser at `address` posting the sign-in form."""
    return Client(REMOTE_ADDR=address).post(path, {"username": email, "password": password})


def person(tenant, email):
    """A member whose stored password is PASSWORD (the factory does not save the one it sets)."""
    user = MemberFactory(tenant=tenant, user__email=email).user
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


@pytest.fixture
def two_people(tenant):
    return person(tenant, "x@acme.test"), person(tenant, "y@acme.test")


def test_five_failures_lock_out_that_email_from_that_address_only(two_people):
    x, y = two_people
    failures = [sign_in(x.email, "not-the-password", "10.0.0.1") for _ in range(5)]
    # The first four show the form again; the fifth failure already answers with the lockout page.
    assert [failed.status_code for failed in failures] == [200, 200, 200, 200, 429]

    refused = sign_in(x.email, PASSWORD, "10.0.0.1")
    refused_other_case = sign_in(x.email.upper(), PASSWORD, "10.0.0.1")

    assert refused.status_code == 429 and "_auth_user_id" not in refused.client.session
    assert "Sign-in paused" in refused.content.decode() and "15 minutes" in refused.content.decode()
    assert "tenants/locked_out.html" in [template.name for template in refused.templates]
    assert refused_other_case.status_code == 429
    assert sign_in(x.email, PASSWORD, "10.0.0.2").status_code == 302  # X from another address
    assert sign_in(y.email, PASSWORD, "10.0.0.1").status_code == 302  # another person from that address


def test_the_lockout_ends_after_the_cool_off(two_people):
    x, _ = two_people
    for _ in range(5):
        sign_in(x.email, "not-the-password", "10.0.0.1")
    assert sign_in(x.email, PASSWORD, "10.0.0.1").status_code == 429
    # Sixteen minutes pass.
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=16))

    assert sign_in(x.email, PASSWORD, "10.0.0.1").status_code == 302


def test_a_successful_sign_in_resets_the_count(two_people):
    x, _ = two_people
    for _ in range(4):
        sign_in(x.email, "not-the-password", "10.0.0.1")
    assert sign_in(x.email, PASSWORD, "10.0.0.1").status_code == 302
    for _ in range(4):
        sign_in(x.email, "not-the-password", "10.0.0.1")

    assert sign_in(x.email, PASSWORD, "10.0.0.1").status_code == 302


def test_the_admin_sign_in_is_throttled_too(db):
    staff = User.objects.create_superuser(email="root@acme.test", password=PASSWORD)
    for _ in range(5):
        sign_in(staff.email, "not-the-password", "10.0.0.1", path="/admin/login/")

    assert sign_in(staff.email, PASSWORD, "10.0.0.1", path="/admin/login/").status_code == 429
    assert sign_in(staff.email, PASSWORD, "10.0.0.1").status_code == 429  # one count for both forms


# Passwords -----------------------------------------------------------------------------------------------


def set_password(user, password):
    """Follow an invitation link and choose `password` on the page it leads to."""
    client = Client()
    user = User.objects.get(pk=user.pk)  # the token covers the stored password hash
    uid, token = urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)
    form = client.get(f"/accounts/password/{uid}/{token}/", follow=True)
    assert "Choose your password" in form.content.decode()
    return client.post(form.redirect_chain[-1][0], {"new_password1": password, "new_password2": password})


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("password1234", "This password is too common."),
        ("Xq7#vL2p", "This password is too short. It must contain at least 12 characters."),
        ("830219574612", "This password is entirely numeric."),
        ("invitee.person@", "The password is too similar to the email address."),
    ],
)
def test_the_set_password_page_refuses_weak_passwords_with_the_reason(tenant, password, message):
    user = MemberFactory(tenant=tenant, user__email="invitee.person@acme.test").user

    response = set_password(user, password)

    assert response.status_code == 200
    assert message in html.unescape(response.content.decode())
    user.refresh_from_db()
    assert not user.check_password(password)


def test_the_set_password_page_accepts_a_strong_password_and_signs_in(tenant):
    user = MemberFactory(tenant=tenant, user__email="invitee.person@acme.test").user

    response = set_password(user, "violet-harbour-cactus-42")

    assert response.status_code == 302 and response["Location"] == "/"
    user.refresh_from_db()
    assert user.check_password("violet-harbour-cactus-42")
    signed_in = response.client.get(f"/t/{tenant.slug}/")
    assert signed_in.status_code == 200, '"Set password and sign in" signed in'


def test_forgot_password_answers_the_same_for_every_address_and_mails_a_working_link(tenant, mailoutbox):
    user = MemberFactory(tenant=tenant, user__email="forgetful@acme.test").user
    user.set_password("old-password-that-was-long")
    user.save()
    client = Client()
    pages = [
        client.post("/accounts/password/reset/", {"email": email}, follow=True).content.decode()
        for email in ("forgetful@acme.test", "nobody@nowhere.test")
    ]
    assert all("Check your email" in page for page in pages)
    assert [m.to for m in mailoutbox] == [["forgetful@acme.test"]]
    link = re.search(r"https?://[^/\s]+(/accounts/password/[^/\s]+/[^/\s]+/)", mailoutbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert "Choose your password" in form.content.decode()
    chosen = {"new_password1": "new-harbour-cactus-42", "new_password2": "new-harbour-cactus-42"}
    done = client.post(form.redirect_chain[-1][0], chosen)
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password("new-harbour-cactus-42")
    assert client.get(link, follow=True).content.decode().count("This link has expired") == 1, "used once only"


# Audit log -----------------------------------------------------------------------------------------------


def api(raw_key):
    return Client(headers={"Authorization": f"Bearer {raw_key}"})


def _api_purchase(world, ctx):
    response = api(ctx["raw"]).post("/api/v1/purchases/", json.dumps({
        "external_id": "INV-audit", "customer": {"external_id": "C-audit", "name": "Ada"},
        "offering": world.offering.key, "purchased_at": (timezone.now() - timedelta(days=1)).isoformat(),
    }), content_type="application/json")  # fmt: skip
    assert response.status_code == 201, response.content
    return (
        response.json()["engagement"]["id"]
        if isinstance(response.json()["engagement"], dict)
        else (response.json()["engagement"])
    )


def _api_reassign(world, ctx):
    response = api(ctx["raw"]).patch(
        f"/api/v1/engagements/{world.engagement.id}/",
        json.dumps({"owner": "sales@acme.test"}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return world.engagement.id


def _web(path, data, target=None, status=302):
    def perform(world, ctx):
        response = ctx["admin"].post(world.path(path.format(**world.ids(), **ctx.get("ids", {}))), data)
        assert response.status_code == status, (path, response.status_code)
        return target(world, ctx) if target else None

    return perform


def _engagement(world, ctx):
    return world.engagement.id


def _offering_key(key):
    def target(world, ctx):
        from engagement.models import Offering

        return Offering.objects.get(key=key).pk

    return target


def _member(email):
    def target(world, ctx):
        from tenants.models import Member

        return Member.objects.get(user__email=email).pk

    return target


def _key_named(name):
    def target(world, ctx):
        from tenants.models import ApiKey

        return ApiKey.objects.get(name=name).pk

    return target


def _endpoint(world, ctx):
    return ctx["ids"]["endpoint"]


E = "engagements/{engagement}/"
W = "settings/webhooks/{endpoint}/"
ADMIN = "admin@acme.test"
# (action, who acts, how, the target's type, which target)
AUDITED = [
    ("engagement.created", "api key", _api_purchase, "engagement", None),
    ("engagement.reassigned", "api key", _api_reassign, "engagement", _engagement),
    ("engagement.reassigned", ADMIN, _web(E + "reassign/", {"owner": "service@acme.test"}), "engagement", _engagement),
    ("event.milestone", ADMIN, _web(E + "milestone/", {"milestone": "m1", "occurred_at": ""}), "engagement",
     _engagement),
    ("event.paused", ADMIN, _web(E + "paused/", {}), "engagement", _engagement),
    ("event.lost", ADMIN, _web(E + "lost/", {"reason": "Budget cut"}), "engagement", _engagement),
    ("note.added", ADMIN, _web(E + "note/", {"body": "Called them."}), "engagement", _engagement),
    ("offering.created", ADMIN, _web("journeys/new/", {"key": "training", "name": "Training", "m_key": ["a", "b"],
     "m_name": ["Kickoff", "Trained"], "m_due": ["1", "5"]}), "offering", _offering_key("training")),
    ("offering.updated", ADMIN, _web("journeys/{offering}/", {"name": "Software", "m_key": ["m1", "m2"],
     "m_name": ["One", "Two"], "m_due": ["2", "9"]}), "offering", _offering_key("acme-software")),
    ("member.invited", ADMIN, _web("settings/members/invite/", {"email": "new@acme.test", "role": "viewer"}),
     "member", _member("new@acme.test")),
    ("member.role_changed", ADMIN, _web("settings/members/{member}/role/", {"role": "service"}), "member",
     _member("teammate@acme.test")),
    ("api_key.created", ADMIN, _web("settings/keys/create/", {"name": "Billing", "scope": "read"}, status=200),
     "apikey", _key_named("Billing")),
    ("api_key.revoked", ADMIN, _web("settings/keys/{key}/revoke/", {}), "apikey", _key_named("CRM")),
    ("webhook.created", ADMIN, _web("settings/webhooks/new/", {"url": "http://127.0.0.1:9/new",
     "events": ["engagement.lost"]}, status=200), "webhookendpoint", None),
    ("webhook.secret_rotated", ADMIN, _web(W + "rotate/", {}, status=200), "webhookendpoint", _endpoint),
    ("webhook.disabled", ADMIN, _web(W + "disable/", {}), "webhookendpoint", _endpoint),
    ("webhook.deleted", ADMIN, _web(W + "delete/", {}), "webhookendpoint", _endpoint),
]  # fmt: skip


@pytest.fixture
def audit_context(acme, actor):
    with tenant_scope(acme.tenant):
        _, raw = api_key_create(tenant=acme.tenant, name="Audit sync", scope="write", actor=actor)
        endpoint, _ = endpoint_create(tenant=acme.tenant, url="http://127.0.0.1:9/hook",
                                      events=["engagement.reached_pov"], actor=actor)  # fmt: skip
    admin = Client()
    acme.members["admin"].user.refresh_from_db()
    admin.force_login(acme.members["admin"].user)
    return {"raw": raw, "admin": admin, "ids": {"endpoint": endpoint.id}, "key_prefix": raw.split("_")[1]}


@pytest.mark.parametrize(("action", "who", "perform", "target_type", "target"), AUDITED,
                         ids=[f"{a}-{'api' if w == 'api key' else 'web'}" for a, w, *_ in AUDITED])  # fmt: skip
def test_each_change_is_audited_and_shown_to_the_tenants_admins_only(
    acme, charlie, audit_context, action, who, perform, target_type, target
):
    tenant = acme.tenant
    with tenant_scope(tenant):
        before = set(AuditEntry.objects.values_list("id", flat=True))
    with tenant_scope(tenant):  # the API and web calls enter the scope themselves; this is for the lookups
        returned = perform(acme, audit_context)
        expected_target = str(target(acme, audit_context) if target else returned) if (target or returned) else None
        new = AuditEntry.objects.exclude(id__in=before).filter(action=action)
        entry = new.get()
    actor_label = f"api key {audit_context['key_prefix']}" if who == "api key" else who

    assert entry.actor_label == actor_label
    assert entry.target_type == target_type
    if expected_target is not None:
        assert entry.target_id == expected_target
    assert entry.data, "an audit row says what changed"

    settings_page = audit_context["admin"].get(acme.path("settings/"))
    assert settings_page.status_code == 200
    row = re.search(rf'title="{re.escape(entry.target_id)}".*?</tr>', settings_page.content.decode(), re.DOTALL)
    assert row and action in settings_page.content.decode() and actor_label in settings_page.content.decode()


def test_the_audit_log_is_for_the_tenants_admins_only(acme, charlie, login, client):
    with tenant_scope(acme.tenant):
        entry = AuditEntry.objects.filter(action="api_key.created").first()
    assert entry is not None

    login(acme.members["admin"])
    assert entry.target_id in client.get(acme.path("settings/")).content.decode()
    for role in ("owner", "sales", "service", "viewer"):
        login(acme.members[role])
        assert client.get(acme.path("settings/")).status_code == 403, role
    login(charlie.members["admin"])
    assert client.get(acme.path("settings/")).status_code == 404
    assert entry.target_id not in client.get(charlie.path("settings/")).content.decode()
