from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self):
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from tenants import api_schema, checks, rls  # noqa: F401 - register the OpenAPI auth extensions and checks

        connection_created.connect(rls.install, dispatch_uid="tenants.rls.install")
        post_migrate.connect(rls.grant_application_role, sender=self, dispatch_uid="tenants.rls.grant")
