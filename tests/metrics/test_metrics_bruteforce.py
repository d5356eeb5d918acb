"""Every number of docs/metrics.md against a brute-force model written here from its text.

Each hypothesis example builds a fresh tenant (New York time, so purchase months and date filters
are local) with random offerings, members, segments, engagements and milestone reaches, and checks
summary, cohorts, funnel and both scoreboards, unfiltered and under up to three random filters. The model
uses NumPy's percentiles and its own naive Kaplan–Meier, never `metrics.stats`.
"""

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from django.db import connection
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engagement.filters import EngagementFilter
from engagement.models import Customer, Engagement, MilestoneReach, Purchase, Status
from metrics.queries import cohorts, funnel, scoreboard, summary
from tenants.scoping import tenant_scope
from tests.factories import MemberFactory, TenantFactory, make_offering

TZ = ZoneInfo("America/New_York")
NOW = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
START = datetime(2024, 11, 20, tzinfo=UTC)
# Instants whose month or date differs between UTC and New York, and one exactly at local midnight.
EDGES = [
    datetime(2025, 1, 1, 3, 0, tzinfo=UTC),  # 2024-12-31 22:00 local
    datetime(2025, 2, 1, 4, 59, 59, tzinfo=UTC),  # 2025-01-31 23:59:59 local
    datetime(2025, 2, 1, 5, 0, tzinfo=UTC),  # 2025-02-01 00:00 local
    datetime(2025, 3, 1, 2, 30, tzinfo=UTC),  # 2025-02-28 21:30 local
]
TARGETS = {"basic": 7, "pro": 14, "suite": 30}
# Sixteenths of a day (90 minutes) are exact floats: with purchase times and pauses on the same grid,
# a censored clock that equals an event day is an exact tie, never one broken by an ulp.
GRID = timedelta(minutes=90)
# Day values that repeat (ties) and sit exactly on the targets (on time is <=).
DAYS = st.one_of(st.sampled_from([0.5, 2.0, 7.0, 7.0, 14.0, 30.0]), st.integers(0, 60 * 16).map(lambda k: k / 16))
BASE_KEYS = ("purchases", "reached", "lost", "stalled", "on_track", "paused", "unowned")
RATE_KEYS = ("pov_rate", "median_days_to_value", "p75_days_to_value", "p90_days_to_value", "on_time_rate")
_slugs = itertools.count()


@dataclass
class Row:
    """One engagement as the model sees it."""

    offering: str
    owner: str | None
    sales_rep: str | None
    segment: str
    pos_at: datetime
    status: str
    days: float  # days_to_value when reached, days_to_loss when lost
    paused_days: float
    paused_since: datetime | None
    reaches: dict = field(default_factory=dict)  # milestone key -> clock days

    @property
    def target(self):
        return TARGETS[self.offering]

    @property
    def local_date(self):
        return self.pos_at.astimezone(TZ).date()

    def km(self):
        """(duration, observed): PoV at days_to_value, lost at days_to_loss, others at the clock now."""
        if self.status == Status.REACHED:
            return self.days, True
        if self.status == Status.LOST:
            return self.days, False
        open_pause = (NOW - self.paused_since).total_seconds() / 86400 if self.paused_since else 0.0
        # Elapsed minus all paused time, summed first: subtracting one by one can differ by an ulp and
        # split a censoring from an event on the same day.
        return (NOW - self.pos_at).total_seconds() / 86400 - (self.paused_days + open_pause), False


@st.composite
def worlds(draw):
    offerings = draw(st.lists(st.sampled_from(sorted(TARGETS)), min_size=1, max_size=3, unique=True))
    members = [f"m{i}" for i in range(draw(st.integers(0, 3)))]
    segments = ["smb", "enterprise"][: draw(st.integers(0, 2))]
    rows = []
    for _ in range(draw(st.integers(0, 14))):
        steps = st.integers(0, (NOW - START) // GRID - 1)
        pos_at = draw(st.one_of(st.sampled_from(EDGES), steps.map(lambda k: START + k * GRID)))
        status = draw(st.sampled_from(Status.values))
        elapsed = (NOW - pos_at).total_seconds() / 86400
        # Pauses take a share of the elapsed time, so the clock never runs backwards.
        closed = draw(st.integers(0, int(elapsed * 16 * 0.4))) / 16
        open_steps = draw(st.integers(1, max(1, int(elapsed * 16 * 0.4)))) if status == Status.PAUSED else 0
        offering = draw(st.sampled_from(offerings))
        n_milestones = 3 if offering != "basic" else 2
        row = Row(
            offering=offering,
            owner=draw(st.none() | st.sampled_from(members)) if members else None,
            sales_rep=draw(st.none() | st.sampled_from(members)) if members else None,
            segment=draw(st.sampled_from(["", *segments])),
            pos_at=pos_at,
            status=status,
            days=draw(DAYS),
            paused_days=closed,
            paused_since=NOW - open_steps * GRID if open_steps else None,
        )
        for i in range(n_milestones):
            clock = draw(st.none() | DAYS)
            if clock is not None:
                row.reaches[f"m{i + 1}"] = clock
        rows.append(row)
    return offerings, members, segments, rows


@st.composite
def filters(draw, offerings, emails, segments, rows):
    """One or two fields set, each to a real value or one that matches nothing (more would mostly
    select nothing). Dates are local purchase days and their neighbours, so the bounds land on purchases."""
    near = sorted({r.local_date + timedelta(days=k) for r in rows for k in (-1, 0, 1)})
    choices = {
        "offering": [*offerings, "nothing"],
        # Emails match case-insensitively, as members sign in with them.
        "owner": [*emails, *(e.upper() for e in emails[:1]), "ghost@example.test"],
        "sales_rep": [*emails, "ghost@example.test"],
        "segment": [*segments, "nothing"],
        "purchased_from": near or [date(2025, 1, 1)],
        "purchased_to": near or [date(2025, 1, 1)],
    }
    names = draw(st.sets(st.sampled_from(sorted(choices)), min_size=1, max_size=2))
    values = {name: draw(st.sampled_from(choices[name])) for name in sorted(names)}
    if values.get("purchased_from", date.min) > values.get("purchased_to", date.max):
        values["purchased_from"], values["purchased_to"] = values["purchased_to"], values["purchased_from"]
    return EngagementFilter(**values)


def build(tenant, offerings, members, segments, rows):
    """The world in `tenant`; returns ({key: Offering}, {member name: email})."""
    with tenant_scope(tenant):
        # Users are global, so each tenant's members get emails of their own.
        member = {m: MemberFactory(tenant=tenant, user__email=f"{m}@{tenant.slug}.test") for m in members}
        offers = {}
        for key in offerings:
            target = TARGETS[key]
            due = (2, target) if key == "basic" else (2, target // 2, target)
            offers[key] = make_offering(tenant, key=key, due_days=due)
        milestones = {(o.key, m.key): m for o in offers.values() for m in o.milestones.all()}
        customers, purchases, engagements, reaches = [], [], [], []
        for n, r in enumerate(rows):
            customers.append(Customer(tenant=tenant, external_id=f"c{n}", name=f"C{n}", segment=r.segment))
            purchases.append(
                Purchase(tenant=tenant, external_id=f"p{n}", customer=customers[-1],
                         offering=offers[r.offering], purchased_at=r.pos_at)
            )  # fmt: skip
            engagements.append(
                Engagement(
                    tenant=tenant, purchase=purchases[-1], customer=customers[-1], offering=offers[r.offering],
                    pos_at=r.pos_at, status=r.status, owner=member.get(r.owner), sales_rep=member.get(r.sales_rep),
                    days_to_value=r.days if r.status == Status.REACHED else None,
                    days_to_loss=r.days if r.status == Status.LOST else None,
                    paused_days=r.paused_days, paused_since=r.paused_since,
                )
            )  # fmt: skip
            reaches += [
                MilestoneReach(tenant=tenant, engagement=engagements[-1], milestone=milestones[(r.offering, key)],
                               reached_at=r.pos_at + timedelta(days=clock), clock_days=clock)
                for key, clock in r.reaches.items()
            ]  # fmt: skip
        for model, objs in ((Customer, customers), (Purchase, purchases), (Engagement, engagements)):
            model.objects.bulk_create(objs)
        MilestoneReach.objects.bulk_create(reaches)
    return offers, {m: member[m].user.email for m in members}


# The model ----------------------------------------------------------------------------------------


def select(rows, flt, emails):
    def keep(r):
        return (
            (not flt.offering or r.offering == flt.offering)
            and (not flt.owner or emails.get(r.owner) == flt.owner.lower())
            and (not flt.sales_rep or emails.get(r.sales_rep) == flt.sales_rep)
            and (not flt.segment or r.segment == flt.segment)
            and (not flt.purchased_from or r.local_date >= flt.purchased_from)
            and (not flt.purchased_to or r.local_date <= flt.purchased_to)
        )

    return [r for r in rows if keep(r)]


def pct(values, q):
    return float(np.percentile(values, q)) if values else None


def model_base(rows):
    reached = [r.days for r in rows if r.status == Status.REACHED]
    counts = {s: sum(r.status == s for r in rows) for s in Status.values}
    on_time = sum(r.days <= r.target for r in rows if r.status == Status.REACHED)
    return {
        "purchases": len(rows),
        **counts,
        "unowned": sum(r.owner is None for r in rows),
        "pov_rate": len(reached) / len(rows) if rows else None,
        "median_days_to_value": pct(reached, 50),
        "p75_days_to_value": pct(reached, 75),
        "p90_days_to_value": pct(reached, 90),
        "on_time_rate": on_time / len(reached) if reached else None,
    }


def model_km(rows):
    """[(day, reached_share)] by the textbook product over distinct event days."""
    pairs = [r.km() for r in rows]
    curve, survival = [], 1.0
    for day in sorted({d for d, seen in pairs if seen}):
        at_risk = sum(d >= day for d, _ in pairs)
        events = sum(seen and d == day for d, seen in pairs)
        survival *= 1 - events / at_risk
        curve.append((day, 1 - survival))
    return curve


def model_by_target(rows):
    """reached_share at the target day, when the rows share one offering (per offering)."""
    if len({r.offering for r in rows}) != 1:
        return None
    return max((share for day, share in model_km(rows) if day <= rows[0].target), default=0.0)


def assert_same(actual, expected, keys):
    for key in keys:
        want = expected[key]
        assert actual[key] == (want if want is None or isinstance(want, int) else pytest.approx(want, abs=1e-9)), key


# The checks ---------------------------------------------------------------------------------------


def check_summary(tenant, rows, flt, emails):
    chosen = select(rows, flt, emails)
    result = summary(flt, tenant, now=NOW)
    assert_same(result, model_base(chosen), BASE_KEYS + RATE_KEYS)
    curve = model_km(chosen)
    assert [(p["day"], p["reached_share"]) for p in result["km_curve"]] == [
        (pytest.approx(d, abs=1e-9), pytest.approx(s, abs=1e-9)) for d, s in curve
    ]
    median = next((d for d, share in curve if share >= 0.5 - 1e-10), None)
    assert result["km_median_days"] == (None if median is None else pytest.approx(median, abs=1e-9))
    by_target = model_by_target(chosen)
    assert result["km_reached_by_target"] == (None if by_target is None else pytest.approx(by_target, abs=1e-9))
    assert result["target_days"] == (None if by_target is None else chosen[0].target)
    assert result["computed_at"]


def check_cohorts(tenant, rows, flt, emails):
    months = {}
    for r in select(rows, flt, emails):
        months.setdefault(r.pos_at.astimezone(TZ).strftime("%Y-%m"), []).append(r)
    result = cohorts(flt, tenant, now=NOW)["results"]
    assert [c["month"] for c in result] == sorted(months)  # oldest first
    for cohort in result:
        chosen = months[cohort["month"]]
        expected = {**model_base(chosen), "km_reached_by_target": model_by_target(chosen)}
        keys = ("purchases", "reached", "pov_rate", "median_days_to_value", "km_reached_by_target")
        assert_same(cohort, expected, keys)


def check_funnel(tenant, rows, flt, emails, offering):
    chosen = [r for r in select(rows, flt, emails) if r.offering == offering.key]
    result = funnel(flt, tenant, offering, now=NOW)
    assert result["purchases"] == len(chosen)
    assert [m["milestone"] for m in result["milestones"]] == [m.key for m in offering.milestones.all()]
    for step in result["milestones"]:
        clocks = [r.reaches[step["milestone"]] for r in chosen if step["milestone"] in r.reaches]
        expected = {
            "reached": len(clocks),
            "rate": len(clocks) / len(chosen) if chosen else None,
            "median_clock_days": pct(clocks, 50),
        }
        assert_same(step, expected, expected.keys())


def check_scoreboard(tenant, rows, flt, emails, by):
    groups = {}
    for r in select(rows, flt, emails):
        groups.setdefault(emails.get(getattr(r, by)), []).append(r)
    result = scoreboard(flt, tenant, by, now=NOW)["results"]
    assert {g[by] for g in result} == set(groups)  # unowned is None; members without rows are left out
    assert len(result) == len(groups)
    for group in result:
        assert_same(group, model_base(groups[group[by]]), BASE_KEYS + RATE_KEYS)


@given(world=worlds(), data=st.data())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_metric_matches_the_brute_force_model(transactional_db, world, data):
    # Examples share one database: each gets a fresh tenant, and the earlier examples' tenants stay
    # behind as other tenants' rows that must never count.
    offerings, _, segments, rows = world
    tenant = TenantFactory(slug=f"bf-{next(_slugs)}", time_zone="America/New_York")
    offers, emails = build(tenant, *world)
    narrowing = st.lists(filters(offerings, sorted(emails.values()), segments, rows), min_size=1, max_size=3)
    chosen = data.draw(narrowing, label="filters")
    note(f"rows={rows}")
    with tenant_scope(tenant):
        for f in (EngagementFilter(), *chosen):
            check_summary(tenant, rows, f, emails)
            check_cohorts(tenant, rows, f, emails)
            # The API asks for a funnel with ?offering=<key>, so the filter's offering is the funnel's.
            for offering in offers.values():
                if f.offering in ("", offering.key):
                    check_funnel(tenant, rows, f, emails, offering)
            for by in ("owner", "sales_rep"):
                check_scoreboard(tenant, rows, f, emails, by)


def test_other_tenants_engagements_never_count(tenant, other_tenant):
    mine = [Row("pro", "m0", None, "smb", EDGES[2], Status.REACHED, 3.0, 0.0, None, {"m3": 3.0})]
    theirs = [Row("pro", "m0", "m0", "smb", EDGES[2], s, 3.0, 0.0, None, {"m1": 1.0}) for s in Status.values]
    _, their_emails = build(other_tenant, ["pro"], ["m0"], ["smb"], theirs)
    offers, _ = build(tenant, ["pro"], ["m0"], ["smb"], mine)
    with tenant_scope(tenant):
        result = summary(EngagementFilter(), tenant, now=NOW)
        assert (result["purchases"], result["reached"], result["unowned"]) == (1, 1, 0)
        assert [p["reached_share"] for p in result["km_curve"]] == [1.0]
        assert [c["purchases"] for c in cohorts(EngagementFilter(), tenant, now=NOW)["results"]] == [1]
        steps = funnel(EngagementFilter(), tenant, offers["pro"], now=NOW)["milestones"]
        assert [s["reached"] for s in steps] == [0, 0, 1]
        reps = scoreboard(EngagementFilter(), tenant, "sales_rep", now=NOW)["results"]
        assert [(g["sales_rep"], g["purchases"]) for g in reps] == [(None, 1)]
        # A filter naming the other tenant's member matches nothing here, never their rows.
        assert summary(EngagementFilter(owner=their_emails["m0"]), tenant, now=NOW)["purchases"] == 0


def test_live_metrics_hold_no_more_locks_with_each_run_in_one_transaction(scoped):
    """Hundreds of computations in one transaction must not fill PostgreSQL's shared lock table."""

    def locks_held():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()")
            return cursor.fetchone()[0]

    summary(EngagementFilter(), scoped, now=NOW)  # the first run may set up what the session keeps
    before = locks_held()
    for _ in range(20):
        summary(EngagementFilter(), scoped, now=NOW)
    assert locks_held() - before < 20
