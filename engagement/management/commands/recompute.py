from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from engagement.models import Engagement
from engagement.projections import derived_rebuilders, rebuild_all
from tenants.models import Tenant
from tenants.scoping import tenant_scope


class Command(BaseCommand):
    help = "Rebuild every derived row (engagement projections, then what apps derive from them) from the record."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Slug of one tenant (default: all).")

    def handle(self, tenant=None, **options):
        tenants = Tenant.objects.order_by("slug")
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant with slug {tenant!r}.")
        for each in tenants:
            with tenant_scope(each):
                self._recompute(each)

    def _recompute(self, tenant):
        engagements = Engagement.objects.all()
        total = engagements.count()
        with tqdm(total=total, desc=f"{tenant.slug}: projections", unit=" eng", file=self.stderr) as bar:
            rebuilt = rebuild_all(tenant, engagements, now=timezone.now(), progress=bar.update)
        for rebuild_derived in derived_rebuilders:
            rebuild_derived(tenant, progress_file=self.stderr)
        self.stdout.write(
            f"{tenant.slug}: {total} engagements checked, {rebuilt.changed} rows changed, "
            f"{len(rebuilt.transitions)} changed status."
        )
