"""What a member's digest says, by role. notify.digests sends it; the digest pages show it.

Every query runs inside the tenant's scope, so a digest can only show its own tenant's rows. Each
list is one capped query plus its count: a member with thousands of customers gets a readable
email whose "and N more" links to the dashboard. Sections are generic (columns, rows of cells),
so the text and HTML templates render every role the same way.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, F, OrderBy, OuterRef, Q, QuerySet, Subquery

from engagement.filters import EngagementFilter
from engagement.models import OPEN_STATUSES, Engagement, Milestone, Status
from engagement.projection import SATISFACTION_STEP
from metrics import queries, rollups
from metrics.alerts import LIVE
from metrics.models import Alert
from notify.mail import absolute
from tenants.models import Member, Role, Tenant

LIST_LIMIT = 25
DUE_SOON = timedelta(days=7)
DAY = timedelta(days=1)


@dataclass
class Row:
    cells: list[str]
    url: str = ""


@dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[Row]
    total: int
    link: str = ""
    counted: bool = True  # a list says how many it holds; a table of metrics does not

    @property
    def more(self) -> int:
        return self.total - len(self.rows)

    @property
    def lines(self) -> Iterator[dict[str, Any]]:
        """For the text part: each row's first cell, then the others labelled by their column."""
        for row in self.rows:
            details = [(label, cell) for label, cell in zip(self.columns[1:], row.cells[1:], strict=True) if cell]
            yield {"title": row.cells[0], "details": details, "url": row.url}


@dataclass
class DigestContent:
    tenant: Tenant
    member: Member
    frequency: str
    now: datetime
    since: datetime
    window: timedelta
    sections: list[Section] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)  # what the subject says, e.g. ["2 stalled customers"]

    @property
    def is_empty(self) -> bool:
        return not any(section.total for section in self.sections)

    @property
    def dashboard_url(self) -> str:
        return absolute("overview", self.tenant.slug)

    @property
    def preferences_url(self) -> str:
        return absolute("digest", self.tenant.slug)


def days_overdue(due_at: datetime | None, now: datetime) -> int:
    """Whole days past a due date, counted as the dashboards count them (0 when not yet due)."""
    return max(0, int((now - due_at) / DAY)) if due_at else 0


def plural(count: int, word: str) -> str:
    return f"{count} {word if count == 1 else word + 's'}"


def _with_step_names(engagements: QuerySet[Engagement]) -> QuerySet[Engagement]:
    """The next step's name in the same query ('satisfaction' has no milestone row)."""
    name = Milestone.objects.filter(offering_id=OuterRef("offering_id"), key=OuterRef("next_step")).values("name")
    return engagements.select_related("customer", "offering").annotate(next_step_name=Subquery(name[:1]))


def _step(engagement: Any) -> str:
    if engagement.next_step == SATISFACTION_STEP:
        return "Satisfaction"
    return engagement.next_step_name or engagement.next_step or "–"


def _listed(queryset: QuerySet[Any], *order: str | OrderBy) -> tuple[list[Any], int]:
    """The first rows, with the attributes their query annotated, and how many there are in all."""
    return list(queryset.order_by(*order, "id")[:LIST_LIMIT]), queryset.count()


def _engagement_url(tenant: Tenant, engagement: Engagement) -> str:
    return absolute("engagement", tenant.slug, engagement.id)


def owner_sections(content: DigestContent) -> None:
    tenant, now, mine = content.tenant, content.now, Engagement.objects.filter(owner=content.member)
    stalled, stalled_total = _listed(_with_step_names(mine.filter(status=Status.STALLED)), "next_due_at")
    at_risk, at_risk_total = _listed(
        mine.filter(forecast__at_risk=True).select_related("customer", "forecast"), "forecast__reach_by_target"
    )
    reached, reached_total = _listed(
        mine.filter(status=Status.REACHED, pov_at__gte=content.since).select_related("customer", "offering"), "pov_at"
    )
    due = mine.filter(status=Status.ON_TRACK, next_due_at__gte=now, next_due_at__lt=now + DUE_SOON)
    due_soon, due_total = _listed(_with_step_names(due), "next_due_at")
    list_url = absolute("engagements", tenant.slug)
    content.sections += [
        Section("Stalled customers", ["Customer", "Next milestone", "Days overdue"],
                [Row([e.customer.name, _step(e), str(days_overdue(e.next_due_at, now))], _engagement_url(tenant, e))
                 for e in stalled], stalled_total, f"{list_url}?status=stalled"),
        Section("At risk of missing their target", ["Customer", "Chance by the target day", "Half of similar by"],
                [Row([e.customer.name, _percent(e.forecast.reach_by_target), _day(e.forecast.expected_pov_day)],
                     _engagement_url(tenant, e)) for e in at_risk], at_risk_total, f"{list_url}?at_risk=true"),
        Section("Reached PoV since the last digest", ["Customer", "Offering", "Days to value"],
                [Row([e.customer.name, e.offering.name, f"{e.days_to_value:.1f}"], _engagement_url(tenant, e))
                 for e in reached], reached_total, f"{list_url}?status=reached"),
        Section("Milestones due in the next 7 days", ["Customer", "Milestone", "Due"],
                [Row([e.customer.name, _step(e), _local_date(e.next_due_at, tenant)], _engagement_url(tenant, e))
                 for e in due_soon], due_total, f"{list_url}?status=on_track&sort=due"),
    ]  # fmt: skip
    if stalled_total:
        content.headline.append(plural(stalled_total, "stalled customer"))
    if at_risk_total:
        content.headline.append(f"{at_risk_total} at risk")
    if reached_total:
        content.headline.append(f"{reached_total} reached PoV")
    if due_total:
        content.headline.append(f"{plural(due_total, 'milestone')} due this week")


def _day(value: float | None) -> str:
    return "not yet" if value is None else f"day {value:.0f}"


def _local_date(moment: datetime, tenant: Tenant) -> str:
    local = moment.astimezone(tenant.tzinfo)
    return f"{local:%a} {local.day} {local:%b}"


def sales_sections(content: DigestContent) -> None:
    tenant, now = content.tenant, content.now
    sold = Engagement.objects.filter(sales_rep=content.member)
    news = sold.filter(Q(status__in=OPEN_STATUSES) | Q(status=Status.REACHED, pov_at__gte=content.since))
    progress = _with_step_names(news).annotate(
        steps_reached=Count("reaches", distinct=True), steps=Count("offering__milestones", distinct=True)
    )
    # Longest overdue first; reached ones (nothing due) last.
    rows, total = _listed(progress, F("next_due_at").asc(nulls_last=True))
    if not total:
        return  # nothing under way and nobody reached PoV since the last digest: no news
    content.sections.append(
        Section("PoV progress of the customers you sold", ["Customer", "Status", "Milestones", "Next"],
                [Row([e.customer.name, e.get_status_display(), f"{e.steps_reached} of {e.steps}", _next(e, now)],
                     _engagement_url(tenant, e)) for e in rows],
                total, absolute("engagements", tenant.slug) + "?" + urlencode({"sales_rep": content.member.email}))
    )  # fmt: skip
    mine = queries.summary(EngagementFilter(sales_rep=content.member.email), tenant)
    content.sections.append(
        Section("Your PoV rate", ["Metric", "Value", ""], [
            Row(["PoV rate", _percent(mine["pov_rate"]), f"{mine['reached']} of {mine['purchases']} customers"]),
            Row(["By the target day", _percent(_share(mine["reached_by_target"])), "of all your buyers"]),
            Row(["Half reach PoV by", _day(mine["days_to_value_p50"]), "of all your buyers"]),
        ], 3, absolute("team", tenant.slug), counted=False)
    )  # fmt: skip
    content.headline.append(f"PoV rate {_percent(mine['pov_rate'])}")
    content.headline.append(f"{plural(total, 'customer')} to follow")


def _next(engagement: Any, now: datetime) -> str:
    if engagement.status == Status.REACHED:
        return f"reached PoV in {engagement.days_to_value:.1f} days"
    if engagement.status == Status.PAUSED or engagement.next_due_at is None:
        return _step(engagement)
    late = days_overdue(engagement.next_due_at, now)
    return f"{_step(engagement)}, {plural(late, 'day')} overdue" if late else _step(engagement)


def service_sections(content: DigestContent) -> None:
    tenant, now = content.tenant, content.now
    step = Milestone.objects.filter(offering_id=OuterRef("engagement__offering_id"), key=OuterRef("step"))
    live = (
        Alert.objects.filter(state__in=LIVE)
        .select_related("engagement__customer", "engagement__owner__user", "assignee__user")
        .annotate(step_name=Subquery(step.values("name")[:1]))
    )
    alerts, total = _listed(live, "due_at")  # most overdue first, as on the alerts page
    content.sections.append(
        Section("The open alert queue", ["Customer", "Stuck before", "Days overdue", "Owner", "State"],
                [Row([a.engagement.customer.name, _alert_step(a), str(days_overdue(a.due_at, now)),
                      a.engagement.owner.user.email if a.engagement.owner else "unowned", _alert_state(a)],
                     _engagement_url(tenant, a.engagement)) for a in alerts],
                total, absolute("alerts", tenant.slug))
    )  # fmt: skip
    if total:
        content.headline.append(plural(total, "open alert"))


def _alert_step(alert: Any) -> str:
    return "Satisfaction" if alert.step == SATISFACTION_STEP else alert.step_name or alert.step


def _alert_state(alert: Alert) -> str:
    state = alert.get_state_display()
    if alert.assignee:
        state += f" by {alert.assignee.user.email}"
    return state + (", escalated" if alert.escalated_at else "")


HEADLINE_METRICS = (
    ("PoV rate so far", "pov_rate", "percent"),
    ("Purchases", "purchases", "count"),
    ("Reached PoV", "reached", "count"),
    ("Reached PoV by the target day", "reached_by_target", "percent"),
    ("Half reach PoV by", "days_to_value_p50", "days"),
    ("At risk", "at_risk", "count"),
    ("Stalled", "stalled", "count"),
    ("Unowned", "unowned", "count"),
)


def admin_sections(content: DigestContent) -> None:
    """The stored rollups (fresh within a minute of a write), compared with the snapshot a window ago."""
    tenant = content.tenant
    summary = queries.summary(EngagementFilter(), tenant)
    if not summary["purchases"]:
        return
    baseline = _baseline(tenant, content.now, content.window)
    since = f"since {baseline[0].day} {baseline[0]:%b}" if baseline else "Change"
    rows = [Row([label, _format(_value(summary, name), kind), _change(_value(summary, name), baseline, name, kind)])
            for label, name, kind in HEADLINE_METRICS]  # fmt: skip
    columns = ["Metric", "Now", since]
    content.sections.append(Section("Headline metrics", columns, rows, len(rows), content.dashboard_url, counted=False))
    content.headline += [f"PoV rate {_percent(summary['pov_rate'])}", plural(summary["purchases"], "purchase")]
    criteria = queries.criteria_met(EngagementFilter(), tenant)
    rows = [Row([r["offering"], r["criterion"], _percent(r["share"]), str(r["answered"])]) for r in criteria]
    team_url = absolute("team", tenant.slug)
    columns = ["Offering", "Success criterion", "Met", "Answers"]
    content.sections.append(Section("Success criteria met", columns, rows, len(rows), team_url, counted=False))


def _baseline(tenant: Tenant, now: datetime, window: timedelta) -> tuple[Any, dict] | None:
    """(day, summary) of the newest snapshot at least `window` old; while the tenant is younger than
    that, its oldest snapshot before today; None when there is none."""
    today = now.astimezone(tenant.tzinfo).date()
    fields = tuple(name for _, name, _ in HEADLINE_METRICS)
    points = [(day, summary) for day, summary in rollups.trend("all", "", window.days + 1, fields) if day < today]
    old_enough = [point for point in points if point[0] <= today - window]
    if old_enough:
        return old_enough[-1]
    return points[0] if points else None


def _share(by_target: dict | None) -> float | None:
    return by_target["share"] if by_target else None


def _value(summary: dict, name: str) -> Any:
    """A headline figure; the share by the target day is its point estimate. Snapshots from before a
    figure existed lack it (None)."""
    value = summary.get(name)
    return _share(value) if name == "reached_by_target" else value


def _change(value: Any, baseline: tuple[Any, dict] | None, name: str, kind: str) -> str:
    before = _value(baseline[1], name) if baseline else None
    if value is None or before is None:
        return ""
    delta = value - before
    if kind == "percent":
        return f"{delta * 100:+.0f} pts"
    return f"{delta:+.1f} d" if kind == "days" else f"{delta:+d}"


def _format(value: Any, kind: str) -> str:
    return {"percent": _percent, "days": _days}.get(kind, str)(value)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} days"


BUILDERS: dict[str, Callable[[DigestContent], None]] = {
    Role.OWNER: owner_sections,
    Role.SALES: sales_sections,
    Role.SERVICE: service_sections,
    Role.ADMIN: admin_sections,
}


def build_content(
    *, tenant: Tenant, member: Member, frequency: str, now: datetime, since: datetime, window: timedelta
) -> DigestContent:
    """The digest of `member` as of `now`: news since `since`, trends over `window`."""
    content = DigestContent(tenant=tenant, member=member, frequency=frequency, now=now, since=since, window=window)
    if builder := BUILDERS.get(member.role):
        builder(content)
    return content
