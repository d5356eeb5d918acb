"""Reads of the record, for views and the API. Every function runs inside a tenant scope."""

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone
from django_scopes import ScopeError

from engagement import cleaners
from engagement.errors import Invalid
from engagement.models import (
    AssignmentRule,
    Customer,
    Engagement,
    Event,
    Import,
    Milestone,
    Note,
    Offering,
    Purchase,
    Status,
)
from engagement.sql import array, fast_timestamps
from pov import rows
from tenants.models import ACTING_ROLES, ApiKey, Member, Tenant, User
from tenants.scoping import current_tenant, get_or_404

# One lookup helper per object: the same 404 for "absent" and "not yours" (the scope filters).


def engagement_for(engagement_id: object) -> Engagement:
    return get_or_404(with_related(Engagement.objects.all()), id=uuid_or_404(engagement_id))


def customer_for(external_id: str) -> Customer:
    return get_or_404(Customer.objects.all(), external_id=external_id)


def offering_for(key: str) -> Offering:
    return get_or_404(Offering.objects.prefetch_related("milestones"), key=key)


def purchase_for(external_id: str) -> Purchase:
    return get_or_404(Purchase.objects.select_related("engagement"), external_id=external_id)


def uuid_or_404(value: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise Http404("Not found.") from exc


ENGAGEMENT_RELATED = ("purchase", "customer", "offering", "owner__user", "sales_rep__user")


def milestone_name(offering: str, key: str) -> Subquery:
    """The name of the milestone `key` (a field holding a milestone key) of `offering` (a field holding the
    offering's id): pages show names, never keys."""
    names = Milestone.objects.filter(offering_id=OuterRef(offering), key=OuterRef(key)).values("name")[:1]
    return Subquery(names)


def with_related(engagements: QuerySet[Engagement]) -> QuerySet[Engagement]:
    """What lists and pages show of each engagement: ENGAGEMENT_RELATED joined, and its forecast
    (metrics.models.Forecast) fetched for the rows read. Not joined: the row-level policy hides how many
    forecasts the tenant has from the planner, which then scanned them all for each engagement (the
    engagement list took 54 ms instead of 32 at 100k engagements)."""
    related = engagements.select_related(*ENGAGEMENT_RELATED).prefetch_related("forecast")
    return related.annotate(next_step_name=milestone_name("offering_id", "next_step"))


# The engagement of a purchase with what the API shows of it (ENGAGEMENT_RELATED), row-locked, written by
# hand (pov.rows): building and compiling the same ORM query (seven joins) cost more than running it.
# A single event took 5.8 ms in process instead of 7.8.
LOCKED_BY_PURCHASE = """
SELECT {columns}
FROM {purchase} p JOIN {engagement} e ON e.purchase_id = p.id AND e.tenant_id = p.tenant_id
JOIN {customer} c ON c.id = e.customer_id JOIN {offering} o ON o.id = e.offering_id
LEFT JOIN {member} om ON om.id = e.owner_id LEFT JOIN {user} ou ON ou.id = om.user_id
LEFT JOIN {member} sm ON sm.id = e.sales_rep_id LEFT JOIN {user} su ON su.id = sm.user_id
WHERE p.tenant_id = %(tenant)s AND p.external_id = %(purchase)s
FOR UPDATE OF e
"""
LOCKED_ROWS = (("e", Engagement), ("p", Purchase), ("c", Customer), ("o", Offering), ("om", Member), ("ou", User),
               ("sm", Member), ("su", User))  # fmt: skip


def locked_by_purchase(tenant: Tenant, purchase: str) -> Engagement | None:
    """The engagement of the named purchase, locked until the transaction ends, with ENGAGEMENT_RELATED."""
    names = {str(model._meta.model_name): rows.table(model) for _, model in LOCKED_ROWS}
    with connection.cursor() as cursor:
        cursor.execute(LOCKED_BY_PURCHASE.format(columns=rows.columns(*LOCKED_ROWS), **names),
                       {"tenant": tenant.pk, "purchase": purchase})  # fmt: skip
        row = cursor.fetchone()
    if row is None:
        return None
    engagement, purchase_row, customer, offering, owner, owner_user, rep, rep_user = rows.instances(row, *LOCKED_ROWS)
    engagement.purchase, engagement.customer, engagement.offering = purchase_row, customer, offering
    engagement.owner, engagement.sales_rep = owner, rep
    for member, user in ((owner, owner_user), (rep, rep_user)):
        if member is not None:
            member.user = user
    return engagement


# Many records by external id (a batch or an import chunk names up to a thousand): each name looked up on
# its own by the (tenant, external_id) index, a LATERAL subquery with LIMIT 1 (which the planner cannot
# turn into a join). Given the list as `IN`, `= ANY` or a join, PostgreSQL read every row of the tenant
# instead: 20-50 ms per thousand names at 110k purchases, against 3 (none found) to 18 (all found).
BY_EXTERNAL_ID = """
SELECT r.external_id, x.* FROM unnest({ids}::text[]) AS r(external_id)
CROSS JOIN LATERAL ({select} WHERE {alias}.tenant_id = %(tenant)s AND {alias}.external_id = r.external_id LIMIT 1) x
"""
STORED_CUSTOMERS = "SELECT c.id, c.name, c.email, c.segment, c.attributes FROM {customers} c"
STORED_PURCHASES = """
SELECT e.id, c.external_id, p.offering_id, p.purchased_at, p.amount, p.currency, p.success_criteria, e.owner_id,
    e.sales_rep_id
FROM {purchases} p JOIN {engagements} e ON e.purchase_id = p.id AND e.tenant_id = %(tenant)s
JOIN {customers} c ON c.id = p.customer_id AND c.tenant_id = %(tenant)s
"""
# What a purchase sent again must repeat to be a replay (the rest of STORED_PURCHASES's columns).
REPLAYED_FIELDS = ("customer", "offering", "purchased_at", "amount", "currency", "success_criteria", "owner",
                   "sales_rep")  # fmt: skip


@dataclass(frozen=True)
class StoredPurchase:
    engagement_id: uuid.UUID
    values: dict  # REPLAYED_FIELDS: the customer's external id, the other objects' ids


def _by_external_id(select: str, alias: str, tenant: Tenant, external_ids: Iterable[str]) -> list:
    wanted = sorted(set(external_ids))
    if not wanted:
        return []
    tables = {name: rows.table(model) for name, model in (("customers", Customer), ("purchases", Purchase),
                                                            ("engagements", Engagement))}  # fmt: skip
    sql = BY_EXTERNAL_ID.format(ids=array("ids"), select=select.format(**tables), alias=alias)
    with fast_timestamps() as cursor:
        cursor.execute(sql, {"ids": wanted, "tenant": tenant.pk})
        return cursor.fetchall()


def stored_customers(tenant: Tenant, external_ids: Iterable[str]) -> dict[str, dict]:
    """{external id: {id, external_id, name, email, segment, attributes}} of those stored."""
    names = ("external_id", "id", "name", "email", "segment", "attributes")
    found = _by_external_id(STORED_CUSTOMERS, "c", tenant, external_ids)
    return {row[0]: {**dict(zip(names, row, strict=True)), "attributes": json.loads(row[5])} for row in found}


def stored_purchases(tenant: Tenant, external_ids: Iterable[str]) -> dict[str, StoredPurchase]:
    """{external id: StoredPurchase} of those stored."""
    found = _by_external_id(STORED_PURCHASES, "p", tenant, external_ids)
    stored = {row[0]: StoredPurchase(row[1], dict(zip(REPLAYED_FIELDS, row[2:], strict=True))) for row in found}
    for purchase in stored.values():
        purchase.values["success_criteria"] = json.loads(purchase.values["success_criteria"])
    return stored


def engagements() -> QuerySet[Engagement]:
    return with_related(Engagement.objects.all())


def member_by_email(email: str | None, field: str) -> Member | None:
    """The tenant's member with this email who can take an engagement or alert on; Invalid naming `field`
    (and why) otherwise."""
    if email is None or email == "":
        return None
    member = Member.objects.select_related("user").filter(user__email__iexact=email).first()
    if member is None:
        raise Invalid({field: [f"{email!r} is not a member of this company."]})
    cleaners.responsible(member, field)  # a viewer or a deactivated member is named as such
    return member


# Apps that keep rows about an engagement (metrics: its alerts) add `items(engagement)` here in their
# AppConfig.ready(), so the timeline shows them without this app importing them.
timeline_sources: list[Callable[[Engagement], list[tuple]]] = []

# Apps that act on a journey's settings add `notice(offering, values)` here in their AppConfig.ready(): what
# saving `values` over `offering` would set off at once (say, emails to customers), for the admin to confirm
# before it is saved, or None.
journey_save_notices: list[Callable[[Offering, dict], str | None]] = []


def notices_for_journey_save(offering: Offering | None, values: dict) -> list[str]:
    if offering is None:  # a new journey has no customers yet
        return []
    return [notice for check in journey_save_notices if (notice := check(offering, values))]


def timeline(engagement: Engagement, *, include_sources: bool = False) -> list[tuple]:
    """Events and notes of an engagement (and what other apps add), oldest first, as (at, kind, object)."""
    events = [
        (e.occurred_at, "event", e) for e in Event.objects.filter(engagement=engagement).select_related("milestone")
    ]
    notes = [(n.created_at, "note", n) for n in Note.objects.filter(engagement=engagement)]
    items = events + notes
    if include_sources:
        for source in timeline_sources:
            items += source(engagement)
    return sorted(items, key=lambda item: item[0])


def filter_options(segments: list[str] | None = None) -> dict:
    """Choices for a filter bar: offerings, customer segments, active members."""
    if segments is None:
        segments = customer_segments()
    return {
        "offerings": list(Offering.objects.order_by("name").values_list("key", "name")),
        "segments": sorted(segments),
        "members": responsible_members(),
    }


# A loose index scan over customer_segment_idx (tenant, segment): one index probe per distinct segment,
# where DISTINCT would read every customer of the tenant (800,000 at the benchmark's 1m scale).
SEGMENTS_SQL = """
WITH RECURSIVE seg AS (
    (SELECT segment FROM {table} WHERE tenant_id = %(tenant)s AND segment > '' ORDER BY segment LIMIT 1)
    UNION ALL
    SELECT (SELECT c.segment FROM {table} c WHERE c.tenant_id = %(tenant)s AND c.segment > seg.segment
            ORDER BY c.segment LIMIT 1)
    FROM seg WHERE seg.segment IS NOT NULL
)
SELECT segment FROM seg WHERE segment IS NOT NULL
"""


def customer_segments() -> list[str]:
    """The tenant's distinct non-blank customer segments, sorted."""
    tenant = current_tenant()
    if tenant is None:  # fail closed outside a tenant's scope, as the scoped managers do
        raise ScopeError("customer_segments() reads one tenant's customers: enter its scope first.")
    table = connection.ops.quote_name(Customer._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(SEGMENTS_SQL.format(table=table), {"tenant": tenant.pk})
        return [row[0] for row in cursor.fetchall()]


def responsible_and_names() -> tuple[list[Member], dict[str, str]]:
    """In one query: who can own or sell an engagement or take an alert (active members whose role acts,
    as cleaners.responsible checks), and every member's name by email (who recorded each line of an
    engagement's timeline, deactivated members and viewers included)."""
    everyone = list(Member.objects.select_related("user").order_by("user__email"))
    responsible = [m for m in everyone if m.is_active and m.role in ACTING_ROLES]
    return responsible, {m.user.email: m.name for m in everyone}


def responsible_members() -> list[Member]:
    return responsible_and_names()[0]


def journey_progress(engagement: Engagement) -> list[dict]:
    """Per milestone: due date, when reached (with clock days), and whether it is overdue now."""
    reaches = {r.milestone_id: r for r in engagement.reaches.all()}
    shift = timedelta(days=engagement.paused_days)
    now = timezone.now()
    rows = []
    for milestone in engagement.offering.milestones.all():
        reach = reaches.get(milestone.id)
        due_at = engagement.pos_at + timedelta(days=milestone.due_day) + shift
        rows.append(
            {
                "milestone": milestone,
                "due_at": due_at,
                "reached_at": reach.reached_at if reach else None,
                "clock_days": reach.clock_days if reach else None,
                "overdue": reach is None and engagement.status not in (Status.REACHED, Status.LOST) and now > due_at,
            }
        )
    return rows


@dataclass(frozen=True)
class SetupStep:
    label: str
    done: bool
    url_name: str  # the page where it is done, under the tenant's slug
    anchor: str = ""


def setup_steps(tenant: Tenant) -> list[SetupStep]:
    """A new company's first steps, for the overview's checklist: each is done when what it makes exists
    (one query)."""
    members = Member.objects.filter(tenant=OuterRef("pk")).values("tenant").annotate(n=Count("id")).values("n")
    done = (
        Tenant.objects.filter(pk=tenant.pk)
        .values(
            journey=Exists(Offering.objects.filter(tenant=OuterRef("pk"))),
            team=Subquery(members),
            rules=Exists(AssignmentRule.objects.filter(tenant=OuterRef("pk"))),
            key=Exists(ApiKey.objects.filter(tenant=OuterRef("pk"), revoked_at__isnull=True)),
            imported=Exists(
                Import.objects.filter(Q(created__gt=0) | Q(updated__gt=0), tenant=OuterRef("pk"), dry_run=False)
            ),
            purchase=Exists(Purchase.objects.filter(tenant=OuterRef("pk"))),
        )
        .get()
    )
    return [
        SetupStep("Define a journey: what you sell and its milestones", done["journey"], "journeys"),
        SetupStep("Invite your team", (done["team"] or 0) > 1, "settings", "#members"),
        SetupStep("Set assignment rules, so new customers have an owner", done["rules"], "assignment"),
        SetupStep("Bring customers in: import a spreadsheet, or connect your CRM or billing with an API key",
                  done["imported"] or done["key"] or done["purchase"], "imports"),
        SetupStep("Record the first purchase", done["purchase"], "purchase-new"),
    ]  # fmt: skip
