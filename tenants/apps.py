from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self):
        from tenants import api_schema  # noqa: F401 - registers the OpenAPI auth extensions
