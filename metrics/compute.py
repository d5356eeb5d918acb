"""Computing CONTRACT §5 for groups of engagements, the same numbers on every database.

`compute` takes a queryset of one tenant's engagements (already filtered) and returns, for each
group (dimension, key) — `("all", "")`, `("offering", key)`, `("segment", segment)`,
`("owner", email)`, `("sales_rep", email)`, "" meaning none — its summary (base metrics and
Kaplan–Meier) and, when asked, its monthly cohorts; and the milestone funnel per offering.
PostgreSQL computes in set-based SQL (metrics.compute_sql), other databases in Python
(metrics.compute_python).
"""

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Count

from engagement.models import Milestone
from metrics import compute_python, compute_sql

DIMENSIONS = ("all", "offering", "segment", "owner", "sales_rep")


@dataclass
class Computed:
    groups: dict  # (dimension, key) -> {"summary": {...}, "cohorts": [...]}
    funnels: dict  # offering key -> {"offering", "purchases", "milestones": [...]}

    def summary(self, dimension="all", key=""):
        return self.groups[(dimension, key)]["summary"]


def compute(engagements, tenant, now, *, dimensions=("all",), cohorts=False, funnel=False):
    """`funnel`: True for every offering among the engagements, or one offering's key."""
    unknown = set(dimensions) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown dimensions: {sorted(unknown)}")
    backend = compute_sql if connection.vendor == "postgresql" else compute_python
    with transaction.atomic():
        groups, reaches = backend.compute(
            engagements, tenant, now, dimensions=dimensions, cohorts=cohorts, funnel=funnel
        )
    if "all" in dimensions and ("all", "") not in groups:
        groups[("all", "")] = {"summary": compute_python.summary_of([], now), "cohorts": []}
    funnels = _funnels(engagements, groups, reaches, also=[funnel] if isinstance(funnel, str) else []) if funnel else {}
    return Computed(groups=groups, funnels=funnels)


def _funnels(engagements, groups, reaches, also):
    """Per offering among the selected engagements (and the offerings in `also`, even with none of them):
    each milestone's reached count, rate and median clock days."""
    purchases = dict.fromkeys(also, 0) | _purchases_per_offering(engagements, groups)
    milestones = Milestone.objects.filter(offering__key__in=purchases.keys()).select_related("offering")
    funnels = {key: {"offering": key, "purchases": count, "milestones": []} for key, count in purchases.items()}
    for milestone in milestones.order_by("offering__key", "order"):
        offering_key = milestone.offering.key
        reached, median = reaches.get((offering_key, milestone.id), (0, None))
        count = purchases[offering_key]
        funnels[offering_key]["milestones"].append(
            {
                "milestone": milestone.key,
                "name": milestone.name,
                "due_day": milestone.due_day,
                "is_pov": milestone.is_pov,
                "reached": reached,
                "rate": reached / count if count else None,
                "median_clock_days": median,
            }
        )
    return funnels


def _purchases_per_offering(engagements, groups):
    offering_groups = {key: g["summary"]["purchases"] for (dim, key), g in groups.items() if dim == "offering"}
    if offering_groups:
        return offering_groups
    counts = engagements.order_by().values_list("offering__key").annotate(n=Count("id"))
    return dict(counts)
