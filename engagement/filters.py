"""The engagement filters of docs/metrics.md, shared by lists, exports and metrics.

`parse_filters` validates query parameters into an EngagementFilter (a clear error per bad value);
`apply` narrows a queryset of engagements.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta

from django.db.models import Q, QuerySet

from engagement import cleaners
from engagement.errors import Invalid
from engagement.models import Engagement, Offering, Status
from tenants.models import Member, Tenant


@dataclass(frozen=True)
class EngagementFilter:
    status: str = ""
    offering: str = ""
    owner: str = ""
    sales_rep: str = ""
    segment: str = ""
    purchased_from: date | None = None
    purchased_to: date | None = None
    at_risk: bool | None = None  # the forecast's flag (docs/metrics.md, "Forecast"); None: either

    @property
    def is_empty(self) -> bool:
        return self.in_use == 0

    @property
    def in_use(self) -> int:
        """How many filters are set (shown on the folded filters of a phone)."""
        return sum(getattr(self, f.name) != f.default for f in fields(self))


FILTER_NAMES = tuple(f.name for f in fields(EngagementFilter))
# Filters of lists only: metrics are computed over every status, and at-risk is itself a metric.
LIST_ONLY = ("status", "at_risk")
BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
# The owner filter's value for the engagements nobody owns (no email can be it: it has no "@").
UNOWNED = "unowned"


def _date(params: Mapping, name: str, errors: dict) -> date | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        return cleaners.in_accepted_years(date.fromisoformat(raw), name)
    except ValueError:
        errors[name] = [f"{raw!r} is not a date (YYYY-MM-DD)."]
    except Invalid as exc:
        errors |= exc.detail
    return None


def parse_filters(params: Mapping, *, for_lists: bool = True) -> EngagementFilter:
    """EngagementFilter from query parameters (LIST_ONLY ones only `for_lists`); Invalid names each bad one."""
    errors = {}
    values = {name: (params.get(name) or "").strip()[:254] for name in ("offering", "owner", "sales_rep", "segment")}
    status = (params.get("status") or "").strip() if for_lists else ""
    if status and status not in Status.values:
        errors["status"] = [f"{status!r} is not one of: {', '.join(Status.values)}."]
    raw_risk = (params.get("at_risk") or "").strip().lower() if for_lists else ""
    at_risk = BOOLEANS.get(raw_risk)
    if raw_risk and at_risk is None:
        errors["at_risk"] = [f"{raw_risk!r} is neither true nor false."]
    purchased_from = _date(params, "purchased_from", errors)
    purchased_to = _date(params, "purchased_to", errors)
    if purchased_from and purchased_to and purchased_from > purchased_to:
        errors["purchased_to"] = ["Must be on or after purchased_from."]
    if errors:
        raise Invalid(errors)
    return EngagementFilter(
        status=status, purchased_from=purchased_from, purchased_to=purchased_to, at_risk=at_risk, **values
    )


def filters_or_errors(params: Mapping, *, for_lists: bool = True) -> tuple[EngagementFilter, dict]:
    """For pages: the filter, or no filter and the errors per parameter (shown above the results)."""
    try:
        return parse_filters(params, for_lists=for_lists), {}
    except Invalid as exc:
        return EngagementFilter(), exc.detail


def _local_midnight(day: date, tenant: Tenant) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tenant.tzinfo)


def apply(queryset: QuerySet[Engagement], flt: EngagementFilter, tenant: Tenant) -> QuerySet[Engagement]:
    """Narrow engagements by the filter. Unknown offering/owner/sales rep match nothing (never everything)."""
    if flt.status:
        queryset = queryset.filter(status=flt.status)
    if flt.offering:
        queryset = queryset.filter(offering__in=Offering.objects.filter(key=flt.offering).values("id"))
    if flt.owner.lower() == UNOWNED:
        queryset = queryset.filter(owner__isnull=True)
    for name in ("owner", "sales_rep"):
        email = getattr(flt, name)
        if email and not (name == "owner" and email.lower() == UNOWNED):
            members = Member.objects.filter(user__email__iexact=email).values("id")
            queryset = queryset.filter(**{f"{name}__in": members})
    if flt.segment:
        queryset = queryset.filter(customer__segment=flt.segment)
    if flt.purchased_from:
        queryset = queryset.filter(pos_at__gte=_local_midnight(flt.purchased_from, tenant))
    if flt.purchased_to:
        queryset = queryset.filter(pos_at__lt=_local_midnight(flt.purchased_to + timedelta(days=1), tenant))
    if flt.at_risk is not None:
        # Not at risk: forecast above the threshold, or none (ended, or not forecast yet).
        at_risk = Q(forecast__at_risk=True)
        queryset = queryset.filter(at_risk if flt.at_risk else ~at_risk)
    return queryset


def filtered_engagements(flt: EngagementFilter, tenant: Tenant) -> QuerySet[Engagement]:
    return apply(Engagement.objects.all(), flt, tenant)
