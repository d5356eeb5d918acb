"""Hostile input on the web pages: query strings on every page, and values in every form field.

NUL characters, overlong values, markup, undecodable bytes and times out of range get the page, a 400 or
a form error, never a 500; and no raw markup comes back.
"""

import pytest

from engagement.models import Event
from tenants.scoping import tenant_scope

# Web pages: hostile query strings and form posts -------------------------------------------------------

PAGES = ["", "engagements/", "engagements/export.csv", "alerts/", "team/", "journeys/", "settings/",
         "settings/webhooks/", "digest/", "settings/digests/"]  # fmt: skip
PAGE_PARAMETERS = ["q", "status", "offering", "owner", "sales_rep", "segment", "purchased_from", "purchased_to",
                   "sort", "page", "state", "mine", "member"]  # fmt: skip
HOSTILE_PAGE_VALUES = {
    "invalid-utf8": "%FF%FE%80",
    "encoded-surrogate": "%ED%A0%80",
    "nul": "a%00b",
    "huge": "x" * 50_000,
    "huge-integer": "9" * 5000,
    "markup": "%3Cscript%3Ealert(1)%3C/script%3E",
}


@pytest.mark.parametrize("value", list(HOSTILE_PAGE_VALUES))
def test_hostile_query_strings_on_pages_are_never_a_500(world, login, value):
    client, failures = web_client(login, world), []
    for page in PAGES:
        for name in PAGE_PARAMETERS:
            response = client.get(world.path(f"{page}?{name}={HOSTILE_PAGE_VALUES[value]}"))
            try:
                body = b"".join(response.streaming_content) if response.streaming else response.content
            except Exception:  # noqa: BLE001 - a CSV that breaks while streaming is a broken download
                failures.append((page, name, "error while streaming"))
                continue
            if response.status_code not in (200, 400, 404) or b"<script>alert(1)" in body:
                failures.append((page, name, response.status_code))
    assert not failures, "\n".join(map(str, failures))


def web_client(login, world):
    """The admin's client, answering a server error with its 500 page instead of raising it."""
    client = login(world.members["admin"])
    client.raise_request_exception = False
    return client


def web_forms(world):
    """(path, base form data, the fields a user types into) of every form under /t/<slug>/."""
    engagement = f"engagements/{world.engagement.id}/"
    return [
        (engagement + "note/", {"body": "Called"}, ["body"]),
        (engagement + "milestone/", {"milestone": "m1", "occurred_at": "", "comment": "ok"},
         ["milestone", "occurred_at", "comment"]),
        (engagement + "satisfaction/", {"score": "5", "comment": "ok"}, ["score", "comment"]),
        (engagement + "lost/", {"reason": "budget", "comment": ""}, ["reason", "comment"]),
        (engagement + "reassign/", {"owner": "teammate@acme.test", "note": "over to you"}, ["owner", "note"]),
        ("journeys/new/", {"key": "fresh", "name": "Fresh", "m_key": "a", "m_name": "A", "m_due": "3",
                           "satisfaction_threshold": "4"},
         ["key", "name", "m_key", "m_name", "m_due", "satisfaction_threshold"]),
        ("settings/members/invite/", {"email": "new@acme.test", "role": "viewer"}, ["email", "role"]),
        (f"settings/members/{world.teammate.id}/role/", {"role": "sales"}, ["role"]),
        ("settings/keys/create/", {"name": "CRM 2", "scope": "read"}, ["name", "scope"]),
        ("settings/company/", {"name": "Acme", "time_zone": "Europe/Berlin", "grace_days": "3",
                               "escalation_days": "7"}, ["name", "time_zone", "grace_days", "escalation_days"]),
        ("settings/webhooks/new/", {"url": "https://example.com/hook", "events": "alert.opened"}, ["url", "events"]),
        (f"alerts/{world.alert.id}/assign/", {"assignee": "", "next": ""}, ["assignee", "next"]),
        ("digest/", {"frequency": "weekly"}, ["frequency"]),
    ]  # fmt: skip


# Longer than any column these forms write to (the longest, a note, holds 10,000 characters).
OVERLONG = "y" * 10_001
HOSTILE_FORM_VALUES = {"nul": "a\x00b", "overlong": OVERLONG, "markup": "<script>alert(1)</script>"}


@pytest.mark.parametrize("value", list(HOSTILE_FORM_VALUES))
def test_hostile_form_values_are_a_form_error_or_stored_never_a_500(world, login, value):
    client, failures = web_client(login, world), []
    for path, base, fields in web_forms(world):
        for field in fields:
            response = client.post(world.path(path), {**base, field: HOSTILE_FORM_VALUES[value]})
            if response.status_code not in (200, 302, 400) or b"<script>alert(1)" in response.content:
                failures.append((path, field, response.status_code))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.parametrize(
    "raw",
    [b"body=%FF%FE", b"body=\xff\xfe", b"%FF=1&body=x", b"body=" + b"%00" * 10],
)
def test_undecodable_form_bodies_are_never_a_500(world, login, raw):
    client, failures = web_client(login, world), []
    for path, _, _ in web_forms(world):
        response = client.post(world.path(path), data=raw, content_type="application/x-www-form-urlencoded")
        if response.status_code not in (200, 302, 400):
            failures.append((path, response.status_code))
    assert not failures, "\n".join(map(str, failures))


def test_the_sign_in_form_refuses_hostile_values_with_a_form_error(world, client):
    for value in ("a\x00b@acme.test", "x" * 10_000 + "@acme.test", "<script>alert(1)</script>"):
        response = client.post("/accounts/login/", {"username": value, "password": value})
        assert response.status_code == 200 and b"<script>alert(1)" not in response.content
        assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("moment", ["0001-01-01T00:00", "9999-12-31T23:59", "10000-01-01T00:00", "2026-13-01T00:00"])
def test_a_time_out_of_range_on_the_milestone_form_is_a_form_error(world, login, moment):
    # Year 1 at midnight in Berlin (local mean time, +00:53) is year 0 in UTC: it cannot be compared or stored.
    client = login(world.members["owner"])
    response = client.post(world.path(f"engagements/{world.engagement.id}/milestone/"),
                           {"milestone": "m1", "occurred_at": moment})  # fmt: skip
    assert response.status_code == 400
    assert "occurred_at" in response.content.decode() or "out of range" in response.content.decode()
    with tenant_scope(world.tenant):
        assert not Event.objects.filter(engagement=world.engagement).exists()
