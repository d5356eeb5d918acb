"""Who may do what on the dashboards: the permission table (method × route × role → status), anonymous
visitors, members of another tenant, and another tenant's ids under one's own slug (DESIGN: tenancy rules
3, 4 and 6). A refused request must also leave the record as it was, so each refusal compares a snapshot."""

from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.messages import get_messages

from tests.factories import refresh
from tests.web.conftest import ROLES, snapshot

E = "engagements/{engagement}/"  # acme's stalled engagement, owned by owner@acme.test
A = "alerts/{alert}/"  # its open alert


def guarded(status, reason):
    """An expected status; `reason` says what the case guards."""
    return status


JOURNEYS_LIST_OPEN = "only admins open the journeys page (the nav shows it to admins only)"
NOT_ADMIN = guarded(403, JOURNEYS_LIST_OPEN)

# Route templates are relative to /t/acme/. Allowed POSTs carry the valid body of VALID_POSTS and answer 302
# (redirect after success); creating a key answers 200 because the new key is shown once, on that response.
PERMISSIONS = [
    # method  route                               admin  owner      sales      service    viewer
    ("GET",  "",                                  200,   200,       200,       200,       200),
    ("GET",  "engagements/",                      200,   200,       200,       200,       200),
    ("GET",  "engagements/export.csv",            200,   200,       200,       200,       200),
    ("GET",  "engagements/new/",                  200,   200,       200,       200,       403),
    ("POST", "engagements/new/",                  302,   302,       302,       302,       403),
    ("GET",  "customers/{customer}/",             200,   200,       200,       200,       403),
    ("POST", "customers/{customer}/",             302,   302,       302,       302,       403),
    ("GET",  E,                                   200,   200,       200,       200,       200),
    ("POST", E + "milestone/",                    302,   302,       302,       302,       403),
    ("POST", E + "satisfaction/",                 302,   302,       302,       302,       403),
    ("POST", E + "lost/",                         302,   302,       302,       302,       403),
    ("POST", E + "reopened/",                     400,   400,       400,       400,       403),
    ("POST", E + "paused/",                       302,   302,       302,       302,       403),
    ("POST", E + "resumed/",                      400,   400,       400,       400,       403),
    ("POST", E + "note/",                         302,   302,       302,       302,       403),
    ("POST", E + "reassign/",                     302,   302,       302,       302,       403),
    ("GET",  "alerts/",                           200,   200,       200,       200,       200),
    ("POST", A + "acknowledge/",                  302,   302,       302,       302,       403),
    ("POST", A + "assign/",                       302,   302,       302,       302,       403),
    ("POST", A + "resolve/",                      302,   302,       302,       302,       403),
    ("GET",  "team/",                             200,   200,       200,       200,       200),
    ("GET",  "help/metrics/",                     200,   200,       200,       200,       200),
    ("GET",  "journeys/",                         200,   NOT_ADMIN, NOT_ADMIN, NOT_ADMIN, NOT_ADMIN),
    ("GET",  "journeys/new/",                     200,   403,       403,       403,       403),
    ("POST", "journeys/new/",                     302,   403,       403,       403,       403),
    ("GET",  "journeys/{offering}/",              200,   403,       403,       403,       403),
    ("POST", "journeys/{offering}/",              302,   403,       403,       403,       403),
    ("GET",  "settings/",                         200,   403,       403,       403,       403),
    ("POST", "settings/members/invite/",          302,   403,       403,       403,       403),
    ("POST", "settings/members/{member}/role/",   302,   403,       403,       403,       403),
    ("POST", "settings/keys/create/",             200,   403,       403,       403,       403),
    ("POST", "settings/keys/{key}/revoke/",       302,   403,       403,       403,       403),
    ("POST", "settings/company/",                 302,   403,       403,       403,       403),
    ("GET",  "settings/assignment/",              200,   403,       403,       403,       403),
    ("POST", "settings/assignment/",              302,   403,       403,       403,       403),
    ("POST", "settings/assignment/apply/",        302,   403,       403,       403,       403),
    ("POST", "setup/dismiss/",                    302,   403,       403,       403,       403),
]  # fmt: skip

VALID_POSTS = {
    "engagements/new/": {"customer_id": "C-new", "customer_name": "New Customer", "external_id": "P-new",
                         "offering": "acme-software", "purchased_at": ""},
    "customers/{customer}/": {"name": "Renamed Customer", "email": "", "segment": "smb", "attributes": ""},
    E + "milestone/": {"milestone": "m1", "occurred_at": ""},  # empty = now
    E + "satisfaction/": {"score": "5", "comment": "Happy so far"},
    E + "lost/": {"reason": "Chose a competitor"},
    E + "reopened/": {"reason": "Came back"},  # refused: the engagement is not lost (400, nothing changes)
    E + "paused/": {},
    E + "resumed/": {},  # refused: the engagement is not paused
    E + "note/": {"body": "Called the customer."},
    E + "reassign/": {"owner": "sales@acme.test", "note": "Sales takes over."},
    A + "acknowledge/": {},
    A + "assign/": {"assignee": "{member}"},
    A + "resolve/": {},
    "journeys/new/": {"key": "training", "name": "Training", "m_key": ["kickoff", "done"],
                      "m_name": ["Kickoff", "Trained"], "m_due": ["1", "5"]},
    "journeys/{offering}/": {"name": "Software", "m_key": ["m1", "m2", "m3"],
                             "m_name": ["Milestone 1", "Milestone 2", "Milestone 3"], "m_due": ["2", "7", "14"]},
    "settings/members/invite/": {"email": "new.person@acme.test", "role": "viewer"},
    "settings/members/{member}/role/": {"role": "service"},
    "settings/keys/create/": {"name": "Billing", "scope": "read"},
    "settings/assignment/": {"method": "round_robin", "members": "{member}"},
    "settings/company/": {"name": "Acme", "time_zone": "Europe/Berlin", "grace_days": "5", "escalation_days": "7"},
}  # fmt: skip

ROUTES = [(method, route) for method, route, *_ in PERMISSIONS]
OBJECT_ROUTES = [(method, route) for method, route in ROUTES if "{" in route]
# Forms are a GET and a POST on one URL; every other POST route only acts.
POST_ONLY = [route for method, route in ROUTES if method == "POST" and ("GET", route) not in ROUTES]


def _cases():
    for method, route, *statuses in PERMISSIONS:
        for role, status in zip(ROLES, statuses, strict=True):
            marks = status.marks if hasattr(status, "marks") else ()
            expected = status.values[0] if hasattr(status, "values") else status
            yield pytest.param(method, route, role, expected, marks=marks, id=f"{method} /t/acme/{route} as {role}")


def _fill(value, ids):
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value.format(**ids)


def request(client, world, method, route):
    """Send the route's request, with its valid body for a POST."""
    ids = world.ids()
    path = world.path(route.format(**ids))
    if method == "GET":
        return client.get(path)
    body = {name: _fill(value, ids) for name, value in VALID_POSTS.get(route, {}).items()}
    return client.post(path, body)


@pytest.mark.parametrize(("method", "route", "role", "expected"), list(_cases()))
def test_permission_table(acme, login, method, route, role, expected):
    client = login(acme.members[role])
    before = snapshot(acme)

    response = request(client, acme, method, route)

    assert response.status_code == expected
    if expected in (400, 403, 404, 405):
        assert snapshot(acme) == before, "a refused request changed the record"
    elif method == "POST":
        # A redirect that only carried an error message would be a failure disguised as success.
        errors = [str(m) for m in get_messages(response.wsgi_request) if m.level_tag == "error"]
        assert errors == []
        assert snapshot(acme) != before, "an allowed POST changed nothing"


@pytest.mark.parametrize(("method", "route"), ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
def test_anonymous_is_sent_to_login_with_next(acme, client, method, route):
    path = acme.path(route.format(**acme.ids()))
    before = snapshot(acme)

    response = getattr(client, method.lower())(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"
    assert snapshot(acme) == before


def test_login_redirect_keeps_the_whole_query_string(acme, client):
    path = acme.path("engagements/?status=stalled&offering=acme-software")

    response = client.get(path)

    assert response.status_code == 302
    assert parse_qs(urlparse(response["Location"]).query) == {"next": [path]}


@pytest.mark.parametrize(("method", "route"), ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
def test_member_of_another_tenant_gets_404_for_every_page(acme, charlie, login, method, route):
    client = login(charlie.members["admin"])
    before = snapshot(acme)

    response = request(client, acme, method, route)

    assert response.status_code == 404
    assert snapshot(acme) == before


@pytest.mark.parametrize(("method", "route"), OBJECT_ROUTES, ids=[f"{m} {r}" for m, r in OBJECT_ROUTES])
def test_another_tenants_ids_under_own_slug_are_404(acme, charlie, login, method, route):
    """charlie's admin may do everything in charlie, so only the id's owner can make this a 404."""
    client = login(charlie.members["admin"])
    ids = acme.ids()
    path = charlie.path(route.format(**ids))
    body = {name: _fill(value, ids) for name, value in VALID_POSTS.get(route, {}).items()}
    before = snapshot(acme)

    response = client.get(path) if method == "GET" else client.post(path, body)

    assert response.status_code == 404
    assert snapshot(acme) == before


def test_another_tenants_member_cannot_be_made_owner(acme, charlie, login):
    """A reassignment names the new owner by email: acme's member is no member of charlie's."""
    client = login(charlie.members["admin"])
    path = charlie.path(f"engagements/{charlie.engagement.id}/reassign/")
    before = snapshot(charlie)

    response = client.post(path, {"owner": "owner@acme.test"})

    assert response.status_code == 400
    assert "is not a member of this company" in response.content.decode()
    assert snapshot(charlie) == before


def test_another_tenants_member_cannot_be_assigned_an_alert(acme, charlie, login):
    client = login(charlie.members["admin"])
    path = charlie.path(f"alerts/{charlie.alert.id}/assign/")

    client.post(path, {"assignee": str(acme.members["owner"].id)})

    refresh(charlie.alert)
    assert charlie.alert.assignee_id != acme.members["owner"].id


GET_SIDE_EFFECTS = (
    "write routes refuse GET, which CSRF does not check (a link or an <img> must not pause, reassign, resolve "
    "or revoke), for every role"
)


@pytest.mark.parametrize("role", ["admin", "viewer"])
@pytest.mark.parametrize("route", POST_ONLY)
def test_post_only_routes_refuse_get(acme, login, route, role):
    client = login(acme.members[role])
    before = snapshot(acme)

    response = client.get(acme.path(route.format(**acme.ids())))

    assert snapshot(acme) == before, "a GET changed the record"
    assert response.status_code == 405
