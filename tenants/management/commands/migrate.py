"""`migrate` as the table owner (DATABASE_OWNER_URL): the application's own role owns no tables."""

from django.core.management.commands.migrate import Command as DjangoMigrate

from tenants.rls import as_owner


class Command(DjangoMigrate):
    def handle(self, *args, **options):
        with as_owner(options["database"]):
            return super().handle(*args, **options)
