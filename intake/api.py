"""/api/v1/connections/: set connections up by script, as Settings → Connections does. Admins only: a key
with the admin scope, or a signed-in admin. An analytics source's write key is in the answer that
created it, and never again."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from intake import services
from intake.models import Connection, Kind
from tenants.api_base import TenantAPIView, TenantScopePermission
from tenants.models import ADMIN_ONLY, ApiScope
from tenants.scoping import get_or_404

ConnectionIn = inline_serializer(
    "ConnectionIn",
    {
        "kind": serializers.ChoiceField(choices=Kind.values),
        "name": serializers.CharField(),
        "mapping": serializers.DictField(help_text="By kind: README, 'Connect Stripe / HubSpot / your analytics'."),
        "enabled": serializers.BooleanField(required=False),
        "secret": serializers.CharField(required=False, help_text="Stripe's signing or HubSpot's client secret."),
    },
)  # fmt: skip
ConnectionOut = inline_serializer(
    "ConnectionOut",
    {
        "id": serializers.UUIDField(), "kind": serializers.ChoiceField(choices=Kind.values),
        "name": serializers.CharField(), "mapping": serializers.DictField(), "enabled": serializers.BooleanField(),
        "url": serializers.URLField(help_text="Where the vendor sends; an analytics source's host."),
        "secret": serializers.CharField(required=False, help_text="An analytics source's write key: on create only."),
        "has_secret": serializers.BooleanField(), "created_at": serializers.DateTimeField(),
    },
)  # fmt: skip


ConnectionList = inline_serializer(
    "ConnectionList",
    {"results": serializers.ListField(child=ConnectionOut), "next": serializers.URLField(allow_null=True)},
)


class AdminsOnly(permissions.BasePermission):
    """Reading a connection shows where a company's billing and CRM send: admins, or admin-scope keys."""

    message = "Connections need an API key with the admin scope, or a signed-in admin."

    def has_permission(self, request, view):
        role = getattr(request, "_pov_role", None)
        if role is None:
            return getattr(request, "_pov_scope", None) == ApiScope.ADMIN
        return role in ADMIN_ONLY


def receive_url(request: Request, connection: Connection) -> str:
    return request.build_absolute_uri(f"/in/{connection.tenant.slug}/{connection.pk}")


def shown(request: Request, connection: Connection, *, secret: str | None = None) -> dict:
    out = {
        "id": connection.pk, "kind": connection.kind, "name": connection.name, "mapping": connection.mapping,
        "enabled": connection.enabled, "url": receive_url(request, connection), "has_secret": bool(connection.secret),
        "created_at": connection.created_at,
    }  # fmt: skip
    return out | ({"secret": secret} if secret else {})


class ConnectionViewSet(TenantAPIView, viewsets.ViewSet):
    permission_classes = [TenantScopePermission, AdminsOnly]
    write_roles = ADMIN_ONLY

    def _connection(self, pk: str) -> Connection:
        return get_or_404(Connection.objects.select_related("tenant"), pk=pk)

    @extend_schema(summary="The company's connections", responses={200: ConnectionList})
    def list(self, request):
        connections = Connection.objects.select_related("tenant")
        return Response({"results": [shown(request, c) for c in connections], "next": None})

    @extend_schema(summary="Connect Stripe, HubSpot or an analytics source", request=ConnectionIn,
                   responses={201: ConnectionOut})  # fmt: skip
    def create(self, request):
        data = request.data
        connection = services.connection_create(
            tenant=self.tenant, actor=self.actor, kind=data.get("kind"), name=data.get("name"),
            mapping=data.get("mapping"), secret=data.get("secret"), enabled=data.get("enabled", True) is not False,
        )  # fmt: skip
        shown_secret = connection.secret if connection.kind == Kind.SEGMENT else None
        return Response(shown(request, connection, secret=shown_secret), status=status.HTTP_201_CREATED)

    @extend_schema(summary="A connection", responses={200: ConnectionOut})
    def retrieve(self, request, pk=None):
        return Response(shown(request, self._connection(pk)))

    @extend_schema(summary="Change a connection's name, mapping, switch or secret", request=ConnectionIn,
                   responses={200: ConnectionOut})  # fmt: skip
    def partial_update(self, request, pk=None):
        connection = self._connection(pk)
        given = {k: request.data[k] for k in ("name", "mapping", "enabled", "secret") if k in request.data}
        unknown = sorted(set(request.data) - set(given))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        services.connection_update(tenant=self.tenant, connection=connection, actor=self.actor, **given)
        return Response(shown(request, connection))

    @extend_schema(summary="Delete a connection and its log", responses={204: None})
    def destroy(self, request, pk=None):
        services.connection_delete(tenant=self.tenant, connection=self._connection(pk), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)
