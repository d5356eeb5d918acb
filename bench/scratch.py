"""The benchmark's scratch tenant: its size, its team, journeys and keys, and its removal.

The tenant has a fixed slug that no real company uses; a run removes what an earlier (aborted) run
left and removes its own tenant at the end. Removal deletes by tenant id in one transaction
(Django's foreign keys are deferred on PostgreSQL), so it costs one statement per table however
many rows there are, and never touches another tenant's rows.
"""

import re
from dataclasses import dataclass

from django.apps import apps
from django.db import connection, transaction

from engagement.services import offering_save
from tenants.actors import Actor
from tenants.api_keys import api_key_create
from tenants.models import Member, Role, Tenant, User
from tenants.scoping import tenant_scope
from tenants.services import member_add, tenant_create

SLUG = "bench-scratch"
NAME = "Benchmark scratch tenant (removed after each run)"
EMAIL_DOMAIN = "bench.pov.invalid"
ACTOR = Actor.system("bench")
OWNERS = 25
SALES_REPS = 25

# key, name, share of purchases, requires satisfaction, milestones (key, name, due day); about four
# events per engagement over the mix.
OFFERINGS = (
    ("software", "Team software", 30, True,
     (("kickoff", "Kick-off", 3), ("setup", "Set-up done", 14), ("training", "Team trained", 30),
      ("first-value", "First value", 45))),
    ("card", "Credit card", 15, False, (("activated", "Card activated", 7), ("first-purchase", "First purchase", 21))),
    ("tv", "Television", 25, False,
     (("delivered", "Delivered", 5), ("installed", "Installed", 10), ("first-use", "First evening", 14))),
    ("consulting", "Consulting", 30, False,
     (("kickoff", "Kick-off", 5), ("workshop", "Workshop", 20), ("report", "Report", 40),
      ("adoption", "Adoption", 60), ("value", "Value confirmed", 90))),
)  # fmt: skip

SCALE_RE = re.compile(r"^(\d+(?:\.\d+)?)([km]?)$")


def parse_scale(text):
    """'100k' -> 100000, '1m' -> 1000000; a plain number is taken as is (small runs and tests)."""
    match = SCALE_RE.match(str(text).strip().lower())
    if not match:
        raise ValueError(f"SCALE must look like 100k, 1m or a whole number, not {text!r}")
    value = float(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2)]
    if value < 50:
        raise ValueError(f"SCALE must be at least 50 engagements, not {text!r}")
    return int(value)


@dataclass
class Scratch:
    tenant: Tenant
    admin: Member
    owners: list
    sales_reps: list
    offerings: list  # Offering rows, in OFFERINGS order
    write_key: str
    read_key: str


def _email(name):
    return f"{name}@{EMAIL_DOMAIN}"


ADMIN_EMAIL = _email("admin")


def create():
    """A fresh scratch tenant with its team, journeys and API keys (an earlier one is removed first)."""
    remove()
    tenant = tenant_create(slug=SLUG, name=NAME, time_zone="Europe/Berlin")
    admin, _ = member_add(tenant=tenant, email=ADMIN_EMAIL, role=Role.ADMIN, first_name="Bench", last_name="Admin")
    owners = [member_add(tenant=tenant, email=_email(f"owner-{i:02d}"), role=Role.OWNER)[0] for i in range(OWNERS)]
    reps = [member_add(tenant=tenant, email=_email(f"sales-{i:02d}"), role=Role.SALES)[0] for i in range(SALES_REPS)]
    with tenant_scope(tenant):
        offerings = [
            offering_save(
                tenant=tenant, key=key, name=name, actor=ACTOR, requires_satisfaction=requires,
                milestones=[{"key": k, "name": n, "due_day": d} for k, n, d in milestones],
            )[0]
            for key, name, _, requires, milestones in OFFERINGS
        ]  # fmt: skip
        _, write_key = api_key_create(tenant=tenant, name="bench write", scope="write", actor=ACTOR)
        _, read_key = api_key_create(tenant=tenant, name="bench read", scope="read", actor=ACTOR)
    return Scratch(tenant, admin, owners, reps, offerings, write_key, read_key)


def _tenant_tables():
    """(table, column) of every model with a foreign key to Tenant: every tenant-owned table (DESIGN rule 1)."""
    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if field.is_relation and field.related_model is Tenant:
                found.append((model._meta.db_table, field.column))
    return found


def remove(progress=None):
    """Delete the scratch tenant (if any) and its users; other tenants' rows are never matched."""
    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is not None:
        quote = connection.ops.quote_name
        tables = _tenant_tables()
        with connection.cursor() as cursor:
            # Fresh statistics first: the deferred foreign-key checks at COMMIT are planned from them, and
            # a table last analyzed while empty would be scanned whole for every deleted row.
            cursor.execute("ANALYZE " + ", ".join(quote(table) for table, _ in tables))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for table, column in tables:
                # Only quoted names from the model registry are interpolated; the id is a parameter.
                cursor.execute(f"DELETE FROM {quote(table)} WHERE {quote(column)} = %s", [tenant.pk])  # noqa: S608
                if progress:
                    progress(table)
            cursor.execute(f"DELETE FROM {quote(Tenant._meta.db_table)} WHERE id = %s", [tenant.pk])  # noqa: S608
    # Bench users belong to no other tenant; keep any that somehow do.
    User.objects.filter(email__endswith="@" + EMAIL_DOMAIN, memberships__isnull=True).delete()
