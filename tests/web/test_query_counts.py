"""Each dashboard costs the same number of SQL queries with 5 engagements as with 60 (healthchecks-style:
the comment above each count lists the queries, read from the captured SQL). A count that grows with the
data is an N+1 bug."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from engagement.models import Engagement, Offering
from engagement.services import note_add
from metrics.alerts import stalled_scan
from metrics.models import Alert
from metrics.rollups import recompute_rollups
from tenants.scoping import tenant_scope
from tests.factories import make_offering
from tests.web.conftest import buy, reach


def grow(world, actor, total):
    """Bring the tenant to `total` engagements: a third reached PoV, a third stalled (with alerts, half of
    them assigned), a third on track; owners, sales reps, segments and the two offerings vary. The detail
    page's engagement gets one note per five engagements, so its timeline grows with the data too. Then
    the stalled scan and the rollups run, as Celery would have done."""
    tenant, members = world.tenant, world.members
    people = [members["owner"], members["sales"], members["service"], None]
    with tenant_scope(tenant):
        offerings = [world.offering, Offering.objects.filter(key="consulting").first()]
        offerings[1] = offerings[1] or make_offering(tenant, key="consulting", due_days=(5, 30))
        start = Engagement.objects.count()
        for i in range(start, total):
            kind = i % 3
            engagement = buy(
                tenant, offerings[i % 2], actor, days_ago=(40, 25, 1)[kind], owner=people[i % 4],
                sales_rep=people[(i + 1) % 4], segment=("smb", "enterprise", "public")[i % 3], ref=f"bulk-{i}",
            )  # fmt: skip
            if kind == 0:
                for key in engagement.offering.milestones.order_by("order").values_list("key", flat=True):
                    reach(tenant, engagement, key, actor, days_ago=10)
        for n in range(start // 5, total // 5):
            note_add(tenant=tenant, engagement=world.engagement, body=f"Call {n}", actor=actor)
        stalled_scan(tenant)
        every_other = list(Alert.objects.order_by("id").values_list("pk", flat=True))[::2]
        Alert.objects.filter(pk__in=every_other).update(assignee=members["service"])
        recompute_rollups(tenant)


def captured(client, path):
    """The SQL of one GET of the page (after a first GET, so the session already names the tenant)."""
    client.get(path)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries]


# Every request under /t/<slug>/ starts with: django_session (the session), tenants_user (the signed-in
# user), tenants_tenant by slug and tenants_member ⨝ user (TenantScopeMiddleware: the membership).
REQUEST = 4
# Every HTML page adds tenants_member ⨝ tenant: the user's other companies, for the switcher in base.html.
EVERY_PAGE = REQUEST + 1

QUERY_COUNTS = [
    # Overview (rollups stored): metricrollup 'all' (the summary and the cohorts), rollupstate.day +
    # metricrollup 'segment' (segment choices), offering keys and names, active members ⨝ user (owner
    # and sales rep choices), the funnel's offering by key + its milestones
    # (prefetch), metricrollup 'offering' (the funnel), metricrollup 'all' of the last 90 days (the trend),
    # rollupstate.computed_at (the trend's timestamp); for an admin whose company has set up not every step
    # yet (acme has no assignment rule), the set-up checklist.
    pytest.param("", EVERY_PAGE + 11, id="overview"),
    # Engagement list: COUNT(*) of the filtered engagements (the pager), offering keys and names, the
    # distinct customer segments (one loose index scan on PostgreSQL), active members ⨝ user, and the
    # page of 50 engagements ⨝ purchase, customer, offering, owner ⨝ user, sales rep ⨝ user, and their
    # forecasts by engagement key.
    pytest.param("engagements/", EVERY_PAGE + 6, id="engagements"),
    # CSV export (no template, so no switcher): one SELECT of the filtered rows, a server-side cursor on
    # PostgreSQL.
    pytest.param("engagements/export.csv", REQUEST + 1, id="export"),
    # Engagement detail: the engagement ⨝ purchase, customer, offering, owner ⨝ user, sales rep ⨝ user, and
    # its forecast; the timeline's events ⨝ milestone, notes, and alerts ⨝ assignee ⨝ user; the journey's milestone
    # reaches and the offering's milestones; active members ⨝ user (the reassign menu).
    pytest.param("engagements/{engagement}/", EVERY_PAGE + 8, id="detail"),
    # Alerts: COUNT(*) of live alerts (the pager), acting members ⨝ user (the assignee menu), and the page
    # of alerts ⨝ engagement, customer, offering, owner ⨝ user, assignee ⨝ user.
    pytest.param("alerts/", EVERY_PAGE + 3, id="alerts"),
    # Team: every member ⨝ user (names of the rows); per board (owner, sales rep) rollupstate.day +
    # metricrollup of the dimension; the last backtest (an admin's page); rollupstate.day + metricrollup
    # 'segment' (segment choices), offering keys and names, active members ⨝ user; the success criteria met.
    pytest.param("team/", EVERY_PAGE + 11, id="team"),
    # Journeys: offerings, and their milestones (prefetch).
    pytest.param("journeys/", EVERY_PAGE + 2, id="journeys"),
    # Settings: members ⨝ user, API keys, the last 50 audit entries.
    pytest.param("settings/", EVERY_PAGE + 3, id="settings"),
]


@pytest.mark.parametrize(("page", "expected"), QUERY_COUNTS)
def test_page_queries_do_not_grow_with_engagements(acme, login, actor, page, expected):
    client = login(acme.members["admin"])
    path = acme.path(page.format(engagement=acme.engagement.id))

    grow(acme, actor, 5)
    small = captured(client, path)
    grow(acme, actor, 60)
    large = captured(client, path)

    listing = "\n".join(large)
    assert len(large) == len(small), f"{len(small)} queries with 5 engagements, {len(large)} with 60:\n{listing}"
    assert len(large) == expected, listing
