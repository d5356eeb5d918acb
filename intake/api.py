"""/api/v1/connections/: set connections up by script, as Settings → Connections does. Admins only: a key
with the admin scope, or a signed-in admin. An analytics source's write key is in the answer that
created it, and never again. A chat channel (kind `chat`) is notify's: an endpoint whose deliveries are
chat messages, on the same delivery log as webhooks."""

import uuid

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from intake import services
from intake.models import Connection, Kind
from notify import webhooks
from notify.models import EndpointFormat, WebhookEndpoint
from tenants.api_base import TenantAPIView, TenantScopePermission
from tenants.models import ADMIN_ONLY, ApiScope
from tenants.scoping import get_or_404

CHAT = "chat"
CONNECTION_KINDS = [*Kind.values, CHAT]
ConnectionIn = inline_serializer(
    "ConnectionIn",
    {
        "kind": serializers.ChoiceField(choices=CONNECTION_KINDS),
        "name": serializers.CharField(),
        "mapping": serializers.DictField(help_text="By kind: README, 'Connect Stripe / HubSpot / your analytics'."),
        "enabled": serializers.BooleanField(required=False),
        "secret": serializers.CharField(required=False, help_text="Stripe's signing or HubSpot's client secret."),
    },
)  # fmt: skip
ConnectionOut = inline_serializer(
    "ConnectionOut",
    {
        "id": serializers.UUIDField(), "kind": serializers.ChoiceField(choices=CONNECTION_KINDS),
        "name": serializers.CharField(), "mapping": serializers.DictField(), "enabled": serializers.BooleanField(),
        "url": serializers.URLField(allow_null=True, help_text="Where the vendor sends; an analytics source's host."),
        "secret": serializers.CharField(required=False, help_text="An analytics source's write key: on create only."),
        "has_secret": serializers.BooleanField(), "created_at": serializers.DateTimeField(),
    },
)  # fmt: skip


ConnectionList = inline_serializer(
    "ConnectionList",
    {"results": serializers.ListField(child=ConnectionOut), "next": serializers.URLField(allow_null=True)},
)


FIELDS = frozenset({"kind", "name", "mapping", "enabled", "secret"})


def _body(request: Request, allowed: frozenset) -> dict:
    """The JSON object sent, with only the fields named; text where text is due."""
    data = request.data
    if not isinstance(data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Send a JSON object."]})
    errors = {name: ["Unknown field."] for name in sorted(set(data) - allowed)}
    errors |= {f: ["Give text."] for f in ("kind", "name", "secret") if f in data and not isinstance(data[f], str)}
    if "enabled" in data and not isinstance(data["enabled"], bool):
        errors["enabled"] = ["true or false."]
    if errors:
        raise serializers.ValidationError(errors)
    return dict(data)


def _chat_mapping(data: dict) -> dict:
    """A chat channel's mapping {"url", "events"}; its URL is its key, so there is no other secret."""
    if "secret" in data:
        raise serializers.ValidationError({"secret": ["A chat channel's key is its URL, in the mapping."]})
    mapping = data.get("mapping", {})
    if not isinstance(mapping, dict) or set(mapping) - {"url", "events"}:
        raise serializers.ValidationError({"mapping": ['Give {"url": "https://hooks...", "events": [...]}.']})
    if "url" in mapping and not isinstance(mapping["url"], str):
        raise serializers.ValidationError({"mapping.url": ["Give the incoming webhook's address as text."]})
    if "events" in mapping and not isinstance(mapping["events"], list):
        raise serializers.ValidationError({"mapping.events": ["Give a list of events."]})
    return mapping


class AdminsOnly(permissions.BasePermission):
    """Reading a connection shows where a company's billing and CRM send: admins, or admin-scope keys."""

    message = "Connections need an API key with the admin scope, or a signed-in admin."

    def has_permission(self, request, view):
        role = getattr(request, "_pov_role", None)
        if role is None:
            return getattr(request, "_pov_scope", None) == ApiScope.ADMIN
        return role in ADMIN_ONLY


def chat_shown(endpoint: WebhookEndpoint) -> dict:
    """A chat channel in the shape of a connection; its URL (its key) only by host."""
    return {
        "id": endpoint.pk, "kind": CHAT, "name": endpoint.name, "enabled": endpoint.is_active, "url": None,
        "mapping": {"url": webhooks.shown_url(endpoint), "events": endpoint.events}, "has_secret": True,
        "created_at": endpoint.created_at,
    }  # fmt: skip


def chats():
    return WebhookEndpoint.objects.filter(format=EndpointFormat.CHAT)


def shown(connection: Connection, *, secret: str | None = None) -> dict:
    out = {
        "id": connection.pk, "kind": connection.kind, "name": connection.name, "mapping": connection.mapping,
        "enabled": connection.enabled, "url": services.address(connection), "has_secret": bool(connection.secret),
        "created_at": connection.created_at,
    }  # fmt: skip
    return out | ({"secret": secret} if secret else {})


class ConnectionViewSet(TenantAPIView, viewsets.ViewSet):
    permission_classes = [TenantScopePermission, AdminsOnly]
    write_roles = ADMIN_ONLY

    def get_queryset(self):
        # Also how the API's schema learns that a connection's id is a UUID.
        return Connection.objects.select_related("tenant")

    def _connection(self, pk: str) -> Connection | WebhookEndpoint:
        try:
            uuid.UUID(str(pk))
        except ValueError:
            raise Http404("Not found.") from None  # ids are UUIDs: anything else names nothing
        found = self.get_queryset().filter(pk=pk).first()
        return found or get_or_404(chats(), pk=pk)

    def _shown(self, found: Connection | WebhookEndpoint) -> dict:
        return chat_shown(found) if isinstance(found, WebhookEndpoint) else shown(found)

    @extend_schema(summary="The company's connections", responses={200: ConnectionList})
    def list(self, request):
        connections = [shown(c) for c in self.get_queryset()]
        channels = [chat_shown(e) for e in chats().order_by("created_at")]
        return Response({"results": connections + channels, "next": None})

    @extend_schema(summary="Connect Stripe, HubSpot or an analytics source", request=ConnectionIn,
                   responses={201: ConnectionOut})  # fmt: skip
    def create(self, request):
        data = _body(request, FIELDS)
        if data.get("kind") == CHAT:
            return Response(chat_shown(self._create_chat(data)), status=status.HTTP_201_CREATED)
        connection = services.connection_create(
            tenant=self.tenant, actor=self.actor, kind=data.get("kind"), name=data.get("name"),
            mapping=data.get("mapping"), secret=data.get("secret"), enabled=data.get("enabled", True) is not False,
        )  # fmt: skip
        shown_secret = connection.secret if connection.kind == Kind.SEGMENT else None
        return Response(shown(connection, secret=shown_secret), status=status.HTTP_201_CREATED)

    def _create_chat(self, data) -> WebhookEndpoint:
        mapping = _chat_mapping(data)
        endpoint, _ = webhooks.endpoint_create(
            tenant=self.tenant, actor=self.actor, url=mapping.get("url"), events=mapping.get("events"),
            format=EndpointFormat.CHAT, name=data.get("name") or "",
        )  # fmt: skip
        if data.get("enabled") is False:
            webhooks.endpoint_disable(tenant=self.tenant, endpoint=endpoint, actor=self.actor)
        return endpoint

    @extend_schema(summary="A connection", responses={200: ConnectionOut})
    def retrieve(self, request, pk=None):
        return Response(self._shown(self._connection(pk)))

    @extend_schema(summary="Change a connection's name, mapping, switch or secret", request=ConnectionIn,
                   responses={200: ConnectionOut})  # fmt: skip
    def partial_update(self, request, pk=None):
        connection = self._connection(pk)
        given = _body(request, FIELDS - {"kind"})
        if isinstance(connection, WebhookEndpoint):
            self._update_chat(connection, given)
        else:
            services.connection_update(tenant=self.tenant, connection=connection, actor=self.actor, **given)
        return Response(self._shown(connection))

    def _update_chat(self, endpoint: WebhookEndpoint, given: dict) -> None:
        mapping = _chat_mapping(given)
        url = mapping.get("url")
        if url == webhooks.shown_url(endpoint):
            url = None  # the shown (host-only) URL sent back as read: keep the stored one
        if {"name", "mapping"} & set(given):
            webhooks.endpoint_update(tenant=self.tenant, endpoint=endpoint, actor=self.actor, url=url,
                                     events=mapping.get("events"), name=given.get("name"))  # fmt: skip
        if given.get("enabled") is True:
            webhooks.endpoint_enable(tenant=self.tenant, endpoint=endpoint, actor=self.actor)
        elif given.get("enabled") is False:
            webhooks.endpoint_disable(tenant=self.tenant, endpoint=endpoint, actor=self.actor)

    @extend_schema(summary="Delete a connection and its log", responses={204: None})
    def destroy(self, request, pk=None):
        found = self._connection(pk)
        if isinstance(found, WebhookEndpoint):
            webhooks.endpoint_delete(tenant=self.tenant, endpoint=found, actor=self.actor)
        else:
            services.connection_delete(tenant=self.tenant, connection=found, actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)
