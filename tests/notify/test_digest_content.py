"""What each member's digest says, delivered to a real SMTP server (tests/notify/conftest.py) from the
tenants of tests/notify/digest_helpers.py.

An owner's stalled, reached and due customers, the service queue of open alerts, the PoV progress of a
salesperson's customers, an admin's stored headline metrics; each tenant's own customers only, signed
one-click unsubscribe headers, escaped HTML, and no mail when there is nothing to report.
"""

from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from engagement.services import event_record
from metrics.alerts import stalled_scan
from metrics.models import MetricRollup
from metrics.rollups import recompute_rollups
from notify import digests
from notify.models import DigestFrequency, DigestSend
from tenants.scoping import tenant_scope
from tests.factories import MemberFactory, make_offering
from tests.notify.digest_helpers import SITE, World, _buy, header, only_message_to, parts, send_now, subject

pytestmark = pytest.mark.usefixtures("digest_site")


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


def test_an_owner_gets_the_customers_at_risk_least_likely_first(smtp, acme):
    with tenant_scope(acme.tenant):
        recompute_rollups(acme.tenant)  # the forecasts: Stalled Co is past its target day, its chance is 0
    send_now(acme, "owner")
    message = only_message_to(smtp, "owner@acme.test")
    text, _ = parts(message)

    assert "1 at risk" in subject(message)
    assert "At risk of missing their target (1)" in text
    assert "- Stalled Co: Chance by the target day 0%; Half of similar by not yet" in text
    assert f"{SITE}/t/acme/engagements/?at_risk=true" in text


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
        week_ago = {**row.summary, "pov_rate": 0.1, "purchases": 1, "reached_by_target": {"share": 0.5}}
        MetricRollup.objects.create(
            tenant=tenant, day=today - timedelta(days=7), dimension="all", key="", summary=week_ago,
            computed_at=row.computed_at - timedelta(days=7),
        )  # fmt: skip
        now = {**row.summary, "pov_rate": 0.4, "reached_by_target": {"share": 0.25}, "days_to_value_p50": None}
        MetricRollup.objects.filter(pk=row.pk).update(summary=now)
    assert send_now(acme, "admin") == digests.SENT
    message = only_message_to(smtp, "admin@acme.test")
    text, _ = parts(message)
    since = today - timedelta(days=7)
    assert subject(message) == "Acme: your weekly PoV digest · PoV rate 40%, 3 purchases"
    assert f"- PoV rate so far: Now 40%; since {since.day} {since:%b} +30 pts" in text
    assert f"- Purchases: Now 3; since {since.day} {since:%b} +2" in text
    assert f"- Reached PoV by the target day: Now 25%; since {since.day} {since:%b} -25 pts" in text
    assert "- Half reach PoV by: Now –" in text


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


def test_the_admins_digest_says_how_often_they_were_met(smtp, acme, actor):
    tenant = acme.tenant
    with tenant_scope(tenant):
        event_record(tenant=tenant, engagement=acme.customers["Happy Co"], type="satisfaction", score=5, actor=actor,
                     criteria_met={"Invoices out in one day": True}, occurred_at=timezone.now())  # fmt: skip

    assert send_now(acme, "admin") == digests.SENT

    body, _ = parts(only_message_to(smtp, "admin@acme.test"))
    assert "Success criteria met" in body
    assert "- Software: Success criterion Invoices out in one day; Met 100%; Answers 1" in body
