"""The digest's pages: the one-click unsubscribe link every digest carries (a confirmation page, then the
signed POST; a tampered link is a clear 400), each member's preview and choice of how often, admins'
preview of any member's digest, and who may see which page.
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from notify import digests
from notify.models import DigestFrequency, DigestPreference
from tenants.models import AuditEntry
from tenants.scoping import tenant_scope
from tests.notify.digest_helpers import header, only_message_to, send_now

pytestmark = pytest.mark.usefixtures("digest_site")


# Unsubscribe ---------------------------------------------------------------------------------------------


def _unsubscribe_path(smtp, address):
    return urlparse(header(only_message_to(smtp, address), "List-Unsubscribe")[1:-1]).path


def _next_weekday_0830_berlin(after):
    day = after.astimezone(UTC).date() + timedelta(days=1)
    while day.weekday() != 0:  # a Monday: daily and weekly digests are both due
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 7, 30, tzinfo=UTC)  # 08:30 in Berlin (CET) or 09:30 (CEST)


def test_a_clicked_unsubscribe_stops_the_next_digest(smtp, acme):
    send_now(acme, "owner")
    path = _unsubscribe_path(smtp, "owner@acme.test")
    browser = Client(enforce_csrf_checks=True)  # no session, no CSRF token: a mail client's one-click POST

    page = browser.get(path)
    assert page.status_code == 200
    assert b"Stop your digests?" in page.content and b"owner@acme.test" in page.content
    with tenant_scope(acme.tenant):
        assert not DigestPreference.objects.exists()  # looking changes nothing

    done = browser.post(path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert done.status_code == 200
    assert b"You are unsubscribed" in done.content
    owner = acme.members["owner"]
    with tenant_scope(acme.tenant):
        assert digests.frequency_of(owner) == DigestFrequency.OFF
        assert AuditEntry.objects.filter(action="digest.frequency", target_id=str(owner.pk)).exists()
        at = _next_weekday_0830_berlin(timezone.now())
        if timezone.localtime(at, acme.tenant.tzinfo).hour != 8:
            at -= timedelta(hours=1)  # summer time
        due = {d.member.user.email for d in digests.due_members(acme.tenant, at)}
        assert "owner@acme.test" not in due and "service@acme.test" in due
        assert digests.send_member_digest(tenant=acme.tenant, member_id=owner.pk, period="any") == digests.OFF
    assert len(smtp.messages) == 1


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: signing.dumps({"tenant": "x", "member": "y"}, salt="another.salt"),
        lambda token: "not-a-token",
    ],
    ids=["changed", "other-salt", "garbage"],
)
def test_a_bad_or_tampered_unsubscribe_link_is_a_clear_400(smtp, acme, client, tamper):
    send_now(acme, "owner")
    token = _unsubscribe_path(smtp, "owner@acme.test").split("/")[-2]
    for method in (client.get, client.post):
        response = method(f"/digests/unsubscribe/{tamper(token)}/")
        assert response.status_code == 400
        assert b"This unsubscribe link is not valid" in response.content
    with tenant_scope(acme.tenant):
        assert digests.frequency_of(acme.members["owner"]) == DigestFrequency.DAILY


# Pages -------------------------------------------------------------------------------------------------------


def test_every_member_previews_their_own_digest_and_chooses_how_often(acme, login):
    client = login(acme.members["owner"])
    page = client.get("/t/acme/digest/")
    assert page.status_code == 200
    assert b"Stalled Co" in page.content and b'value="daily" checked' in page.content
    response = client.post("/t/acme/digest/", {"frequency": "weekly"})
    assert response.status_code == 302
    assert response["Location"] == "/t/acme/digest/"
    with tenant_scope(acme.tenant):
        assert digests.frequency_of(acme.members["owner"]) == DigestFrequency.WEEKLY
    assert client.post("/t/acme/digest/", {"frequency": "hourly"}).status_code == 400
    # A viewer has nothing to report but may still choose.
    client = login(acme.members["viewer"])
    assert b"Nothing to report" in client.get("/t/acme/digest/").content
    assert client.post("/t/acme/digest/", {"frequency": "daily"}).status_code == 302


def test_admins_preview_any_members_digest(acme, charlie, login):
    client = login(acme.members["admin"])
    listing = client.get("/t/acme/settings/digests/")
    assert listing.status_code == 200 and b"owner@acme.test" in listing.content
    page = client.get(f"/t/acme/settings/digests/?member={acme.members['owner'].pk}")
    assert page.status_code == 200
    assert b"Stalled Co" in page.content and b"Charlie Secret Co" not in page.content
    # Another tenant's member, or not an id at all: the same 404.
    assert client.get(f"/t/acme/settings/digests/?member={charlie.members['service'].pk}").status_code == 404
    assert client.get("/t/acme/settings/digests/?member=42").status_code == 404


def test_only_admins_see_the_digest_settings_and_no_one_sees_another_tenants(acme, charlie, login):
    assert login(acme.members["owner"]).get("/t/acme/settings/digests/").status_code == 403
    # Charlie's service member is no member of Acme: 404, as for a tenant that does not exist.
    client = login(charlie.members["service"])
    assert client.get("/t/acme/digest/").status_code == 404
    assert client.get("/t/acme/settings/digests/").status_code == 404
    assert client.post("/t/acme/digest/", {"frequency": "off"}).status_code == 404


# Route templates relative to /t/acme/; {owner} is the owner's member id.
DIGEST_PERMISSIONS = [
    # method  route                                   admin  owner  sales  service  viewer
    ("GET",  "digest/",                               200,   200,   200,   200,     200),
    ("POST", "digest/",                               302,   302,   302,   302,     302),
    ("GET",  "settings/digests/",                     200,   403,   403,   403,     403),
    ("GET",  "settings/digests/?member={owner}",      200,   403,   403,   403,     403),
]  # fmt: skip
ROLES = ("admin", "owner", "sales", "service", "viewer")


@pytest.mark.parametrize(
    ("method", "route", "role", "expected"),
    [(m, r, role, status) for m, r, *statuses in DIGEST_PERMISSIONS for role, status in zip(ROLES, statuses)],
)
def test_digest_page_permissions(acme, login, method, route, role, expected):
    client = login(acme.members[role])
    path = "/t/acme/" + route.format(owner=acme.members["owner"].pk)
    response = client.get(path) if method == "GET" else client.post(path, {"frequency": "weekly"})
    assert response.status_code == expected
    with tenant_scope(acme.tenant):
        chosen = dict(DigestPreference.objects.values_list("member__user__email", "frequency"))
    assert chosen == ({f"{role}@acme.test": "weekly"} if method == "POST" else {})


@pytest.mark.parametrize("route", ["digest/", "settings/digests/"])
def test_anonymous_visitors_are_sent_to_sign_in(acme, client, route):
    response = client.get(f"/t/acme/{route}")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
