"""The customer's own confirmation of value.

When an engagement reaches its PoV milestone and its offering has `confirm_value`, the customer is
asked once, by email, whether they got the value they expected (1-5). Each of the five links carries
a signed, expiring token; the first click records a `satisfaction` event, which is what completes PoV
for offerings that require satisfaction.

Each drained batch of `engagement.changed` inserts the missing ValueConfirmation rows (unique per
engagement: never asked twice); `send_pending` claims each row with a conditional UPDATE before its
SMTP call, so two workers never send the same email.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core import signing
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from engagement import outbox
from engagement.models import Engagement, Event, EventType, MilestoneReach, Offering, OutboxMessage, Status
from engagement.queries import journey_save_notices
from engagement.services import event_record, note_add
from notify.mail import absolute, email_from_templates
from notify.models import ValueConfirmation
from pov.enqueue import enqueue_on_commit
from tenants.actors import Actor
from tenants.models import Tenant

log = logging.getLogger(__name__)

TOKEN_SALT = "notify.value-confirmation"
TOKEN_MAX_AGE = timedelta(days=30)
SCORES = (1, 2, 3, 4, 5)
SCORE_LABELS = {1: "Not at all", 2: "A little", 3: "Partly", 4: "Mostly", 5: "Completely"}
# A PoV milestone reached longer ago than this is history (an import, or the switch turned on later):
# its customer is not asked out of the blue.
ASK_WITHIN = timedelta(days=30)
# An SMTP failure is retried after 1, 4, 16, 64 minutes, then every 6 hours, up to MAX_ATTEMPTS sends.
MAX_ATTEMPTS = 8
SEND_BATCH = 200


def register() -> None:
    outbox.register(outbox.CHANGED, on_engagements_changed, batch=True)
    if notice_on_turning_on not in journey_save_notices:
        journey_save_notices.append(notice_on_turning_on)


def notice_on_turning_on(offering: Offering, values: dict) -> str | None:
    """Turning the question on asks at once every customer who reached PoV in the last ASK_WITHIN: say how many."""
    if offering.confirm_value or not values.get("confirm_value"):
        return None
    count = engagements_to_ask(timezone.now(), offering=offering).count()
    if not count:
        return None
    people = "customer" if count == 1 else "customers"
    return (
        f"Turning on the value question emails {count} {people} of {offering.name} who reached PoV in the "
        f"last {ASK_WITHIN.days} days, right after you save."
    )


# Asking: one set-based pass per drained batch ------------------------------------------------------


def on_engagements_changed(tenant: Tenant, messages: list[OutboxMessage]) -> None:
    """`engagement.changed` carries no list of engagements, so each batch asks the one query which
    engagements are due a confirmation; the outbox runs this inside a transaction."""
    if ask_for_confirmations(tenant=tenant):
        request_send(tenant)


def engagements_to_ask(now: datetime, offering: Offering | None = None) -> QuerySet[Engagement, tuple[uuid.UUID, str]]:
    """(engagement id, customer email) of every engagement that should be asked and was not yet; with
    `offering`, those of that offering that would be if it asked (whether it does yet or not).

    Keyed on the PoV milestone's reach, not on status: with requires_satisfaction the status is not
    "reached" until the customer answers. A customer who already answered (say, through the CRM and
    the API) or an engagement that was lost is not asked.
    """
    pov_reached = MilestoneReach.objects.filter(
        engagement=OuterRef("pk"), milestone__is_pov=True, reached_at__gte=now - ASK_WITHIN
    )
    asked = ValueConfirmation.objects.filter(engagement=OuterRef("pk"))
    answered = Event.objects.filter(engagement=OuterRef("pk"), type=EventType.SATISFACTION)
    which = Q(offering=offering) if offering else Q(offering__confirm_value=True)
    return (
        Engagement.objects.filter(which, Exists(pov_reached))
        .exclude(customer__email="")
        .exclude(status=Status.LOST)
        .exclude(Exists(asked))
        .exclude(Exists(answered))
        .values_list("id", "customer__email")
        .order_by()  # no sort: Engagement's default ordering would cost one for nothing
    )


def ask_for_confirmations(*, tenant: Tenant, now: datetime | None = None) -> int:
    """Insert the missing confirmations (two queries, however many engagements). Returns how many
    were due; a concurrent run's rows win the unique constraint and ours are dropped."""
    now = now or timezone.now()
    rows = [
        ValueConfirmation(tenant=tenant, engagement_id=engagement_id, email=email, claimed_at=now)
        for engagement_id, email in engagements_to_ask(now)
    ]
    if rows:
        ValueConfirmation.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def request_send(tenant: Tenant) -> None:
    from notify.confirmation_tasks import send_confirmations  # the tasks import this module

    enqueue_on_commit(send_confirmations, tenant_id=str(tenant.pk))


# Sending: claim, then SMTP, then mark ---------------------------------------------------------------


@dataclass(frozen=True)
class SendOutcome:
    sent: int = 0
    failed: int = 0
    retry_in: timedelta | None = None  # when the earliest failed one may be tried again


def retry_delay(attempts: int) -> timedelta:
    return timedelta(minutes=min(4 ** (attempts - 1), 360))


def due_for_sending(now: datetime) -> QuerySet[ValueConfirmation]:
    """Unsent and unclaimed (never tried, or released after an SMTP exception and past its backoff).
    A claim that was never released (the process died mid-send) is left alone: it may have gone out,
    and never twice beats once."""
    retry_due = Q(attempts=0)
    for attempts in range(1, MAX_ATTEMPTS):
        retry_due |= Q(attempts=attempts, claimed_at__lte=now - retry_delay(attempts))
    return ValueConfirmation.objects.filter(retry_due, sent_at=None, claim_token=None)


def send_pending(*, tenant: Tenant, now: datetime | None = None) -> SendOutcome:
    """Send every due confirmation of the tenant. Must run outside a transaction: each claim commits
    before its SMTP call."""
    now = now or timezone.now()
    due = list(due_for_sending(now).select_related("engagement__offering").order_by("claimed_at")[:SEND_BATCH])
    sent = failed = 0
    retry_in: timedelta | None = None
    for confirmation in due:
        result = _send_one(tenant, confirmation, now)
        if result is True:
            sent += 1
        elif result is False:
            failed += 1
            if confirmation.attempts + 1 < MAX_ATTEMPTS:
                delay = retry_delay(confirmation.attempts + 1)
                retry_in = min(retry_in or delay, delay)
    return SendOutcome(sent=sent, failed=failed, retry_in=retry_in)


def _send_one(tenant: Tenant, confirmation: ValueConfirmation, now: datetime) -> bool | None:
    """True sent, False failed (released for a retry), None claimed by someone else."""
    message = confirmation_email(tenant, confirmation)  # rendered first: a template error claims nothing
    token = uuid.uuid4()
    claimed = ValueConfirmation.objects.filter(
        pk=confirmation.pk, sent_at=None, claim_token=None, attempts=confirmation.attempts
    ).update(claim_token=token, claimed_at=now)
    if claimed != 1:
        return None
    claim = ValueConfirmation.objects.filter(pk=confirmation.pk, claim_token=token)
    connection = get_connection()
    try:
        connection.open()
        connection.send_messages([message])
    except Exception as exc:  # noqa: BLE001 - any exception from the SMTP call means "not accepted"
        log.warning("value confirmation %s: sending failed: %r", confirmation.pk, exc)
        claim.update(claim_token=None, claimed_at=now, attempts=F("attempts") + 1, last_error=repr(exc)[:2000])
        return False
    else:
        claim.update(sent_at=timezone.now(), attempts=F("attempts") + 1, last_error="")
        return True
    finally:
        _close_quietly(connection)


def _close_quietly(connection: BaseEmailBackend) -> None:
    try:
        connection.close()
    except Exception:  # the message was accepted (or not) before QUIT; its row already says which
        log.debug("closing the SMTP connection failed", exc_info=True)


def confirmation_email(tenant: Tenant, confirmation: ValueConfirmation) -> EmailMultiAlternatives:
    context = {
        "company": tenant.name,
        "offering": confirmation.engagement.offering.name,
        "links": [
            {"score": score, "label": SCORE_LABELS[score], "url": answer_url(confirmation, score)} for score in SCORES
        ],
        "max_age_days": TOKEN_MAX_AGE.days,
    }
    headers = {"Auto-Submitted": "auto-generated"}
    return email_from_templates("notify/confirmation", context, tenant=tenant, to=[confirmation.email], headers=headers)


# Links: signed, expiring, no login --------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    tenant_id: str
    confirmation_id: str
    score: int


def make_token(confirmation: ValueConfirmation, score: int) -> str:
    payload = {"t": str(confirmation.tenant_id), "c": str(confirmation.pk), "s": score}
    return signing.dumps(payload, salt=TOKEN_SALT)


def answer_url(confirmation: ValueConfirmation, score: int) -> str:
    return absolute("value-confirmation", make_token(confirmation, score))


def read_token(token: str) -> Answer:
    """The answer a link carries. Raises signing.SignatureExpired after TOKEN_MAX_AGE and
    signing.BadSignature for anything tampered with or malformed."""
    data = signing.loads(token, salt=TOKEN_SALT, max_age=TOKEN_MAX_AGE)
    try:
        answer = Answer(str(uuid.UUID(data["t"])), str(uuid.UUID(data["c"])), data["s"])
    except (KeyError, TypeError, ValueError) as exc:
        raise signing.BadSignature("malformed value confirmation token") from exc
    if answer.score not in SCORES or isinstance(answer.score, bool):
        raise signing.BadSignature("score out of range")
    return answer


# Answers (inside the token's tenant scope) ---------------------------------------------------------------


def confirmation_answer(
    *,
    tenant: Tenant,
    confirmation: ValueConfirmation,
    score: int,
    criteria_met: dict[str, bool] | None = None,
    now: datetime | None = None,
) -> tuple[ValueConfirmation, bool]:
    """Record the customer's score (and their answer for each success criterion they answered) as a
    satisfaction event. The first answer wins: a later click records nothing and returns the stored answer.
    Returns (confirmation, recorded)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            ValueConfirmation.objects.select_for_update(of=("self",))
            .select_related("engagement")
            .get(pk=confirmation.pk)
        )
        if locked.answered_at is not None:
            return locked, False
        event_record(
            tenant=tenant, engagement=locked.engagement, type=EventType.SATISFACTION, score=score,
            criteria_met=criteria_met, occurred_at=now, actor=Actor.customer(locked.email),
            # Stable per confirmation: even a bypass of the lock above could not record two answers.
            external_id=_answer_event_id(locked), now=now,
        )  # fmt: skip
        locked.answered_at, locked.score = now, score
        locked.save(update_fields=["answered_at", "score"])
    return locked, True


def answered_criteria(confirmation: ValueConfirmation) -> dict[str, bool]:
    """What the customer answered for each success criterion with this confirmation ({} if nothing)."""
    event = Event.objects.filter(external_id=_answer_event_id(confirmation)).only("criteria_met").first()
    return (event.criteria_met or {}) if event else {}


def _answer_event_id(confirmation: ValueConfirmation) -> str:
    return f"value-confirmation-{confirmation.pk}"


def confirmation_comment(*, tenant: Tenant, confirmation: ValueConfirmation, comment: str | None) -> bool:
    """Keep the customer's first comment and add it to the engagement's timeline. Returns whether it
    was kept (False when empty or when a comment is already there)."""
    comment = (comment or "").strip()[:4000]
    if not comment:
        return False
    with transaction.atomic():
        if not ValueConfirmation.objects.filter(pk=confirmation.pk, comment="").update(comment=comment):
            return False
        body = f"Customer's comment with the value confirmation:\n{comment}"
        note_add(tenant=tenant, engagement=confirmation.engagement, body=body, actor=Actor.customer(confirmation.email))
    return True
