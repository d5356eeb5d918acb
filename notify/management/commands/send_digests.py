from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from notify import digests
from tenants.models import Tenant
from tenants.scoping import tenant_scope


class Command(BaseCommand):
    help = (
        "Send the digests that are due now (08:00-08:59 in each tenant's time zone). --now sends every "
        "member's digest for the current period whatever the hour. Never twice for one member and period."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Slug of one tenant (default: all).")
        parser.add_argument("--now", action="store_true", help="Send the current period's digests whatever the hour.")

    def handle(self, tenant=None, now=False, **options):
        tenants = Tenant.objects.order_by("slug")
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant with slug {tenant!r}.")
        failed = 0
        for each in tenants:
            with tenant_scope(each):
                counts = self._send(each, force=now)
            failed += counts["failed"]
            # The usual outcomes always, a rarer one (no longer due) when it happens.
            shown = (*OUTCOMES, *(outcome for outcome in counts if outcome not in OUTCOMES))
            summary = ", ".join(f"{counts[outcome]} {outcome}" for outcome in shown)
            self.stdout.write(f"{each.slug}: {summary}.")
        if failed:
            raise CommandError(f"{failed} digest(s) could not be sent; they are retried by the next run.")

    def _send(self, tenant, *, force):
        at = timezone.now()
        # Already sent ones are listed too, so the summary says so; `deliver` sends nothing for them.
        due = digests.due_members(tenant, at, force=force, include_done=True)
        counts = Counter()
        for item in tqdm(due, desc=f"{tenant.slug}: digests", unit=" member", file=self.stderr):
            try:
                outcome = digests.deliver(
                    tenant=tenant, member=item.member, frequency=item.frequency, period=item.period, now=at
                )
            except Exception as exc:  # noqa: BLE001 - the claim is released; report and go on with the others
                self.stderr.write(f"{tenant.slug}: {item.member.user.email} {item.period}: {exc!r}")
                outcome = "failed"
            counts[outcome] += 1
        return counts


OUTCOMES = (digests.SENT, digests.EMPTY, digests.ALREADY, "failed")
