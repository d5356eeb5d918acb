"""The outbox: the record publishes, it never calls the apps that react (DESIGN.md).

`publish` appends rows in the caller's transaction and asks, on commit, for a drain of that
tenant (debounced: one drain takes every pending row, so a burst of writes needs only a few).
`drain` claims pending rows with a conditional UPDATE, hands each to the handlers registered for its
kind, and marks it handled. Handlers must be idempotent: a drain that dies
between handling and marking leaves the row to be handled again after the claim expires.
"""

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from engagement.models import OutboxMessage
from engagement.sql import array, table
from tenants.models import Tenant

log = logging.getLogger(__name__)

# Kinds the record publishes.
REACHED_POV = "engagement.reached_pov"
STALLED = "engagement.stalled"
LOST = "engagement.lost"
REOPENED = "engagement.reopened"  # a lost engagement taken back
CHANGED = "engagement.changed"  # any change metrics should see

# A message about many engagements or alerts names them in a list ({"engagements": [...]},
# {"alerts": [...]}) of at most LIST_SIZE, so a scan or a batch that moves hundreds writes a row or two,
# and what one drained batch asks of a handler stays bounded.
LIST_SIZE = 200
LISTS = {"engagement": "engagements", "alert": "alerts"}

CLAIM_TIMEOUT = timedelta(minutes=5)
BATCH_SIZE = 200
MAX_ATTEMPTS = 20
# Handled rows are kept this long (what was published, for a look in the admin), then purged by beat.
KEEP_HANDLED = timedelta(days=7)
PURGE_BATCH = 10_000

_handlers: defaultdict[str, list[Callable]] = defaultdict(list)
_batch_handlers: defaultdict[str, list[Callable]] = defaultdict(list)


def register(kind: str, handler: Callable, *, batch: bool = False) -> None:
    """Called from an AppConfig.ready(): `handler(message)` runs for every message of `kind`; with
    batch=True, `handler(tenant, messages)` runs once per drained batch (for work that only needs
    to happen once however many writes asked for it, like re-syncing alerts)."""
    registry = _batch_handlers if batch else _handlers
    if handler not in registry[kind]:
        registry[kind].append(handler)


def unregister(kind: str, handler: Callable) -> None:
    for registry in (_handlers, _batch_handlers):
        if handler in registry[kind]:
            registry[kind].remove(handler)


PUBLISH = """
INSERT INTO {outbox} (tenant_id, kind, payload, created_at, attempts, last_error)
SELECT %(tenant)s, kind, payload::jsonb, now(), 0, ''
FROM unnest({kinds}::text[], {payloads}::text[]) AS v(kind, payload)
RETURNING id
"""


def publish(tenant: Tenant, messages: Iterable[tuple[str, dict | None]]) -> list[int]:
    """Append (kind, payload) messages with one INSERT (every writer publishes through here); their ids."""
    messages = list(messages)
    if not messages:
        return []
    kinds, payloads = [kind for kind, _ in messages], [json.dumps(payload or {}) for _, payload in messages]
    sql = PUBLISH.format(outbox=table(OutboxMessage), kinds=array("kinds"), payloads=array("payloads"))
    with connection.cursor() as cursor:
        cursor.execute(sql, {"tenant": tenant.pk, "kinds": kinds, "payloads": payloads})
        ids = [row[0] for row in cursor.fetchall()]
    request_drain(tenant)
    return ids


def listed(kind: str, subject: str, ids: Iterable[object], common: dict | None = None) -> list[tuple[str, dict]]:
    """(kind, payload) items naming `ids` as `subject`s ("engagement" or "alert"), LIST_SIZE a row; each
    payload also carries `common` (e.g. the transition). Nothing for no ids."""
    ids = [str(i) for i in ids]
    key, common = LISTS[subject], common or {}
    return [(kind, {key: ids[i : i + LIST_SIZE], **common}) for i in range(0, len(ids), LIST_SIZE)]


def subjects(message: OutboxMessage) -> list[dict]:
    """The message as one payload per subject, in list order: {"engagement": id, **common} for each id
    of {"engagements": [...], **common}. A payload without a list (a row published before lists, or
    one about no subject) is its own."""
    for subject, key in LISTS.items():
        if key in message.payload:
            common = {k: v for k, v in message.payload.items() if k != key}
            return [{subject: i, **common} for i in message.payload[key]]
    return [message.payload]


# One drain handles every pending row of a tenant, so writes ask for at most about one a second per process.
DRAIN_WINDOW = 1.0


def request_drain(tenant: Tenant) -> None:
    from engagement.tasks import drain_outbox
    from pov.enqueue import enqueue_debounced_on_commit

    enqueue_debounced_on_commit(drain_outbox, key=("drain_outbox", tenant.pk), window=DRAIN_WINDOW,
                                tenant_id=str(tenant.pk))  # fmt: skip


def _claim(tenant: Tenant, now: datetime) -> tuple[uuid.UUID, list[OutboxMessage]]:
    """Claim up to BATCH_SIZE pending rows for this drain; returns the token and the rows."""
    token = uuid.uuid4()
    pending = (
        OutboxMessage.objects.filter(tenant=tenant, handled_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
        .exclude(claimed_at__gt=now - CLAIM_TIMEOUT)
        .order_by("id")
        .values_list("id", flat=True)[:BATCH_SIZE]
    )
    ids = list(pending)
    if not ids:
        return token, []
    # Conditional: a row another drain claimed between our SELECT and this UPDATE is skipped.
    OutboxMessage.objects.filter(id__in=ids, handled_at__isnull=True).exclude(
        claimed_at__gt=now - CLAIM_TIMEOUT
    ).update(claim_token=token, claimed_at=now)
    return token, list(OutboxMessage.objects.filter(id__in=ids, claim_token=token).order_by("id"))


def _handle(message: OutboxMessage) -> None:
    for handler in list(_handlers[message.kind]):
        handler(message)


def _release(message: OutboxMessage, token: uuid.UUID, exc: Exception) -> None:
    """Give up the claim after a failure. claimed_at stays set, so the message is retried only after
    CLAIM_TIMEOUT (a later drain), not again and again by this one."""
    OutboxMessage.objects.filter(id=message.id, claim_token=token).update(
        claim_token=None, attempts=message.attempts + 1, last_error=repr(exc)[:2000]
    )


def _run_batch_handlers(tenant: Tenant, messages: list[OutboxMessage], token: uuid.UUID) -> list[OutboxMessage]:
    """Batch handlers first; the messages of a kind whose batch handler failed are released."""
    failed = set()
    by_kind = defaultdict(list)
    for message in messages:
        by_kind[message.kind].append(message)
    for kind, group in by_kind.items():
        for handler in list(_batch_handlers[kind]):
            try:
                with transaction.atomic():
                    handler(tenant, group)
            except Exception as exc:
                log.exception("outbox batch handler %s for %s failed", handler, kind)
                for message in group:
                    _release(message, token, exc)
                failed.add(kind)
                break
    return [m for m in messages if m.kind not in failed]


def drain(tenant: Tenant, *, limit_batches: int = 50) -> int:
    """Hand pending messages of one tenant to their handlers. Returns how many were handled."""
    handled = 0
    for _ in range(limit_batches):
        token, messages = _claim(tenant, timezone.now())
        if not messages:
            break
        for message in _run_batch_handlers(tenant, messages, token):
            try:
                with transaction.atomic():
                    _handle(message)
                    OutboxMessage.objects.filter(id=message.id, claim_token=token).update(
                        handled_at=timezone.now(), attempts=message.attempts + 1
                    )
                handled += 1
            except Exception as exc:
                log.exception("outbox message %s (%s) failed", message.id, message.kind)
                _release(message, token, exc)
    return handled


def purge_handled(tenant: Tenant, now: datetime | None = None) -> int:
    """Delete the rows handled more than KEEP_HANDLED ago, PURGE_BATCH a statement so a large backlog
    never holds long locks. Rows never handled (pending, or given up after MAX_ATTEMPTS) stay.
    Returns how many were deleted."""
    old = OutboxMessage.objects.filter(tenant=tenant, handled_at__lt=(now or timezone.now()) - KEEP_HANDLED)
    purged = 0
    while deleted := OutboxMessage.objects.filter(id__in=old.values("id")[:PURGE_BATCH]).delete()[0]:
        purged += deleted
    return purged
