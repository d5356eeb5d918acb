"""The API's tenancy: key or member authentication, scope permissions, per-key throttling, and
the base view that runs every handler inside the tenant's scope (DESIGN.md rules 2, 4, 7)."""

import logging
import time
from contextlib import ExitStack

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework import exceptions, permissions, throttling
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from tenants.actors import Actor
from tenants.api_keys import api_key_lookup
from tenants.forms import client_ip
from tenants.idempotency import run_idempotently
from tenants.models import ACTING_ROLES, ApiScope, Role, Tenant
from tenants.scoping import membership_for, memberships_of, tenant_scope

log = logging.getLogger(__name__)


class ApiPrincipal:
    """request.user for a key: authenticated, never staff, named for logs."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def __init__(self, key):
        self.key = key
        self.pk = None

    def __str__(self):
        return f"api key {self.key.prefix}"


def _bind(request, tenant, scope, actor, throttle_id, role=None):
    request._pov_tenant = tenant
    request._pov_scope = scope
    request._pov_actor = actor
    request._pov_throttle_id = throttle_id
    request._pov_role = role  # a signed-in member's; None for an API key, whose scope decides


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        keyword, _, raw = header.partition(" ")
        if keyword != self.keyword or not raw.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        refuse_guessing(request)
        key = api_key_lookup(raw.strip())
        if key is None:
            note_bad_key(request)
            raise exceptions.AuthenticationFailed("This API key is not valid or has been revoked.")
        _bind(request, key.tenant, key.scope, Actor.for_api_key(key), f"key:{key.pk}")
        return ApiPrincipal(key), key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class MemberSessionAuthentication(SessionAuthentication):
    """A signed-in member using the browsable API: the tenant is `?tenant=<slug>`, the one they
    last opened, or their only one. Their role decides what they may write, as on the pages."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        member = self._member(request, user)
        if member is None:
            raise exceptions.NotFound("Choose a tenant you belong to with ?tenant=<slug>.")
        scope = ApiScope.WRITE if member.can_act else ApiScope.READ
        _bind(request, member.tenant, scope, Actor.for_member(member), f"member:{member.pk}", member.role)
        return result

    def _member(self, request, user):
        slug = request.query_params.get("tenant") or request.session.get("tenant_slug")
        if slug:
            tenant = Tenant.objects.filter(slug=slug).first()
            return membership_for(user, tenant) if tenant else None
        memberships = list(memberships_of(user)[:2])
        return memberships[0] if len(memberships) == 1 else None


class TenantScopePermission(permissions.BasePermission):
    """Deny by default: a tenant is required; writes need a key with the write scope, or a member whose
    role is among the view's `write_roles` (the roles its page allows)."""

    message = "This API key has the read scope; writing needs a key with the write scope."

    def has_permission(self, request, view):
        if getattr(request, "_pov_tenant", None) is None:
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        role = request._pov_role
        if role is None:
            return request._pov_scope in (ApiScope.WRITE, ApiScope.ADMIN)
        if role in view.write_roles:
            return True
        self.message = f"Your role ({Role(role).label}) cannot make this change; ask an admin of the company."
        return False


class KeyRateThrottle(throttling.BaseThrottle):
    """A fixed-window counter per key in the cache (Redis when REDIS_URL is set): one INCR a request."""

    def allow_request(self, request, view):
        ident = getattr(request, "_pov_throttle_id", None)
        if ident is None:
            return True
        self._wait = seconds_over_limit(request._pov_tenant.pk, ident)
        return self._wait is None

    def wait(self):
        return self._wait


def seconds_over_limit(tenant_id, ident):
    """None while `ident` (an API key, a connection) of the tenant is within API_RATE_LIMIT; else the whole
    seconds until its window ends."""
    limit, window = settings.API_RATE_LIMIT
    now = time.time()
    bucket = int(now // window)
    try:
        count = count_in_window(f"throttle:{tenant_id}:{ident}:{bucket}", window)
    except (RedisError, OSError):
        # Fail open: the limiter guards capacity, and a write must never fail because Redis is down.
        log.warning("rate limiter unavailable; request allowed", exc_info=True)
        return None
    return None if count <= limit else max(1, round((bucket + 1) * window - now))


def count_in_window(cache_key, window):
    """This request's number in its window: the window's first request ADDs its key (which expires
    with the window), the others INCR it."""
    if cache.add(cache_key, 1, timeout=window + 5):
        return 1
    try:
        return cache.incr(cache_key)
    except ValueError:  # the key expired between the two calls
        cache.add(cache_key, 1, timeout=window + 5)
        return 1


def _bad_key_bucket(request):
    limit, window = settings.API_BAD_KEY_LIMIT
    now = time.time()
    return f"badkey:{client_ip(request)}:{int(now // window)}", limit, window, (int(now // window) + 1) * window - now


def refuse_guessing(request):
    """A client address that sent API_BAD_KEY_LIMIT unknown keys in the window gets 429 until it ends,
    before any lookup: keys cannot be guessed at the speed of the server."""
    cache_key, limit, _, wait = _bad_key_bucket(request)
    try:
        failed = cache.get(cache_key, 0)
    except (RedisError, OSError):
        return
    if failed >= limit:
        raise exceptions.Throttled(wait=max(1, round(wait)))


def note_bad_key(request):
    cache_key, _, window, _ = _bad_key_bucket(request)
    try:
        count_in_window(cache_key, window)
    except (RedisError, OSError):
        log.warning("bad-key counter unavailable", exc_info=True)


def refuse_nul_in_query(request):
    """PostgreSQL cannot compare text with a NUL character: name such parameters as invalid (400)."""
    bad = sorted(
        name for name, values in request.query_params.lists() if "\x00" in name or any("\x00" in v for v in values)
    )
    if bad:
        raise exceptions.ValidationError({name: ["Must not contain NUL characters."] for name in bad})


def refuse_nul_in_path(kwargs):
    """An id holding a NUL names nothing we could store: the same 404 as any absent object."""
    if any("\x00" in str(value) for value in kwargs.values()):
        raise exceptions.NotFound("Not found.")


class TenantAPIView:
    """Mixin for every API view: authentication first, then the handler inside the tenant scope,
    with POSTs made idempotent by the Idempotency-Key header."""

    authentication_classes = [ApiKeyAuthentication, MemberSessionAuthentication]
    permission_classes = [TenantScopePermission]
    throttle_classes = [KeyRateThrottle]
    # The roles whose members may write here through a session (tenants.models says who may change what).
    write_roles = ACTING_ROLES

    @property
    def tenant(self):
        return self.request._pov_tenant

    @property
    def actor(self):
        return self.request._pov_actor

    def dispatch(self, request, *args, **kwargs):
        # DRF's APIView.dispatch, with the scope entered after authentication and the idempotency
        # wrapper around the handler.
        self.args, self.kwargs = args, kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        with ExitStack() as stack:
            try:
                self.initial(request, *args, **kwargs)
                refuse_nul_in_query(request)
                refuse_nul_in_path(kwargs)
                stack.enter_context(tenant_scope(request._pov_tenant))
                response = self._run_handler(request, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - DRF turns it into an error response
                response = self.handle_exception(exc)
            self.response = self.finalize_response(request, response, *args, **kwargs)
            # Render here, inside the scope: the browsable API's forms query tenant-owned rows.
            if hasattr(self.response, "render"):
                self.response.render()
        return self.response

    def _run_handler(self, request, *args, **kwargs):
        method = request.method.lower()
        handler = getattr(self, method, None) if method in self.http_method_names else None
        handler = handler or self.http_method_not_allowed
        key = request.headers.get("Idempotency-Key")
        if method == "post" and key is not None:
            if "\x00" in key:  # PostgreSQL cannot store it: refuse it like an overlong key
                raise exceptions.ValidationError({"Idempotency-Key": ["Must not contain NUL characters."]})
            return run_idempotently(request, self.tenant, key, lambda: handler(request, *args, **kwargs))
        return handler(request, *args, **kwargs)


class CursorPage(CursorPagination):
    """`{"results": [...], "next": url|null}` (the API reference at /api/docs/)."""

    page_size = 100
    max_page_size = 500
    page_size_query_param = "limit"
    ordering = "-created_at"

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {"results": schema, "next": {"type": "string", "format": "uri", "nullable": True}},
        }
