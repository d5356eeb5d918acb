from django.core.management.base import BaseCommand, CommandError

from tenants.actors import Actor
from tenants.api_keys import api_key_create
from tenants.models import ApiKey, ApiScope, Tenant
from tenants.scoping import tenant_scope


class Command(BaseCommand):
    help = "Create an API key for a tenant. The key is printed once, alone on the last line; only its hash is kept."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--name", required=True, help="What the key is for, e.g. 'Salesforce sync'.")
        parser.add_argument("--scope", choices=ApiScope.values, default=ApiScope.READ)

    def handle(self, tenant, name, scope, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        with tenant_scope(found):
            if ApiKey.objects.filter(name=name).exists():
                raise CommandError(f"Tenant {tenant!r} already has a key named {name!r}.")
            key, raw = api_key_create(tenant=found, name=name, scope=scope, actor=Actor.system("create_api_key"))
        self.stdout.write(
            f"Created {scope} key {key.prefix}… '{name}' for {found.slug}. Store it now; it is not shown again:"
        )
        self.stdout.write(raw)
