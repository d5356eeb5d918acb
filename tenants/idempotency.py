"""Idempotency-Key for POSTs, with Stripe's semantics (the API reference at /api/docs/).

The key is claimed with an INSERT in its own transaction before the work runs, so two concurrent
requests with one key cannot both run (the loser gets 409 while the first is in flight). A finished
request's status and body are replayed for 24 h; the same key with another body is 422.
"""

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from pov.api_errors import ConflictError, IdempotencyMismatch
from tenants.models import IdempotencyKey, Tenant

KEEP_FOR = timedelta(hours=24)
# A claim this old with no response belongs to a request that died; it may be claimed again.
ABANDONED_AFTER = timedelta(minutes=5)
MAX_KEY_LENGTH = 255


def request_hash(request: Request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(request.path.encode())
    digest.update(b"\0")
    digest.update(request.body)
    return digest.hexdigest()


def _claim(
    tenant: Tenant, key: str, fingerprint: str, now: datetime
) -> tuple[IdempotencyKey | None, IdempotencyKey | None]:
    """Returns (claim, stored): our new claim, or the stored row that already holds the key."""
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(tenant=tenant, key=key, request_hash=fingerprint), None
    except IntegrityError:
        stored = IdempotencyKey.objects.filter(key=key).first()
        if stored is None:
            return _claim(tenant, key, fingerprint, now)
        expired = stored.created_at < now - KEEP_FOR
        abandoned = stored.completed_at is None and stored.created_at < now - ABANDONED_AFTER
        if expired or abandoned:
            # Reclaim conditionally: only one of two racing requests deletes it.
            if IdempotencyKey.objects.filter(pk=stored.pk, created_at=stored.created_at).delete()[0]:
                return _claim(tenant, key, fingerprint, now)
            return _claim(tenant, key, fingerprint, now)
        return None, stored


def run_idempotently(request: Request, tenant: Tenant, key: str, handler: Callable[[], Response]) -> Response:
    """Run `handler()` at most once per (tenant, key); replay its response afterwards."""
    if len(key) > MAX_KEY_LENGTH or not key.strip():
        raise exceptions.ValidationError({"Idempotency-Key": [f"Use 1 to {MAX_KEY_LENGTH} characters."]})
    fingerprint = request_hash(request)
    claim, stored = _claim(tenant, key, fingerprint, timezone.now())
    if stored is not None:
        if stored.request_hash != fingerprint:
            raise IdempotencyMismatch()
        if stored.completed_at is None:
            raise ConflictError("A request with this Idempotency-Key is still in progress; retry shortly.")
        response = Response(stored.response_body, status=stored.status_code)
        response["Idempotent-Replayed"] = "true"
        return response
    assert claim is not None  # no stored row: this request holds the claim
    try:
        response = handler()
    except Exception:
        claim.delete()
        raise
    if response.status_code >= 500:
        claim.delete()
    else:
        IdempotencyKey.objects.filter(pk=claim.pk).update(
            status_code=response.status_code, response_body=response.data, completed_at=timezone.now()
        )
    return response


def purge_expired(now: datetime | None = None) -> int:
    """Delete keys older than 24 h (tenants.tasks.purge_idempotency_keys, inside each tenant's scope)."""
    return IdempotencyKey.objects.filter(created_at__lt=(now or timezone.now()) - KEEP_FOR).delete()[0]
