"""The list's sortable columns: each toggles its direction, says how it is sorted (aria-sort), and status
sorts in the order of an engagement's life."""

import re

import pytest
from django.utils import timezone

from engagement.models import EventType
from engagement.services import event_record
from tenants.scoping import tenant_scope
from tests.web.conftest import buy, reach


@pytest.fixture
def lifecycle(acme, actor):
    """One engagement in each status (the world's own is stalled)."""
    now = timezone.now()
    with tenant_scope(acme.tenant):
        buy(acme.tenant, acme.offering, actor, name="On Track Co", days_ago=0)
        paused = buy(acme.tenant, acme.offering, actor, name="Paused Co", days_ago=1)
        event_record(tenant=acme.tenant, engagement=paused, type=EventType.PAUSED, actor=actor, occurred_at=now)
        reached = buy(acme.tenant, acme.offering, actor, name="Reached Co", days_ago=30)
        reach(acme.tenant, reached, "m3", actor, days_ago=1)
        lost = buy(acme.tenant, acme.offering, actor, name="Lost Co", days_ago=5)
        event_record(
            tenant=acme.tenant, engagement=lost, type=EventType.LOST, reason="Gone", actor=actor, occurred_at=now
        )


def _statuses(page):
    return re.findall(r'<span class="badge status-([a-z_]+)">', page)


def test_status_sorts_in_lifecycle_order_both_ways(acme, lifecycle, login):
    client = login(acme.members["owner"])
    ascending = client.get(acme.path("engagements/"), {"sort": "status"}).content.decode()
    assert _statuses(ascending) == ["on_track", "stalled", "paused", "reached", "lost"]
    descending = client.get(acme.path("engagements/"), {"sort": "-status"}).content.decode()
    assert _statuses(descending) == ["lost", "reached", "paused", "stalled", "on_track"]


@pytest.mark.parametrize("column", ["customer", "status", "due", "purchased", "risk"])
def test_a_sorted_column_says_so_and_its_link_turns_the_order_round(acme, login, column):
    client = login(acme.members["owner"])
    page = client.get(acme.path("engagements/"), {"sort": column}).content.decode()
    header = re.search(r'<th scope="col"[^>]*aria-sort="ascending"[^>]*><a href="\?([^"]*)"', page)
    assert header and f"sort=-{column}" in header.group(1), page[:3000]
    assert page.count("aria-sort=") == 1
    again = client.get(acme.path("engagements/"), {"sort": f"-{column}"}).content.decode()
    assert re.search(rf'aria-sort="descending"[^>]*><a href="\?[^"]*sort={column}\b', again)
