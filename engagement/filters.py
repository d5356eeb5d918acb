"""The engagement filters of docs/metrics.md, shared by lists, exports and metrics.

`parse_filters` validates query parameters into an EngagementFilter (a clear error per bad value);
`apply` narrows a queryset of engagements.
"""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet

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

    @property
    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


FILTER_NAMES = tuple(f.name for f in fields(EngagementFilter))


def _date(params: Mapping, name: str, errors: dict) -> date | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = [f"{raw!r} is not a date (YYYY-MM-DD)."]
        return None


def parse_filters(params: Mapping, *, allow_status: bool = True) -> EngagementFilter:
    """EngagementFilter from query parameters; Invalid names each bad one."""
    errors = {}
    values = {name: (params.get(name) or "").strip()[:254] for name in ("offering", "owner", "sales_rep", "segment")}
    status = (params.get("status") or "").strip() if allow_status else ""
    if status and status not in Status.values:
        errors["status"] = [f"{status!r} is not one of: {', '.join(Status.values)}."]
    purchased_from = _date(params, "purchased_from", errors)
    purchased_to = _date(params, "purchased_to", errors)
    if purchased_from and purchased_to and purchased_from > purchased_to:
        errors["purchased_to"] = ["Must be on or after purchased_from."]
    if errors:
        raise Invalid(errors)
    return EngagementFilter(status=status, purchased_from=purchased_from, purchased_to=purchased_to, **values)


def filters_or_errors(params: Mapping, *, allow_status: bool = True) -> tuple[EngagementFilter, dict]:
    """For pages: the filter, or no filter and the errors per parameter (shown above the results)."""
    try:
        return parse_filters(params, allow_status=allow_status), {}
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
    for name in ("owner", "sales_rep"):
        email = getattr(flt, name)
        if email:
            members = Member.objects.filter(user__email__iexact=email).values("id")
            queryset = queryset.filter(**{f"{name}__in": members})
    if flt.segment:
        queryset = queryset.filter(customer__segment=flt.segment)
    if flt.purchased_from:
        queryset = queryset.filter(pos_at__gte=_local_midnight(flt.purchased_from, tenant))
    if flt.purchased_to:
        queryset = queryset.filter(pos_at__lt=_local_midnight(flt.purchased_to + timedelta(days=1), tenant))
    return queryset


def filtered_engagements(flt: EngagementFilter, tenant: Tenant) -> QuerySet[Engagement]:
    return apply(Engagement.objects.all(), flt, tenant)
