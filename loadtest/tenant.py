"""The load test's tenant: the benchmark's scratch company, a few members who can sign in, a seed of
engagements to read; and, afterwards, what the run stored. Every tenant-owned read and write happens
inside the tenant's scope.
"""

import secrets
from datetime import timedelta

from django.utils import timezone

from bench import scratch
from engagement.batch import batch_ingest
from engagement.models import Customer, Engagement, Event, Note, Purchase
from tenants.actors import Actor
from tenants.scoping import tenant_scope

SEED_PURCHASES = 300
SEED_CHUNK = 100
SIGNED_IN_OWNERS = 3
ACTOR = Actor.system("load test seed")
MODELS = {"customer": Customer, "purchase": Purchase, "engagement": Engagement, "event": Event, "note": Note}


def prepare(run):
    """(tenant, the setup the locustfile reads): the company, its keys and logins, journeys and seed."""
    made = scratch.create()
    password = secrets.token_urlsafe(18)
    members = [made.admin, *made.owners[:SIGNED_IN_OWNERS]]
    for member in members:
        member.user.set_password(password)
        member.user.save(update_fields=["password"])
    with tenant_scope(made.tenant):
        journeys = {o.key: list(o.milestones.order_by("order").values_list("key", flat=True)) for o in made.offerings}
        seed = _seed(made, journeys)
    setup = {
        "run": run, "slug": made.tenant.slug, "write_key": made.write_key, "read_key": made.read_key,
        "members": [m.user.email for m in members], "password": password,
        "owners": [m.user.email for m in made.owners], "sales_reps": [m.user.email for m in made.sales_reps],
        "offerings": journeys, "seed_purchases": seed,
    }  # fmt: skip
    return made.tenant, setup


def _seed(made, journeys):
    """Engagements for the readers to find, through the same batch service the API uses; [(purchase, offering)]."""
    now, keys, purchases = timezone.now(), list(journeys), []
    for start in range(0, SEED_PURCHASES, SEED_CHUNK):
        items = []
        for n in range(start, start + SEED_CHUNK):
            offering, purchase = keys[n % len(keys)], f"seed-p{n}"
            purchases.append((purchase, offering))
            items.append({"kind": "purchase", "data": {
                "external_id": purchase, "customer": {"external_id": f"seed-c{n}", "name": f"Seed customer {n}"},
                "offering": offering, "purchased_at": (now - timedelta(days=1 + n % 90)).isoformat(),
                "owner": made.owners[n % len(made.owners)].user.email,
            }})  # fmt: skip
            items.append({"kind": "event", "data": {
                "type": "milestone", "purchase": purchase, "milestone": journeys[offering][0],
                "occurred_at": (now - timedelta(hours=1)).isoformat(),
            }})  # fmt: skip
        failed = [r for r in batch_ingest(tenant=made.tenant, items=items, actor=ACTOR) if r["status"] >= 300]
        if failed:
            raise RuntimeError(f"seeding failed for {len(failed)} items, e.g. {failed[0]}")
    return purchases


def row_counts(tenant):
    with tenant_scope(tenant):
        return {table: model.objects.count() for table, model in MODELS.items()}


def stored_writes(tenant, run, before):
    """{table: {"ids": the run's ids found, "rows_added": rows since `before`}}."""
    prefix = f"{run}-"
    after = row_counts(tenant)
    with tenant_scope(tenant):
        ids = {table: _ids(MODELS[table], "external_id", prefix) for table in ("customer", "purchase", "event")}
        ids["engagement"] = _ids(Engagement, "purchase__external_id", prefix)
        ids["note"] = {body.split()[0] for body in _ids(Note, "body", prefix)}  # a note's body starts with its id
    return {table: {"ids": ids[table], "rows_added": after[table] - before[table]} for table in MODELS}


def _ids(model, field, prefix):
    return set(model.objects.filter(**{f"{field}__startswith": prefix}).values_list(field, flat=True))
