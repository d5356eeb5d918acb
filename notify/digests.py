"""Scheduled email digests: each member's choice, who is due, and sending each digest exactly once.

Daily digests go out Monday–Friday and weekly ones on Monday, at SEND_HOUR in the tenant's time zone (the
beat runs hourly, so exactly one run falls in that hour for any UTC offset). A digest belongs to a period,
the local date ("2026-11-25") or the ISO week ("2026-W48"); DigestSend is unique per member and period.

The content is rendered first, then the send is claimed by a committed DigestSend row, and only then is
the SMTP server called. A claim is sent (sent_at), skipped (nothing to report), released by an SMTP
failure (claim_token and sent_at NULL: retried with backoff up to an hour apart until its period ends) or
held (claim_token set, sent_at NULL): a sender is at work or died mid-send, and the mail may have left, so
it is never sent again.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from notify.digest_content import DigestContent, build_content
from notify.mail import absolute, email_from_templates
from notify.models import DEFAULT_FREQUENCY, DigestFrequency, DigestPreference, DigestSend
from tenants.actors import Actor, audit
from tenants.models import Member, Tenant
from tenants.scoping import tenant_scope

SEND_HOUR = 8
WINDOWS: dict[str, timedelta] = {DigestFrequency.DAILY: timedelta(days=1), DigestFrequency.WEEKLY: timedelta(days=7)}
# The send task retries its own SMTP failures (digest_tasks); the hourly run takes over a released claim
# only when its last attempt is this old, i.e. when the task's retries were lost.
LOST_RETRY_AFTER = timedelta(hours=2)
UNSUBSCRIBE_SALT = "notify.digest.unsubscribe"

SENT, EMPTY, ALREADY = "sent", "empty", "already sent"
OFF, EXPIRED = "off", "no longer due"


# Preferences --------------------------------------------------------------------------------------


def frequencies(members: list[Member]) -> dict[uuid.UUID, str]:
    """{member id: frequency} for the given members: their choice, else their role's default."""
    chosen = dict(DigestPreference.objects.filter(member__in=members).values_list("member_id", "frequency"))
    return {m.id: chosen.get(m.id) or DEFAULT_FREQUENCY.get(m.role, DigestFrequency.OFF) for m in members}


def frequency_of(member: Member) -> str:
    return frequencies([member])[member.id]


def digest_set_frequency(*, tenant: Tenant, member: Member, frequency: str, actor: Actor) -> None:
    """The member's own choice (also what the unsubscribe link sets to off)."""
    if frequency not in DigestFrequency.values:
        raise ValidationError({"frequency": [f"Choose one of: {', '.join(DigestFrequency.values)}."]})
    with transaction.atomic():
        DigestPreference.objects.update_or_create(tenant=tenant, member=member, defaults={"frequency": frequency})
        audit(tenant=tenant, actor=actor, action="digest.frequency", target=member, frequency=frequency)


# When ---------------------------------------------------------------------------------------------


def period_key(frequency: str, local: datetime) -> str:
    if frequency == DigestFrequency.WEEKLY:
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.date().isoformat()


def scheduled_at(frequency: str, local: datetime) -> bool:
    """Whether `local` (tenant time) is the hour this frequency is sent in."""
    if local.hour != SEND_HOUR or frequency == DigestFrequency.OFF:
        return False
    return local.weekday() < 5 if frequency == DigestFrequency.DAILY else local.weekday() == 0


@dataclass(frozen=True)
class Due:
    member: Member
    frequency: str
    period: str


MemberPeriod = tuple[uuid.UUID, str]
CLAIM_FIELDS = ("sent_at", "claim_token", "skipped")


def _settled(sent_at: datetime | None, claim_token: uuid.UUID | None, skipped: bool) -> str | None:
    """ALREADY when a claim rules its digest out (sent, skipped or held); None for a released one to retry."""
    return ALREADY if sent_at or claim_token or skipped else None


def _claims(periods: set[str], now: datetime) -> tuple[set[MemberPeriod], set[MemberPeriod]]:
    """(member id, period) of the claims the hourly run leaves alone (settled, or released recently: the send
    task's own retries have them), and of the released ones whose retries were lost, to take over."""
    done: set[MemberPeriod] = set()
    retry: set[MemberPeriod] = set()
    rows = DigestSend.objects.filter(period__in=periods).values_list("member_id", "period", "claimed_at", *CLAIM_FIELDS)
    for member_id, period, claimed_at, *claim in rows:
        lost = not _settled(*claim) and claimed_at < now - LOST_RETRY_AFTER
        (retry if lost else done).add((member_id, period))
    return done, retry


def unsent(tenant: Tenant, now: datetime) -> dict[uuid.UUID, str]:
    """Per member, what became of their latest digest the mail server refused: still retried while its
    period lasts, or not sent once the period ended. For the admins' digest page; the server's error itself
    stays in DigestSend.last_error and the worker's log."""
    failed = DigestSend.objects.filter(sent_at__isnull=True, skipped=False, attempts__gt=0)
    found: dict[uuid.UUID, str] = {}
    current = {period_key(f, now.astimezone(tenant.tzinfo)) for f in WINDOWS}
    for member_id, period, attempts in failed.order_by("member_id", "-claimed_at").values_list(
        "member_id", "period", "attempts"
    ):
        if member_id in found:
            continue
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if period in current:
            found[member_id] = f"Retrying: the mail server refused {tries} so far; retried until {period} ends."
        else:
            found[member_id] = f"Not sent: the mail server refused all {tries} until {period} ended."
    return found


def due_members(
    tenant: Tenant, now: datetime | None = None, *, force: bool = False, include_done: bool = False
) -> list[Due]:
    """The digests of `tenant` to send at `now`: scheduled this hour (every member's current period
    with `force`), plus released claims of a current period whose task retries were lost. Those already
    sent, claimed or being retried are left out unless `include_done` (for a report). Runs inside the
    tenant's scope."""
    now = now or timezone.now()
    local = now.astimezone(tenant.tzinfo)
    done, retry = _claims({period_key(f, local) for f in WINDOWS}, now)
    if not (force or local.hour == SEND_HOUR or retry):
        return []
    members = list(Member.objects.filter(is_active=True).select_related("user").order_by("user__email"))
    chosen = frequencies(members)
    due = []
    for member in members:
        frequency = chosen[member.id]
        key = (member.id, period_key(frequency, local))
        if frequency == DigestFrequency.OFF or (key in done and not include_done):
            continue
        if force or scheduled_at(frequency, local) or key in retry:
            due.append(Due(member=member, frequency=frequency, period=key[1]))
    return due


def current_period(tenant: Tenant, member: Member, now: datetime | None = None) -> tuple[str, str | None]:
    """The member's frequency and current period (None when digests are off)."""
    frequency = frequency_of(member)
    if frequency == DigestFrequency.OFF:
        return frequency, None
    return frequency, period_key(frequency, (now or timezone.now()).astimezone(tenant.tzinfo))


def due_jobs(tenants: Iterable[Tenant], now: datetime | None = None) -> list[dict[str, str]]:
    """Task arguments of every digest due at `now` across `tenants` (the hourly beat)."""
    jobs = []
    for tenant in tenants:
        with tenant_scope(tenant):
            jobs += [
                {"tenant_id": str(tenant.pk), "member_id": str(due.member.pk), "period": due.period}
                for due in due_members(tenant, now)
            ]
    return jobs


# What ---------------------------------------------------------------------------------------------


def last_sent_at(member: Member) -> datetime | None:
    return (
        DigestSend.objects.filter(member=member, sent_at__isnull=False)
        .order_by("-sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )


def digest_for(tenant: Tenant, member: Member, frequency: str, now: datetime | None = None) -> DigestContent:
    """The content of the member's digest now: news since their last digest (or one window back).
    With digests off (a preview), what a daily one would say."""
    now = now or timezone.now()
    window = WINDOWS.get(frequency, WINDOWS[DigestFrequency.DAILY])
    since = last_sent_at(member) or now - window
    return build_content(tenant=tenant, member=member, frequency=frequency, now=now, since=since, window=window)


def unsubscribe_token(member: Member) -> str:
    return signing.dumps({"tenant": str(member.tenant_id), "member": str(member.id)}, salt=UNSUBSCRIBE_SALT)


def read_unsubscribe_token(token: str) -> tuple[str, str]:
    """(tenant id, member id) of a token; BadSignature when tampered with or not ours."""
    data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    if not isinstance(data, dict) or not {"tenant", "member"} <= data.keys():
        raise signing.BadSignature("incomplete token")
    return data["tenant"], data["member"]


def digest_message(content: DigestContent) -> EmailMultiAlternatives:
    """The digest email, with the RFC 8058 one-click unsubscribe."""
    unsubscribe = absolute("digest-unsubscribe", unsubscribe_token(content.member))
    context = {"digest": content, "tenant": content.tenant, "member": content.member, "unsubscribe_url": unsubscribe}
    headers = {
        "List-Unsubscribe": f"<{unsubscribe}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Auto-Submitted": "auto-generated",  # RFC 3834: no vacation auto-replies
    }
    to = [content.member.user.email]
    return email_from_templates("notify/digest", context, tenant=content.tenant, to=to, headers=headers)


# Sending ------------------------------------------------------------------------------------------


def _claim(tenant: Tenant, member: Member, period: str, now: datetime, *, token: uuid.UUID | None) -> bool:
    """Insert the claim, or take over a released one, committed at once (its own statement, never
    inside the caller's transaction). `token` None records "nothing to report" instead. True when
    this caller got it; False when another sender holds it or it is settled."""
    skipped = token is None
    try:
        with transaction.atomic():
            DigestSend.objects.create(
                tenant=tenant, member=member, period=period, claimed_at=now, claim_token=token, skipped=skipped
            )
        return True
    except IntegrityError:
        pass
    released = DigestSend.objects.filter(
        member=member, period=period, sent_at__isnull=True, claim_token__isnull=True, skipped=False
    )
    return released.update(claim_token=token, claimed_at=now, skipped=skipped) == 1


def deliver(*, tenant: Tenant, member: Member, frequency: str, period: str, now: datetime | None = None) -> str:
    """Send one member's digest for `period` unless it was sent (or claimed) already. Returns SENT,
    EMPTY or ALREADY; an SMTP failure releases the claim and raises (the caller retries).
    Call it outside a transaction: the claim must be committed before the SMTP call."""
    now = now or timezone.now()
    existing = DigestSend.objects.filter(member=member, period=period).values_list(*CLAIM_FIELDS).first()
    if existing and (settled := _settled(*existing)):
        return settled
    content = digest_for(tenant, member, frequency, now)
    if content.is_empty:
        return EMPTY if _claim(tenant, member, period, now, token=None) else ALREADY
    message = digest_message(content)  # rendered before claiming: a template error claims nothing
    token = uuid.uuid4()
    if not _claim(tenant, member, period, now, token=token):
        return ALREADY
    claim = DigestSend.objects.filter(member=member, period=period, claim_token=token)
    try:
        message.send()
    except Exception as exc:
        claim.update(claim_token=None, attempts=F("attempts") + 1, last_error=repr(exc)[:2000])
        raise
    # Dying here (mail accepted, sent_at not recorded) leaves the claim held: never sent twice.
    # sent_at is `now`, when the content was read, so the next digest's news start there.
    claim.update(sent_at=now, attempts=F("attempts") + 1, last_error="")
    return SENT


def send_member_digest(*, tenant: Tenant, member_id: str, period: str, now: datetime | None = None) -> str:
    """The task's service: the member's digest for `period`, if that is still their current period
    (they may have switched to off, or the period passed while the task waited)."""
    member = Member.objects.select_related("user").filter(id=member_id, is_active=True).first()
    if member is None:
        return OFF
    frequency, current = current_period(tenant, member, now)
    if current is None:
        return OFF
    if current != period:
        return EXPIRED
    return deliver(tenant=tenant, member=member, frequency=frequency, period=period, now=now)
