"""When digests are due: at eight in the morning of each tenant's time zone, daily on weekdays and weekly
on Mondays; every member's current period when forced; once per period; and the hourly beat that enqueues
one send per due member.
"""

from datetime import UTC, date, datetime, timedelta

import pytest

from notify import digests
from notify.digest_tasks import send_digest, send_due_digests
from notify.models import DigestPreference, DigestSend
from tenants.models import Member
from tenants.scoping import tenant_scope
from tests.factories import MemberFactory, TenantFactory

pytestmark = pytest.mark.usefixtures("digest_site")


# When: due-time selection across time zones -------------------------------------------------------------

MONDAY = date.fromisocalendar(2026, 48, 1)  # 23 November 2026, winter time in Berlin and New York


def _utc(day, hour, minute=0):
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def zones(db):
    """A daily owner, a weekly sales member, a viewer (off) and an owner who chose weekly, per tenant."""
    tenants = {}
    for slug, zone in (("berlin", "Europe/Berlin"), ("newyork", "America/New_York"), ("kolkata", "Asia/Kolkata")):
        tenant = TenantFactory(slug=slug, time_zone=zone)
        with tenant_scope(tenant):
            for role in ("owner", "sales", "viewer"):
                MemberFactory(tenant=tenant, user__email=f"{role}@{slug}.test", role=role)
            weekly = MemberFactory(tenant=tenant, user__email=f"weekly-owner@{slug}.test", role="owner")
            DigestPreference.objects.create(tenant=tenant, member=weekly, frequency="weekly")
        tenants[slug] = tenant
    return tenants


def due_at(tenants, now, **options):
    found = set()
    for tenant in tenants.values():
        with tenant_scope(tenant):
            found |= {(d.member.user.email, d.period) for d in digests.due_members(tenant, now, **options)}
    return found


def test_digests_are_due_at_eight_local_time_daily_on_weekdays_and_weekly_on_monday(zones):
    tuesday, saturday = MONDAY + timedelta(days=1), MONDAY + timedelta(days=5)
    berlin_monday = {
        ("owner@berlin.test", "2026-11-23"),
        ("sales@berlin.test", "2026-W48"),
        ("weekly-owner@berlin.test", "2026-W48"),
    }
    assert due_at(zones, _utc(MONDAY, 7, 0)) == berlin_monday  # 08:00 in Berlin, 02:00 in New York
    assert due_at(zones, _utc(MONDAY, 7, 59)) == berlin_monday
    assert due_at(zones, _utc(MONDAY, 6, 59)) == set()  # 07:59 in Berlin
    assert due_at(zones, _utc(MONDAY, 8, 0)) == set()  # 09:00 in Berlin
    assert due_at(zones, _utc(MONDAY, 13, 0)) == {  # 08:00 in New York
        ("owner@newyork.test", "2026-11-23"),
        ("sales@newyork.test", "2026-W48"),
        ("weekly-owner@newyork.test", "2026-W48"),
    }
    # Kolkata is UTC+05:30: the hourly run at 03:00 UTC is its 08:30.
    assert {email for email, _ in due_at(zones, _utc(MONDAY, 3, 0))} == {
        "owner@kolkata.test", "sales@kolkata.test", "weekly-owner@kolkata.test"
    }  # fmt: skip
    assert due_at(zones, _utc(MONDAY, 2, 0)) == set()  # 07:30 in Kolkata
    # Tuesday: daily only. Saturday: nothing.
    assert due_at(zones, _utc(tuesday, 7, 30)) == {("owner@berlin.test", "2026-11-24")}
    assert due_at(zones, _utc(saturday, 7, 30)) == set()
    # New York's Monday 08:00 is still Sunday nowhere: a late-evening UTC hour is Tuesday in Kolkata.
    assert due_at(zones, _utc(MONDAY, 22, 30)) == set()


def test_force_sends_every_members_current_period_whatever_the_hour(zones):
    saturday_night = _utc(MONDAY + timedelta(days=5), 23, 0)
    berlin = {k: v for k, v in zones.items() if k == "berlin"}
    assert due_at(berlin, saturday_night, force=True) == {
        ("owner@berlin.test", "2026-11-29"),  # Sunday 00:00 in Berlin
        ("sales@berlin.test", "2026-W48"),
        ("weekly-owner@berlin.test", "2026-W48"),
    }


def test_a_sent_digest_is_not_due_again_in_its_period(zones):
    tenant, monday_8 = zones["berlin"], _utc(MONDAY, 7, 15)
    with tenant_scope(tenant):
        owner = next(d.member for d in digests.due_members(tenant, monday_8) if d.period == "2026-11-23")
        DigestSend.objects.create(tenant=tenant, member=owner, period="2026-11-23", claimed_at=monday_8,
                                  sent_at=monday_8)  # fmt: skip
        assert owner not in [d.member for d in digests.due_members(tenant, monday_8 + timedelta(minutes=30))]
        assert owner not in [d.member for d in digests.due_members(tenant, monday_8, force=True)]


def test_the_hourly_beat_enqueues_one_send_per_due_member(zones, monkeypatch):
    sent = []
    monkeypatch.setattr("notify.digest_tasks.enqueue", lambda task, **kwargs: sent.append((task, kwargs)))
    monkeypatch.setattr("django.utils.timezone.now", lambda: _utc(MONDAY, 13, 0))
    send_due_digests()
    assert {task for task, _ in sent} == {send_digest}
    with tenant_scope(zones["newyork"]):
        members = {str(m.pk): m.user.email for m in Member.objects.select_related("user")}
    assert sorted((members.get(kw["member_id"]), kw["period"], kw["tenant_id"]) for _, kw in sent) == sorted(
        (email, period, str(zones["newyork"].pk))
        for email, period in [
            ("owner@newyork.test", "2026-11-23"),
            ("sales@newyork.test", "2026-W48"),
            ("weekly-owner@newyork.test", "2026-W48"),
        ]
    )
