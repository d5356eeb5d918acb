import os

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from tqdm import tqdm

from engagement import demo
from engagement.models import Engagement, Milestone, Status
from engagement.projections import rebuild_all
from engagement.services import offering_save
from tenants.actors import Actor
from tenants.models import Member, Tenant, User
from tenants.scoping import tenant_scope
from tenants.services import member_add, tenant_create

BATCH_SIZE = 1000


def create_team(tenant):
    """One login per role plus more owners and sales reps. Returns ({email: member}, [emails of existing users])."""
    members, existing = {}, []
    for person in demo.PEOPLE:
        member, created = member_add(
            tenant=tenant, email=person.email, role=person.role, password=demo.PASSWORD,
            first_name=person.first_name, last_name=person.last_name,
        )  # fmt: skip
        members[person.email] = member
        if not created:
            existing.append(person.email)
    # The admin login also opens /admin/, so the demo shows the raw record too.
    User.objects.filter(email=demo.ADMIN_EMAIL).update(is_staff=True, is_superuser=True)
    return members, existing


def create_offerings(tenant, actor):
    """The four journeys. Returns {offering key: (offering, {milestone key: milestone})}."""
    offerings = {}
    for spec in demo.JOURNEYS:
        offering, _ = offering_save(
            tenant=tenant, key=spec.key, name=spec.name, actor=actor,
            milestones=[{"key": k, "name": n, "due_day": d} for k, n, d in spec.milestones],
            requires_satisfaction=spec.requires_satisfaction, satisfaction_threshold=spec.satisfaction_threshold,
        )  # fmt: skip
        offerings[spec.key] = offering
    milestones = {key: {} for key in offerings}
    for milestone in Milestone.objects.filter(offering__in=offerings.values()).select_related("offering"):
        milestones[milestone.offering.key][milestone.key] = milestone
    return {key: (offering, milestones[key]) for key, offering in offerings.items()}


class Command(BaseCommand):
    help = "Create the demo tenant with realistic customers, journeys and one login per role (printed)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=2000, help="How many customers (default 2000).")
        parser.add_argument(
            "--if-empty", action="store_true", help="Seed only when the database has no tenant yet; else skip."
        )
        parser.add_argument(
            "--i-know",
            action="store_true",
            help="Seed even with DEBUG off, knowing that the demo admin is a platform superuser whose password "
            "is published in the README.",
        )

    def handle(self, customers, if_empty, i_know, **options):
        if not settings.DEBUG and not i_know:
            raise CommandError(
                "The demo creates a platform superuser whose password is published in the README, so it runs only "
                "with DEBUG=1. Pass --i-know to seed this (production-like) installation anyway."
            )
        if customers < 1:
            raise CommandError("--customers must be at least 1.")
        existing = Tenant.objects.filter(slug=demo.SLUG).first()
        if if_empty and Tenant.objects.exists():
            self._report_skip(existing)
            return
        if existing:
            raise CommandError(
                f"Tenant {demo.SLUG!r} already exists. Pass --if-empty to keep it and skip seeding, or start from "
                "an empty database (`make clean` removes the embedded one under var/)."
            )
        try:
            tenant, existing_users = self._seed(customers)
        except ValidationError as exc:
            raise CommandError(f"Could not create the demo tenant: {exc}") from exc
        self._print_logins(tenant, existing_users)

    def _seed(self, customers):
        now = timezone.now()
        # One transaction: a failed or interrupted seed leaves no half-built demo behind.
        with transaction.atomic():
            tenant = tenant_create(slug=demo.SLUG, name=demo.NAME, time_zone=demo.TIME_ZONE)
            members, existing_users = create_team(tenant)
            with tenant_scope(tenant):
                offerings = create_offerings(tenant, Actor.system("seed_demo"))
                builder = demo.PopulationBuilder(tenant=tenant, members=members, offerings=offerings, now=now)
                with self._bar(customers, "customers", " cus") as bar:
                    population = builder.build(customers, progress=bar.update)
                self._insert(population)
                self._rebuild(tenant, now)
                self._print_summary(tenant, population)
        return tenant, existing_users

    def _bar(self, total, what, unit):
        return tqdm(total=total, desc=f"{demo.SLUG}: {what}", unit=unit, file=self.stderr)

    def _insert(self, population):
        batches = population.batches()
        with self._bar(sum(len(rows) for _model, rows in batches), "inserting", " rows") as bar:
            for model, rows in batches:
                for start in range(0, len(rows), BATCH_SIZE):
                    chunk = rows[start : start + BATCH_SIZE]
                    model.objects.bulk_create(chunk)
                    bar.update(len(chunk))

    def _rebuild(self, tenant, now):
        """Derive every projection the way `recompute` does; publish only that metrics changed (history is
        not news: no 'reached PoV' reactions for seeded customers)."""
        engagements = Engagement.objects.all()
        with self._bar(engagements.count(), "projections", " eng") as bar:
            rebuild_all(tenant, engagements, now=now, progress=bar.update, announce=False)

    def _print_summary(self, tenant, population):
        mix = dict(Engagement.objects.values_list("status").annotate(n=Count("id")).order_by())
        unowned = Engagement.objects.filter(owner__isnull=True).count()
        self.stdout.write(
            self.style.SUCCESS(f"Created tenant {tenant.slug} ({tenant.name}), time zone {tenant.time_zone}.")
        )
        self.stdout.write(
            f"{len(population.customers)} customers, {len(population.purchases)} purchases, "
            f"{len(population.events)} events in {len(demo.JOURNEYS)} offerings."
        )
        statuses = ", ".join(f"{status} {mix.get(status, 0)}" for status in Status.values)
        self.stdout.write(f"Engagements: {statuses}; unowned {unowned}.")

    def _report_skip(self, existing):
        if existing:
            self.stdout.write(f"Tenant {demo.SLUG!r} already exists; not seeding again.")
            self._print_logins(existing)
            return
        slugs = ", ".join(Tenant.objects.order_by("slug").values_list("slug", flat=True)[:5])
        self.stdout.write(f"The database already has tenants ({slugs}); the demo is seeded only into an empty one.")
        self.stdout.write(f"Open {self._url()} and sign in.")

    def _print_logins(self, tenant, existing_users=()):
        with tenant_scope(tenant):
            present = set(Member.objects.filter(is_active=True).values_list("user__email", flat=True))
        width = max(len(person.email) for person in demo.PEOPLE)
        self.stdout.write("")
        self.stdout.write(f"Demo logins (password for all: {demo.PASSWORD}):")
        for person in demo.PEOPLE:
            if person.email not in present:
                continue
            notes = [" + /admin/" if person.email == demo.ADMIN_EMAIL else ""]
            if person.email in existing_users:
                notes.append("  (existing user: password unchanged)")
            self.stdout.write(f"  {person.email:<{width}}  {person.role}{''.join(notes)}")
        self.stdout.write(f"Open {self._url()} and sign in.")

    def _url(self):
        # `make run` starts the web server on $PORT (default 8000).
        return f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/"
