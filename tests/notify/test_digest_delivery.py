"""Each digest is delivered exactly once, to a real SMTP server (tests/notify/conftest.py): an SMTP failure
releases the claim for a retry, a failing digest is retried until its period ends, a claim whose sender
may have sent it is never sent again, and of two concurrent senders one sends. Then the same through a
real Celery worker, and the send_digests command.
"""

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from metrics.rollups import recompute_rollups
from notify import digests
from notify.digest_tasks import send_digest
from notify.models import DigestSend
from tenants.scoping import tenant_scope
from tests.conftest import WorkerProcess, run_concurrently, wait_for
from tests.engagement.test_tasks_worker import WorkerLog
from tests.notify.digest_helpers import SITE, build_acme, only_message_to, parts, send_now, subject

pytestmark = pytest.mark.usefixtures("digest_site")


# Exactly once ---------------------------------------------------------------------------------------------


def test_an_smtp_failure_releases_the_claim_and_the_retry_delivers_exactly_one(smtp, acme):
    tenant, owner = acme.tenant, acme.members["owner"]
    # Early enough in the company's day that the takeover below, LOST_RETRY_AFTER later, is in the same day.
    local = timezone.now().astimezone(tenant.tzinfo)
    now = min(local, local.replace(hour=21, minute=0, second=0, microsecond=0))
    smtp.fail_next = 1
    with pytest.raises(OSError, match="451"):  # smtplib.SMTPDataError, an SMTPException, is an OSError
        send_now(acme, "owner", now)
    assert smtp.messages == []
    with tenant_scope(tenant):
        (claim,) = DigestSend.objects.filter(member=owner)
        assert (claim.attempts, claim.sent_at, claim.claim_token) == (1, None, None)
        assert "451" in claim.last_error
        # The task's own retries have it; the hourly run takes it over only once they look lost.
        assert owner not in [d.member for d in digests.due_members(tenant, now)]
        later = now + digests.LOST_RETRY_AFTER + timedelta(minutes=1)
        retry = [d for d in digests.due_members(tenant, later) if d.member == owner]
        assert [d.period for d in retry] == [claim.period]
    assert send_now(acme, "owner", later) == digests.SENT
    assert send_now(acme, "owner", later) == digests.ALREADY
    assert len(smtp.to("owner@acme.test")) == 1
    with tenant_scope(tenant):
        claim.refresh_from_db()
        assert claim.attempts == 2 and claim.sent_at is not None and claim.last_error == ""


def test_a_mail_outage_costs_no_digest_however_many_attempts_fail(smtp, acme, login):
    tenant = acme.tenant
    smtp.fail_next = 8
    for _ in range(8):
        with pytest.raises(OSError):
            send_now(acme, "owner")
    admin_page = login(acme.members["admin"]).get(f"/t/{tenant.slug}/settings/digests/").content.decode()
    assert "Retrying: the mail server refused 8 attempts so far" in admin_page
    assert send_now(acme, "owner") == digests.SENT
    assert len(smtp.to("owner@acme.test")) == 1


def test_a_digest_whose_period_ended_unsent_says_so_to_the_admins(smtp, acme):
    tenant, owner = acme.tenant, acme.members["owner"]
    smtp.fail_next = 2
    for _ in range(2):
        with pytest.raises(OSError):
            send_now(acme, "owner")
    with tenant_scope(tenant):
        period = DigestSend.objects.get(member=owner).period
        next_month = timezone.now() + timedelta(days=31)
        assert digests.unsent(tenant, next_month)[owner.id] == (
            f"Not sent: the mail server refused all 2 attempts until {period} ended."
        )
        assert digests.send_member_digest(tenant=tenant, member_id=owner.id, period=period, now=next_month) == (
            digests.EXPIRED
        )


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
