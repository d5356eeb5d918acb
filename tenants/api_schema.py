"""OpenAPI descriptions of the API's authentication (imported in TenantsConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api_base.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A tenant's API key: `Authorization: Bearer pov_...`. Read keys may only GET.",
        }


class MemberSessionScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api_base.MemberSessionAuthentication"
    name = "memberSession"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "A signed-in member (browsable API).",
        }
