"""What a member's digest says, by role. notify.digests sends it; the digest pages show it.

Every query runs inside the tenant's scope, so a digest can only show its own tenant's rows. Each
list is one capped query plus its count: a member with thousands of customers gets a readable
email whose "and N more" links to the dashboard. Sections are generic (columns, rows of cells),
so the text and HTML templates render every role the same way.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.urls import reverse

from engagement.filters import EngagementFilter
from engagement.models import OPEN_STATUSES, Engagement, Milestone, Status
from engagement.projection import SATISFACTION_STEP
from metrics import queries, rollups
from metrics.alerts import LIVE
from metrics.models import Alert
from tenants.models import Role

LIST_LIMIT = 25
DUE_SOON = timedelta(days=7)
DAY = timedelta(days=1)


def absolute(name, *args):
    return settings.SITE_URL + reverse(name, args=args)


@dataclass
class Row:
    cells: list
    url: str = ""


@dataclass
class Section:
    title: str
    columns: list
    rows: list
    total: int
    link: str = ""
    counted: bool = True  # a list says how many it holds; a table of metrics does not

    @property
    def more(self):
        return self.total - len(self.rows)

    @property
    def lines(self):
        """For the text part: each row's first cell, then the others labelled by their column."""
        for row in self.rows:
            details = [(label, cell) for label, cell in zip(self.columns[1:], row.cells[1:], strict=True) if cell]
            yield {"title": row.cells[0], "details": details, "url": row.url}


@dataclass
class DigestContent:
    tenant: object
    member: object
    frequency: str
    now: object
    since: object
    sections: list = field(default_factory=list)
    headline: list = field(default_factory=list)  # what the subject says, e.g. ["2 stalled customers"]

    @property
    def is_empty(self):
        return not any(section.total for section in self.sections)

    @property
    def dashboard_url(self):
        return absolute("overview", self.tenant.slug)

    @property
    def preferences_url(self):
        return absolute("digest", self.tenant.slug)


def days_overdue(due_at, now):
    """Whole days past a due date, counted as the dashboards count them (0 when not yet due)."""
    return max(0, int((now - due_at) / DAY)) if due_at else 0


def plural(count, word, words=None):
    return f"{count} {word if count == 1 else (words or word + 's')}"


def _with_step_names(engagements):
    """The next step's name in the same query ('satisfaction' has no milestone row)."""
    name = Milestone.objects.filter(offering_id=OuterRef("offering_id"), key=OuterRef("next_step")).values("name")
    return engagements.select_related("customer", "offering").annotate(next_step_name=Subquery(name[:1]))


def _step(engagement):
    if engagement.next_step == SATISFACTION_STEP:
        return "Satisfaction"
    return engagement.next_step_name or engagement.next_step or "–"


def _listed(queryset, *order):
    return list(queryset.order_by(*order, "id")[:LIST_LIMIT]), queryset.count()


def _engagement_url(tenant, engagement):
    return absolute("engagement", tenant.slug, engagement.id)


# Owners -------------------------------------------------------------------------------------------


def owner_sections(content):
    tenant, now, mine = content.tenant, content.now, Engagement.objects.filter(owner=content.member)
    stalled, stalled_total = _listed(_with_step_names(mine.filter(status=Status.STALLED)), "next_due_at")
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
        Section("Reached PoV since the last digest", ["Customer", "Offering", "Days to value"],
                [Row([e.customer.name, e.offering.name, f"{e.days_to_value:.1f}"], _engagement_url(tenant, e))
                 for e in reached], reached_total, f"{list_url}?status=reached"),
        Section("Milestones due in the next 7 days", ["Customer", "Milestone", "Due"],
                [Row([e.customer.name, _step(e), _local_date(e.next_due_at, tenant)], _engagement_url(tenant, e))
                 for e in due_soon], due_total, f"{list_url}?status=on_track&sort=due"),
    ]  # fmt: skip
    content.headline += [
        text
        for count, text in (
            (stalled_total, plural(stalled_total, "stalled customer")),
            (reached_total, f"{reached_total} reached PoV"),
            (due_total, f"{plural(due_total, 'milestone')} due this week"),
        )
        if count
    ]


def _local_date(moment, tenant):
    local = moment.astimezone(tenant.tzinfo)
    return f"{local:%a} {local.day} {local:%b}"


# Sales --------------------------------------------------------------------------------------------


def sales_sections(content):
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
            Row(["Median days to value", _days(mine["median_days_to_value"]), ""]),
        ], 2, absolute("team", tenant.slug), counted=False)
    )  # fmt: skip
    content.headline.append(f"PoV rate {_percent(mine['pov_rate'])}")
    content.headline.append(f"{plural(total, 'customer')} to follow")


def _next(engagement, now):
    if engagement.status == Status.REACHED:
        return f"reached PoV in {engagement.days_to_value:.1f} days"
    if engagement.status == Status.PAUSED or engagement.next_due_at is None:
        return _step(engagement)
    late = days_overdue(engagement.next_due_at, now)
    return f"{_step(engagement)}, {plural(late, 'day')} overdue" if late else _step(engagement)


# Service ------------------------------------------------------------------------------------------


def service_sections(content):
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


def _alert_step(alert):
    return "Satisfaction" if alert.step == SATISFACTION_STEP else alert.step_name or alert.step


def _alert_state(alert):
    state = alert.get_state_display()
    if alert.assignee_id:
        state += f" by {alert.assignee.user.email}"
    return state + (", escalated" if alert.escalated_at else "")


# Admins -------------------------------------------------------------------------------------------

HEADLINE_METRICS = (
    ("PoV rate", "pov_rate", "percent"),
    ("Purchases", "purchases", "count"),
    ("Reached PoV", "reached", "count"),
    ("Median days to value", "median_days_to_value", "days"),
    ("On time", "on_time_rate", "percent"),
    ("Stalled", "stalled", "count"),
    ("Unowned", "unowned", "count"),
)


def admin_sections(content, window):
    """The stored rollups (fresh within a minute of a write), compared with the snapshot `window` ago."""
    tenant = content.tenant
    summary = queries.summary(EngagementFilter(), tenant)
    if not summary["purchases"]:
        return
    baseline = _baseline(tenant, content.now, window)
    since = f"since {baseline[0].day} {baseline[0]:%b}" if baseline else "Change"
    rows = [Row([label, _format(summary[name], kind), _change(summary[name], baseline, name, kind)])
            for label, name, kind in HEADLINE_METRICS]  # fmt: skip
    columns = ["Metric", "Now", since]
    content.sections.append(Section("Headline metrics", columns, rows, len(rows), content.dashboard_url, counted=False))
    content.headline += [f"PoV rate {_percent(summary['pov_rate'])}", plural(summary["purchases"], "purchase")]


def _baseline(tenant, now, window):
    """(day, summary) of the newest snapshot at least `window` old; while the tenant is younger than
    that, its oldest snapshot before today; None when there is none."""
    today = now.astimezone(tenant.tzinfo).date()
    points = [(day, summary) for day, summary in rollups.trend("all", "", days=window.days + 1) if day < today]
    old_enough = [point for point in points if point[0] <= today - window]
    if old_enough:
        return old_enough[-1]
    return points[0] if points else None


def _change(value, baseline, name, kind):
    before = baseline[1].get(name) if baseline else None
    if value is None or before is None:
        return ""
    delta = value - before
    if kind == "percent":
        return f"{delta * 100:+.0f} pts"
    return f"{delta:+.1f} d" if kind == "days" else f"{delta:+d}"


def _format(value, kind):
    return {"percent": _percent, "days": _days}.get(kind, str)(value)


def _percent(value):
    return "–" if value is None else f"{value * 100:.0f}%"


def _days(value):
    return "–" if value is None else f"{value:.1f} days"


BUILDERS = {Role.OWNER: owner_sections, Role.SALES: sales_sections, Role.SERVICE: service_sections}


def build_content(*, tenant, member, frequency, now, since, window):
    """The digest of `member` as of `now`: news since `since`, trends over `window`."""
    content = DigestContent(tenant=tenant, member=member, frequency=frequency, now=now, since=since)
    if member.role == Role.ADMIN:
        admin_sections(content, window)
    elif member.role in BUILDERS:
        BUILDERS[member.role](content)
    return content
