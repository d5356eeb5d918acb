"""Scheduled email digests, delivered to a real SMTP server (aiosmtpd, tests/notify/conftest.py).

Acme (Europe/Berlin) has one member per role and three customers: "Stalled Co" (bought 20 days ago,
nothing reached: stalled, 18 days past its first milestone, with an open alert), "Happy Co" (reached
PoV two hours ago) and "Fresh Co" (its first milestone due tomorrow). The owner owns all three; the
sales member sold Stalled Co and Happy Co (PoV rate 50 %). Charlie has a stalled "Charlie Secret Co"
owned by the same person, which must never appear in an Acme digest.
"""

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from urllib.parse import urlparse

import pytest
from django.core import signing
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from engagement.services import event_record, purchase_record
from metrics.alerts import stalled_scan
from metrics.models import MetricRollup
from metrics.rollups import recompute_rollups
from notify import digests
from notify.digest_tasks import send_digest, send_due_digests
from notify.models import DigestFrequency, DigestPreference, DigestSend
from tenants.models import AuditEntry, Member
from tenants.scoping import tenant_scope
from tests.conftest import WorkerProcess, run_concurrently, wait_for
from tests.engagement.test_tasks_worker import WorkerLog
from tests.factories import CustomerFactory, MemberFactory, TenantFactory, make_offering

SITE = "https://pov.example.com"


@pytest.fixture(autouse=True)
def site_url(settings):
    settings.SITE_URL = SITE
    settings.DEFAULT_FROM_EMAIL = "PoV digests <digests@pov.example.com>"


@dataclass
class World:
    tenant: object
    members: dict
    customers: dict  # name -> engagement


def _buy(tenant, offering, actor, name, *, days_ago, owner=None, sales_rep=None):
    customer = CustomerFactory(tenant=tenant, name=name)
    purchase, _ = purchase_record(
        tenant=tenant, external_id=f"p-{customer.external_id}", customer=customer, offering=offering,
        purchased_at=timezone.now() - timedelta(days=days_ago), actor=actor, owner=owner, sales_rep=sales_rep,
    )  # fmt: skip
    return purchase.engagement


def build_acme(tenant, actor):
    with tenant_scope(tenant):
        members = {
            role: MemberFactory(tenant=tenant, user__email=f"{role}@acme.test", role=role)
            for role in ("owner", "sales", "service", "admin", "viewer")
        }
        owner, sales = members["owner"], members["sales"]
        offering = make_offering(tenant, due_days=(2, 7, 14))
        customers = {
            "Stalled Co": _buy(tenant, offering, actor, "Stalled Co", days_ago=20, owner=owner, sales_rep=sales),
            "Happy Co": _buy(tenant, offering, actor, "Happy Co", days_ago=10, owner=owner, sales_rep=sales),
            "Fresh Co": _buy(tenant, offering, actor, "Fresh Co", days_ago=1, owner=owner),
        }
        event_record(
            tenant=tenant, engagement=customers["Happy Co"], type="milestone", actor=actor,
            milestone=offering.milestones.get(is_pov=True), occurred_at=timezone.now() - timedelta(hours=2),
        )  # fmt: skip
        stalled_scan(tenant)
    return World(tenant, members, customers)


def build_charlie(tenant, acme_owner, actor):
    """The Acme owner is also an owner at Charlie, with a stalled customer and an open alert there."""
    with tenant_scope(tenant):
        owner = MemberFactory(tenant=tenant, user=acme_owner.user, role="owner")
        service = MemberFactory(tenant=tenant, user__email="service@charlie.test", role="service")
        offering = make_offering(tenant, key="charlie-software")
        secret = _buy(tenant, offering, actor, "Charlie Secret Co", days_ago=30, owner=owner)
        stalled_scan(tenant)
    return World(tenant, {"owner": owner, "service": service}, {"Charlie Secret Co": secret})


@pytest.fixture
def acme(tenant, actor):
    return build_acme(tenant, actor)


@pytest.fixture
def charlie(other_tenant, acme, actor):
    return build_charlie(other_tenant, acme.members["owner"], actor)


def send_now(world, role, now=None):
    """The member's digest for their current period, as `send_digests --now` sends it."""
    tenant, member = world.tenant, world.members[role]
    with tenant_scope(tenant):
        frequency, period = digests.current_period(tenant, member, now)
        return digests.deliver(tenant=tenant, member=member, frequency=frequency, period=period, now=now)


def header(message, name):
    # Django folds long and non-ASCII headers onto a continuation line; unfolded, they start with a space.
    return str(message[name]).strip()


def subject(message):
    return header(message, "Subject")


def parts(message):
    """The text and HTML parts, with the wire's CRLF line ends as newlines."""
    text, html = (message.get_body((kind,)).get_content() for kind in ("plain", "html"))
    return text.replace("\r\n", "\n"), html.replace("\r\n", "\n")


def only_message_to(smtp, address):
    received = smtp.to(address)
    assert len(received) == 1, f"{len(received)} messages to {address}"
    return received[0]


def engagement_url(world, name):
    return f"{SITE}/t/{world.tenant.slug}/engagements/{world.customers[name].id}/"


# What each role receives -----------------------------------------------------------------------------


def test_an_owner_gets_stalled_customers_with_days_overdue_reached_pov_and_due_milestones(smtp, acme, charlie):
    assert send_now(acme, "owner") == digests.SENT
    message = only_message_to(smtp, "owner@acme.test")
    text, html = parts(message)

    assert header(message, "From") == "PoV digests <digests@pov.example.com>"
    assert header(message, "To") == "owner@acme.test"
    assert subject(message) == (
        "Acme: your daily PoV digest · 1 stalled customer, 1 reached PoV, 1 milestone due this week"
    )
    # Stalled Co: its first milestone was due 18 days ago (bought 20 days ago, due on day 2).
    assert f"- Stalled Co: Next milestone Milestone 1; Days overdue 18\n  {engagement_url(acme, 'Stalled Co')}" in text
    assert "- Happy Co: Offering Software; Days to value 9.9" in text
    assert "- Fresh Co: Milestone Milestone 1; Due " in text
    assert f'<a href="{engagement_url(acme, "Stalled Co")}">Stalled Co</a>' in html
    assert "<td" in html and ">18</td>" in html
    for name in ("Happy Co", "Fresh Co"):
        assert f'<a href="{engagement_url(acme, name)}">{name}</a>' in html
    # Links are absolute, to this tenant's dashboard; nothing of Charlie's.
    assert f"{SITE}/t/acme/" in text and f'href="{SITE}/t/acme/"' in html
    assert "Charlie" not in text + html + subject(message)
    assert "/t/charlie/" not in text + html


def test_the_same_person_gets_each_tenants_own_customers_only(smtp, acme, charlie):
    send_now(charlie, "owner")
    text, html = parts(only_message_to(smtp, "owner@acme.test"))
    assert "Charlie Secret Co" in text and f"{SITE}/t/charlie/engagements/" in text
    for name in acme.customers:
        assert name not in text + html


def test_the_list_unsubscribe_headers_carry_the_signed_one_click_link(smtp, acme):
    send_now(acme, "owner")
    message = only_message_to(smtp, "owner@acme.test")
    text, html = parts(message)
    link = header(message, "List-Unsubscribe")
    assert link.startswith(f"<{SITE}/digests/unsubscribe/") and link.endswith("/>")
    assert header(message, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    url = link[1:-1]
    assert url in text and f'href="{url}"' in html
    token = urlparse(url).path.split("/")[-2]
    assert digests.read_unsubscribe_token(token) == (str(acme.tenant.pk), str(acme.members["owner"].pk))


def test_a_service_member_gets_the_open_alert_queue(smtp, acme, charlie):
    assert send_now(acme, "service") == digests.SENT
    message = only_message_to(smtp, "service@acme.test")
    text, html = parts(message)
    assert "1 open alert" in subject(message)
    assert "The open alert queue (1)" in text
    assert "- Stalled Co: Stuck before Milestone 1; Days overdue 18; Owner owner@acme.test; State Open" in text
    assert f"{SITE}/t/acme/alerts/" in text and f'href="{SITE}/t/acme/alerts/"' in html
    assert "Charlie Secret Co" not in text + html


def test_a_sales_member_gets_the_pov_progress_and_rate_of_the_customers_they_sold(smtp, acme):
    assert send_now(acme, "sales") == digests.SENT
    message = only_message_to(smtp, "sales@acme.test")
    text, html = parts(message)
    assert subject(message) == "Acme: your weekly PoV digest · PoV rate 50%, 2 customers to follow"
    assert "- PoV rate: Value 50%; 1 of 2 customers" in text
    assert "- Stalled Co: Status Stalled; Milestones 0 of 3; Next Milestone 1, 18 days overdue" in text
    assert "- Happy Co: Status Reached PoV; Milestones 1 of 3; Next reached PoV in 9.9 days" in text
    assert "Fresh Co" not in text  # sold by nobody
    assert f"{SITE}/t/acme/engagements/?sales_rep=sales%40acme.test" in text
    assert "<td" in html and ">50%</td>" in html


def test_an_admin_gets_the_stored_headline_metrics_and_their_trend(smtp, acme):
    tenant = acme.tenant
    with tenant_scope(tenant):
        recompute_rollups(tenant)
        today = timezone.localdate(timezone.now(), tenant.tzinfo)
        row = MetricRollup.objects.get(day=today, dimension="all", key="")
        # A week-old snapshot to compare with; and a stored value the live numbers could not produce,
        # so the digest is seen to read the rollups.
        week_ago = {**row.summary, "pov_rate": 0.1, "purchases": 1}
        MetricRollup.objects.create(
            tenant=tenant, day=today - timedelta(days=7), dimension="all", key="", summary=week_ago,
            computed_at=row.computed_at - timedelta(days=7),
        )  # fmt: skip
        MetricRollup.objects.filter(pk=row.pk).update(summary={**row.summary, "pov_rate": 0.4})
    assert send_now(acme, "admin") == digests.SENT
    message = only_message_to(smtp, "admin@acme.test")
    text, _ = parts(message)
    since = today - timedelta(days=7)
    assert subject(message) == "Acme: your weekly PoV digest · PoV rate 40%, 3 purchases"
    assert f"- PoV rate: Now 40%; since {since.day} {since:%b} +30 pts" in text
    assert f"- Purchases: Now 3; since {since.day} {since:%b} +2" in text


def test_html_escapes_what_customers_are_called(smtp, tenant, actor):
    with tenant_scope(tenant):
        owner = MemberFactory(tenant=tenant, user__email="owner@acme.test", role="owner")
        _buy(tenant, make_offering(tenant), actor, "<b>Bold</b> & Co", days_ago=20, owner=owner)
        stalled_scan(tenant)
    send_now(World(tenant, {"owner": owner}, {}), "owner")
    text, html = parts(only_message_to(smtp, "owner@acme.test"))
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in html and "<b>Bold</b>" not in html
    assert "- <b>Bold</b> & Co: " in text  # plain text stays as typed


def test_an_empty_digest_is_not_sent(smtp, acme):
    with tenant_scope(acme.tenant):
        idle = MemberFactory(tenant=acme.tenant, user__email="idle@acme.test", role="owner")
    acme.members["idle"] = idle
    assert send_now(acme, "idle") == digests.EMPTY
    assert smtp.messages == []
    with tenant_scope(acme.tenant):
        (row,) = DigestSend.objects.filter(member=idle)
        assert row.skipped and row.sent_at is None
        # Decided once for the period: asking again sends nothing either.
        assert digests.deliver(tenant=acme.tenant, member=idle, frequency="daily", period=row.period) == (
            digests.ALREADY
        )
        # Viewers are off by default, and have nothing to report when they opt in.
        viewer = acme.members["viewer"]
        assert digests.frequency_of(viewer) == DigestFrequency.OFF
        assert viewer not in [d.member for d in digests.due_members(acme.tenant, force=True)]
        assert digests.deliver(tenant=acme.tenant, member=viewer, frequency="daily", period="p") == digests.EMPTY
    assert smtp.messages == []


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


# Exactly once ---------------------------------------------------------------------------------------------


def test_an_smtp_failure_releases_the_claim_and_the_retry_delivers_exactly_one(smtp, acme):
    tenant, owner = acme.tenant, acme.members["owner"]
    smtp.fail_next = 1
    with pytest.raises(OSError, match="451"):  # smtplib.SMTPDataError, an SMTPException, is an OSError
        send_now(acme, "owner")
    assert smtp.messages == []
    with tenant_scope(tenant):
        (claim,) = DigestSend.objects.filter(member=owner)
        assert (claim.attempts, claim.sent_at, claim.claim_token) == (1, None, None)
        assert "451" in claim.last_error
        # The next hourly run picks the released claim up whatever the hour.
        retry = [d for d in digests.due_members(tenant) if d.member == owner]
        assert [d.period for d in retry] == [claim.period]
    assert send_now(acme, "owner") == digests.SENT
    assert send_now(acme, "owner") == digests.ALREADY
    assert len(smtp.to("owner@acme.test")) == 1
    with tenant_scope(tenant):
        claim.refresh_from_db()
        assert claim.attempts == 2 and claim.sent_at is not None and claim.last_error == ""


def test_after_max_attempts_a_failing_digest_is_given_up(smtp, acme):
    tenant, owner = acme.tenant, acme.members["owner"]
    smtp.fail_next = digests.MAX_ATTEMPTS
    for _ in range(digests.MAX_ATTEMPTS):
        with pytest.raises(OSError):
            send_now(acme, "owner")
    with tenant_scope(tenant):
        assert owner not in [d.member for d in digests.due_members(tenant)]
    assert send_now(acme, "owner") == digests.GAVE_UP
    assert smtp.messages == []


def test_a_claim_whose_sender_died_after_smtp_is_never_sent_again(smtp, acme):
    """At most once for the ambiguous case: a held claim without sent_at may have been delivered."""
    tenant, owner = acme.tenant, acme.members["owner"]
    with tenant_scope(tenant):
        _, period = digests.current_period(tenant, owner)
        DigestSend.objects.create(
            tenant=tenant, member=owner, period=period, claimed_at=timezone.now() - timedelta(hours=3),
            claim_token="6a2f1c1e-0000-4000-8000-000000000000",
        )  # fmt: skip
        assert owner not in [d.member for d in digests.due_members(tenant, force=True)]
    assert send_now(acme, "owner") == digests.ALREADY
    assert smtp.messages == []


def test_two_concurrent_dispatchers_deliver_one_digest(smtp, transactional_db, tenant, actor, monkeypatch):
    acme = build_acme(tenant, actor)
    barrier = threading.Barrier(2, timeout=30)
    claim = digests._claim

    def claim_together(*args, **kwargs):
        barrier.wait()  # both senders passed the "already sent?" check and claim at the same instant
        return claim(*args, **kwargs)

    monkeypatch.setattr(digests, "_claim", claim_together)
    outcomes = run_concurrently(lambda: send_now(acme, "owner"))
    assert sorted(outcomes) == sorted([digests.SENT, digests.ALREADY])
    assert len(smtp.to("owner@acme.test")) == 1
    with tenant_scope(tenant):
        assert list(DigestSend.objects.values_list("attempts", flat=True)) == [1]


# A real worker ----------------------------------------------------------------------------------------------


def test_a_real_worker_retries_an_smtp_failure_and_delivers_once(smtp, transactional_db, tenant, actor):
    acme = build_acme(tenant, actor)
    owner = acme.members["owner"]
    with tenant_scope(tenant):
        _, period = digests.current_period(tenant, owner)
    smtp.fail_next = 1  # the first attempt gets a 451; Celery retries with backoff
    worker = WorkerProcess().start({"EMAIL_URL": smtp.url, "SITE_URL": SITE})
    log = WorkerLog(worker)
    job = {"tenant_id": str(tenant.pk), "member_id": str(owner.pk), "period": period}
    try:
        first = send_digest.delay(**job).id
        assert wait_for(lambda: log.result_of(first), timeout=90) == "'sent'"
        # The same task delivered again (a redelivery, or the beat) sends nothing more.
        again = send_digest.delay(**job).id
        assert wait_for(lambda: log.result_of(again), timeout=60) == "'already sent'"
    finally:
        worker.stop()
    assert "Retry in" in log.text()
    message = only_message_to(smtp, "owner@acme.test")
    with tenant_scope(tenant):
        claim = DigestSend.objects.get(member=owner, period=period)
    assert claim.attempts == 2 and claim.sent_at is not None
    text, _ = parts(message)
    assert "Stalled Co" in text and f"{SITE}/t/acme/engagements/" in text


# The command -----------------------------------------------------------------------------------------------


def test_send_digests_now_sends_every_members_digest_once(smtp, acme, charlie):
    with tenant_scope(acme.tenant):
        recompute_rollups(acme.tenant)
    out = StringIO()
    call_command("send_digests", "--now", "--tenant", "acme", stdout=out, stderr=StringIO())
    assert out.getvalue() == "acme: 4 sent, 0 empty, 0 already sent, 0 failed.\n"
    assert sorted(a for m in smtp.messages for a in m.envelope_recipients) == [
        "admin@acme.test", "owner@acme.test", "sales@acme.test", "service@acme.test",
    ]  # fmt: skip
    out = StringIO()
    call_command("send_digests", "--now", "--tenant", "acme", stdout=out, stderr=StringIO())
    assert out.getvalue() == "acme: 0 sent, 0 empty, 4 already sent, 0 failed.\n"
    assert len(smtp.messages) == 4
    # Charlie's turn: only its own members, and the owner's Charlie digest names Charlie's customer.
    call_command("send_digests", "--now", "--tenant", "charlie", stdout=StringIO(), stderr=StringIO())
    charlie_mail = [m for m in smtp.messages if "Charlie Corp" in subject(m)]
    assert len(charlie_mail) == 2 and all("Stalled Co" not in parts(m)[0] for m in charlie_mail)


def test_send_digests_reports_a_failure_and_the_next_run_sends_it(smtp, acme):
    smtp.fail_next = 1
    err = StringIO()
    with pytest.raises(CommandError, match="1 digest"):
        call_command("send_digests", "--now", "--tenant", "acme", stdout=StringIO(), stderr=err)
    assert "451" in err.getvalue()
    assert "admin@acme.test" in err.getvalue()  # the first in line got the 451
    assert len(smtp.messages) == 3  # owner, sales and service (the viewer is off)
    out = StringIO()
    call_command("send_digests", "--now", "--tenant", "acme", stdout=out, stderr=StringIO())
    assert out.getvalue() == "acme: 1 sent, 0 empty, 3 already sent, 0 failed.\n"
    assert len(smtp.to("admin@acme.test")) == 1 and len(smtp.messages) == 4


def test_send_digests_names_an_unknown_tenant(db):
    with pytest.raises(CommandError, match="nope"):
        call_command("send_digests", "--tenant", "nope")


# Pages -------------------------------------------------------------------------------------------------------


@pytest.fixture
def login(client):
    def as_member(member):
        member.user.refresh_from_db()
        client.force_login(member.user)
        return client

    return as_member


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
