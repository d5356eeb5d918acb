from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tenants.models import Role, Tenant
from tenants.services import generate_password, member_add, tenant_create
from tenants.web import error_messages


class Command(BaseCommand):
    help = "Create a tenant and its first admin (the password is generated and printed when omitted)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password")
        parser.add_argument("--time-zone", default="UTC")

    def handle(self, slug, name, admin_email, admin_password, time_zone, **options):
        if Tenant.objects.filter(slug=slug).exists():
            raise CommandError(f"A tenant with slug {slug!r} already exists.")
        password = admin_password or generate_password()
        try:
            with transaction.atomic():
                tenant = tenant_create(slug=slug, name=name, time_zone=time_zone)
                member, created = member_add(tenant=tenant, email=admin_email, role=Role.ADMIN, password=password)
        except ValidationError as exc:
            raise CommandError("; ".join(error_messages(exc))) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Created tenant {tenant.slug} ({tenant.name}), time zone {tenant.time_zone}.")
        )
        if created:
            shown = password if not admin_password else "(as given)"
            self.stdout.write(f"Admin: {member.user.email}  password: {shown}")
        else:
            self.stdout.write(f"Admin: {member.user.email} (existing user, password unchanged)")
