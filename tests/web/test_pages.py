"""What the dashboards show and do: the overview from stored rollups, the engagement list and its CSV,
one engagement and its actions, the alert queue, the journey editor and the settings."""

import csv
import hashlib
import html
import io
import re
from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from engagement.models import Offering, Status
from metrics.alerts import stalled_scan
from metrics.models import Alert, AlertState
from metrics.rollups import recompute_rollups
from tenants.models import ApiKey, Member
from tenants.scoping import tenant_scope
from tests.factories import MemberFactory, TenantFactory, make_offering, refresh
from tests.web.conftest import buy, reach, snapshot

# The views turn service errors (engagement.errors.Invalid) into messages shown on the page.
NO_DETAIL = "invalid input is shown on the page with its message, never a 500"


def text(response):
    """The page's words, tags stripped and whitespace collapsed, to assert on what a reader sees."""
    words = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(words))


def csv_rows(response):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def customer_links(response, world):
    """The customer names linked from the rows of the list, in order."""
    pattern = rf'<a href="/t/{world.tenant.slug}/engagements/[0-9a-f-]{{36}}/">([^<]*)</a>'
    return re.findall(pattern, response.content.decode())


# Overview --------------------------------------------------------------------------------------------


def test_overview_shows_pov_rate_and_charts_from_stored_rollups(acme, login, actor):
    tenant = acme.tenant
    with tenant_scope(tenant):  # 5 engagements, 2 reached PoV, 1 of 'consulting'; then the rollups
        for days_ago in (30, 25):
            engagement = buy(tenant, acme.offering, actor, days_ago=days_ago)
            for key in ("m1", "m2", "m3"):
                reach(tenant, engagement, key, actor, days_ago=days_ago - 10)
        buy(tenant, acme.offering, actor, days_ago=1)
        buy(tenant, make_offering(tenant, key="consulting", due_days=(5, 30)), actor, days_ago=3)
        recompute_rollups(tenant)
        buy(tenant, acme.offering, actor, days_ago=2)  # after the rollups ran: not counted until the next run
    client = login(acme.members["viewer"])

    response = client.get(acme.path())
    narrowed = client.get(acme.path("?offering=consulting"))

    assert response.status_code == 200
    assert "reached PoV so far: 2 of 5 customers" in text(response)
    assert response.content.decode().count("<svg") >= 4  # time to value, days to value, cohorts, funnel
    assert "Updated " in text(response)
    assert "reached PoV so far: 0 of 1 customers" in text(narrowed)
    assert "Journey funnel: Consulting" in text(narrowed)


def test_a_new_tenant_is_told_how_to_start(db, login):
    newcomer = TenantFactory(slug="newco")
    client = login(MemberFactory(tenant=newcomer, user__email="admin@newco.test", role="admin"))

    overview, engagements = client.get("/t/newco/"), client.get("/t/newco/engagements/")

    assert "No purchases yet" in text(overview) and "<svg" not in overview.content.decode()
    assert "Create an API key in Settings" in text(overview)
    assert "No engagements yet" in text(engagements)
    for page in (overview, engagements):
        assert "POST /api/v1/purchases/" in text(page)


# Engagement list and CSV export ----------------------------------------------------------------------


@pytest.fixture
def listed(acme, actor):
    """Three named customers besides acme's first one: Bravo has reached PoV, Alpha is 'enterprise'."""
    tenant = acme.tenant
    with tenant_scope(tenant):
        buy(tenant, acme.offering, actor, name="Charlie Ltd", days_ago=1, ref="P-CHARLIE")
        buy(tenant, acme.offering, actor, name="Alpha GmbH", days_ago=2, segment="enterprise")
        bravo = buy(tenant, acme.offering, actor, name="Bravo Inc", days_ago=20)
        reach(tenant, bravo, "m3", actor, days_ago=5)
    return acme


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=bravo", ["Bravo Inc"]),  # case-insensitive part of the name
        ("q=P-CHARLIE", ["Charlie Ltd"]),  # the purchase's external id
        ("status=reached", ["Bravo Inc"]),
        ("segment=enterprise", ["Alpha GmbH"]),
        ("q=nobody-has-this-name", []),
    ],
)
def test_engagement_list_search_and_filters_narrow(listed, login, query, expected):
    response = login(listed.members["viewer"]).get(listed.path(f"engagements/?{query}"))

    assert response.status_code == 200
    assert customer_links(response, listed) == expected


def test_engagement_list_sorts_by_customer(listed, login):
    response = login(listed.members["viewer"]).get(listed.path("engagements/?sort=customer"))

    names = customer_links(response, listed)
    assert names == sorted(names)
    assert len(names) == 4


def test_segment_filter_lists_each_segment_once(listed, login):
    markup = login(listed.members["viewer"]).get(listed.path("engagements/")).content.decode()

    assert markup.count('<option value="smb"') == 1


def test_engagement_list_pages_by_fifty(acme, login, actor):
    with tenant_scope(acme.tenant):
        for i in range(54):  # 55 with acme's first engagement
            buy(acme.tenant, acme.offering, actor, name=f"Bulk {i:02d}", days_ago=1 + i % 10)
    client = login(acme.members["viewer"])

    first = client.get(acme.path("engagements/?sort=customer"))
    second = client.get(acme.path("engagements/?sort=customer&page=2"))

    assert len(customer_links(first, acme)) == 50
    assert len(customer_links(second, acme)) == 5
    assert "51–55 of 55" in text(second)
    assert set(customer_links(first, acme)).isdisjoint(customer_links(second, acme))


def test_csv_export_has_a_header_and_one_row_per_filtered_engagement(listed, login):
    response = login(listed.members["viewer"]).get(listed.path("engagements/export.csv?status=reached"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = csv_rows(response)
    assert rows[0][:3] == ["purchase", "customer", "customer_id"]
    assert [row[1] for row in rows[1:]] == ["Bravo Inc"]


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x")', "+1", "-1", "@SUM(1)"])
def test_csv_export_defuses_formulas(acme, login, actor, name):
    with tenant_scope(acme.tenant):
        buy(acme.tenant, acme.offering, actor, name=name, days_ago=1)

    response = login(acme.members["viewer"]).get(acme.path("engagements/export.csv?q=" + name.replace("+", "%2B")))

    assert [row[1] for row in csv_rows(response)[1:]] == ["'" + name]


# One engagement --------------------------------------------------------------------------------------


def test_detail_shows_the_journey_and_the_timeline(acme, login, actor):
    with tenant_scope(acme.tenant):
        reach(acme.tenant, acme.engagement, "m1", actor, days_ago=2)

    response = login(acme.members["viewer"]).get(acme.path(f"engagements/{acme.engagement.id}/"))

    page = text(response)
    journey = page[page.index("Journey") :]
    assert journey.index("Milestone 1") < journey.index("Milestone 2") < journey.index("Milestone 3 PoV")
    assert "Next step Milestone 2" in page  # names, never keys
    assert "Milestone 1 reached" in page  # the event on the timeline
    assert "Alert: stuck before Milestone 1" in page  # the alert the scan opened, its step by name
    assert " m1 " not in page and " m2 " not in page
    assert "Record milestone" not in page  # a viewer reads, without the action forms


def test_recording_the_pov_milestone_reaches_pov_and_notes_join_the_timeline(acme, login):
    client = login(acme.members["owner"])
    detail = acme.path(f"engagements/{acme.engagement.id}/")

    response = client.post(detail + "milestone/", {"milestone": "m3", "occurred_at": ""})
    client.post(detail + "note/", {"body": "Kickoff call booked."})
    client.post(detail + "reassign/", {"owner": "service@acme.test", "note": "Service takes over."})

    assert response.status_code == 302 and response["Location"] == detail
    refresh(acme.engagement)
    assert (acme.engagement.status, acme.engagement.owner_id) == (Status.REACHED, acme.members["service"].pk)
    page = text(client.get(detail))
    assert "Milestone 3 reached" in page
    assert "Note by owner@acme.test Kickoff call booked." in page
    assert "Handoff by owner@acme.test Owner: owner@acme.test → service@acme.test Service takes over." in page


def test_htmx_action_answers_with_the_detail_html(acme, login):
    path = acme.path(f"engagements/{acme.engagement.id}/note/")

    response = login(acme.members["owner"]).post(path, {"body": "Via htmx."}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert 'id="engagement"' in response.content.decode()
    assert "Via htmx." in text(response)


# Alerts ----------------------------------------------------------------------------------------------


def test_acknowledge_then_resolve_an_alert(acme, login):
    client = login(acme.members["service"])
    base = acme.path(f"alerts/{acme.alert.id}/")

    assert client.post(base + "acknowledge/").status_code == 302
    refresh(acme.alert)
    assert acme.alert.state == AlertState.ACKNOWLEDGED
    assert acme.alert.acknowledged_by == "service@acme.test"

    assert client.post(base + "resolve/").status_code == 302
    refresh(acme.alert)
    assert acme.alert.state == AlertState.RESOLVED
    assert "No stalled customers" in text(client.get(acme.path("alerts/")))


@pytest.mark.parametrize(("action", "state"), [("acknowledge", "Acknowledged"), ("resolve", "resolved")])
def test_htmx_alert_action_answers_with_the_row(acme, login, action, state):
    response = login(acme.members["service"]).post(
        acme.path(f"alerts/{acme.alert.id}/{action}/"), HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith(f'<tr id="alert-{acme.alert.id}"')
    assert "<html" not in response.content.decode()
    assert state in text(response)


def test_acknowledging_for_me_assigns_the_alert_to_me(acme, login):
    client = login(acme.members["service"])

    client.post(acme.path(f"alerts/{acme.alert.id}/acknowledge/"), {"assignee": ""})

    refresh(acme.alert)
    assert acme.alert.assignee_id == acme.members["service"].pk


# Journeys --------------------------------------------------------------------------------------------


def journey_post(key, rows):
    return {
        "key": key, "name": key.title(), "m_key": [r[0] for r in rows], "m_name": [r[1] for r in rows],
        "m_due": [str(r[2]) for r in rows],
    }  # fmt: skip


def test_create_a_journey(acme, login):
    rows = [("kickoff", "Kickoff", 1), ("trained", "Team trained", 10), ("live", "Live", 21), ("", "", "")]

    response = login(acme.members["admin"]).post(acme.path("journeys/new/"), journey_post("training", rows))

    assert response.status_code == 302 and response["Location"] == acme.path("journeys/")
    with tenant_scope(acme.tenant):
        offering = Offering.objects.get(key="training")
        milestones = list(offering.milestones.order_by("order").values_list("key", "due_day", "is_pov"))
    assert offering.target_days == 21
    assert milestones == [("kickoff", 1, False), ("trained", 10, False), ("live", 21, True)]


def test_new_journey_with_a_taken_key_overwrites_nothing(acme, login):
    before = snapshot(acme)
    taken = acme.offering.key
    response = login(acme.members["admin"]).post(acme.path("journeys/new/"), journey_post(taken, [("x", "X", 3)]))
    assert response.status_code == 400
    assert f"The key '{taken}' is taken by the journey '{acme.offering.name}'" in text(response)
    assert snapshot(acme) == before


# Invalid input ---------------------------------------------------------------------------------------


def broken(*row, raises=AttributeError, reason=NO_DETAIL):
    """A row that guards against a 500 (`reason` says what must hold instead)."""
    return pytest.param(*row)


E = "engagements/{engagement}/"
COMPANY = {"name": "Acme", "time_zone": "Europe/Berlin", "grace_days": "3", "escalation_days": "7"}
INVALID_INPUTS = [
    # role, method, route, body, sent by htmx;  then the answer: status, message shown
    broken("viewer", "GET", "?purchased_from=2024-13-45", None, False,
           200, "Purchased from: '2024-13-45' is not a date (YYYY-MM-DD)."),
    broken("viewer", "GET", "engagements/?purchased_to=yesterday", None, False,
           200, "Purchased to: 'yesterday' is not a date (YYYY-MM-DD)."),
    broken("owner", "POST", E + "milestone/", {"milestone": "m1", "occurred_at": "{tomorrow}"}, False,
           400, "more than 5 minutes in the future."),
    broken("owner", "POST", E + "satisfaction/", {"score": "9"}, False,
           400, "A satisfaction score is a whole number from 1 to 5, not 9."),
    broken("owner", "POST", E + "note/", {"body": "  "}, True,
           200, "A note needs some text."),  # 200: htmx swaps only 2xx answers into the page
    broken("admin", "POST", "journeys/new/", journey_post("bad", [("a", "A", 1), ("a", "B", 2)]), False,
           400, "'a' appears twice in this journey."),
    broken("admin", "POST", "journeys/new/", journey_post("bad", []), False,
           400, "A journey needs at least one milestone"),
    ("admin", "POST", "settings/members/invite/", {"email": "", "role": "owner"}, False,
     400, "Enter the email address to invite."),
    ("admin", "POST", "settings/keys/create/", {"name": "", "scope": "read"}, False,
     400, "Give the key a name"),
    broken("admin", "POST", "settings/keys/create/", {"name": "CRM", "scope": "read"}, False,
           400, "A key named 'CRM' already exists.", raises=IntegrityError,
           reason="a second key with a name in use is named as the error, not a 500"),
    ("admin", "POST", "settings/company/", {**COMPANY, "time_zone": "Mars/Base"}, False,
     400, "Mars/Base"),
    ("admin", "POST", "settings/company/", {**COMPANY, "grace_days": "soon"}, False,
     400, "'soon' is not a whole number of days."),
]  # fmt: skip


@pytest.mark.parametrize(("role", "method", "route", "body", "htmx", "status", "message"), INVALID_INPUTS)
def test_invalid_input_shows_why_and_stores_nothing(acme, login, role, method, route, body, htmx, status, message):
    tomorrow = timezone.localtime(timezone.now(), acme.tenant.tzinfo) + timedelta(days=1)
    path = acme.path(route.format(engagement=acme.engagement.id))
    body = {k: v.format(tomorrow=tomorrow.strftime("%Y-%m-%dT%H:%M")) if isinstance(v, str) else v
            for k, v in (body or {}).items()}  # fmt: skip
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    before = snapshot(acme)

    response = getattr(login(acme.members[role]), method.lower())(path, body, **headers)

    assert response.status_code == status
    assert message in text(response)
    assert snapshot(acme) == before


# Settings --------------------------------------------------------------------------------------------


def test_invite_adds_the_member_and_mails_a_password_link(acme, login, mailoutbox):
    response = login(acme.members["admin"]).post(
        acme.path("settings/members/invite/"), {"email": "New.Person@Acme.test", "role": "sales"}
    )

    assert response.status_code == 302
    with tenant_scope(acme.tenant):
        assert Member.objects.get(user__email="new.person@acme.test").role == "sales"
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["new.person@acme.test"]
    assert re.search(r"https?://\S+/accounts/password/[\w-]+/[\w-]+/", mailoutbox[0].body)


def test_invite_cannot_demote_the_last_admin(acme, login):
    admin = acme.members["admin"]

    login(admin).post(acme.path("settings/members/invite/"), {"email": "admin@acme.test", "role": "viewer"})

    refresh(admin)
    assert admin.role == "admin"


def test_new_key_is_shown_once_and_only_its_hash_stored_then_revoked(acme, login):
    client = login(acme.members["admin"])

    response = client.post(acme.path("settings/keys/create/"), {"name": "Billing", "scope": "read"})

    assert response.status_code == 200
    raw = re.search(r'value="(pov_[0-9a-f]{8}_[\w-]+)"', response.content.decode()).group(1)
    with tenant_scope(acme.tenant):
        key = ApiKey.objects.get(name="Billing")
    assert key.hashed_key == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {key.prefix, key.hashed_key, key.name}
    again = client.get(acme.path("settings/")).content.decode()
    assert raw not in again and key.prefix in again

    assert client.post(acme.path(f"settings/keys/{key.id}/revoke/")).status_code == 302
    refresh(key)
    assert key.revoked_at is not None
    assert "Key Billing revoked." in text(client.get(acme.path("settings/")))


def test_company_settings_save(acme, login):
    body = {"name": "Acme Inc", "time_zone": "America/New_York", "grace_days": "5", "escalation_days": "9"}

    response = login(acme.members["admin"]).post(acme.path("settings/company/"), body)

    assert response.status_code == 302
    acme.tenant.refresh_from_db()
    assert (acme.tenant.name, acme.tenant.time_zone, acme.tenant.grace_days) == ("Acme Inc", "America/New_York", 5)
    assert acme.tenant.escalation_days == 9


def test_the_last_admin_cannot_demote_themselves(acme, login):
    admin = acme.members["admin"]
    client = login(admin)

    client.post(acme.path(f"settings/members/{admin.id}/role/"), {"role": "viewer"})

    refresh(admin)
    assert admin.role == "admin"
    assert "The company needs at least one admin." in text(client.get(acme.path("settings/")))


# Escaping --------------------------------------------------------------------------------------------


def test_markup_in_a_customer_name_is_escaped_everywhere(acme, login, actor):
    name = '<script>alert("pwned")</script>'
    with tenant_scope(acme.tenant):
        engagement = buy(acme.tenant, acme.offering, actor, name=name, days_ago=20)
        stalled_scan(acme.tenant)
        assert Alert.objects.filter(engagement=engagement).exists()
    client = login(acme.members["owner"])

    for page in ("engagements/", f"engagements/{engagement.id}/", "alerts/"):
        markup = client.get(acme.path(page)).content.decode()
        assert "<script>alert" not in markup, page
        assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in markup, page
