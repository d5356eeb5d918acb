"""Every number of docs/metrics.md against a brute-force model written here from its text.

Each hypothesis example builds a fresh tenant (New York time, so purchase months and date filters
are local) with random offerings, members, segments, engagements and milestone reaches, and checks
summary, cohorts, funnel and both scoreboards, unfiltered and under up to three random filters. The model
uses NumPy's percentiles and the plain-Python Aalen–Johansen estimator of tests/metrics/aj_oracle.py.
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
from tests.metrics import aj_oracle
from tests.metrics.aj_oracle import LOST, POV

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
BASE_KEYS = ("purchases", "reached", "lost", "stalled", "on_track", "paused", "unowned", "at_risk")
RATE_KEYS = ("pov_rate", "median_days_among_reached", "days_to_value_p50", "days_to_value_p75", "days_to_value_p90")
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

    def outcome(self):
        """(clock day, outcome): PoV at days_to_value, lost at days_to_loss, others open at the clock now."""
        if self.status == Status.REACHED:
            return self.days, POV
        if self.status == Status.LOST:
            return self.days, LOST
        open_pause = (NOW - self.paused_since).total_seconds() / 86400 if self.paused_since else 0.0
        # Elapsed minus all paused time, summed first: subtracting one by one can differ by an ulp and
        # split a censoring from an event on the same day.
        return (NOW - self.pos_at).total_seconds() / 86400 - (self.paused_days + open_pause), 0


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
    curve = model_curve(rows, POV)
    quantiles = {f"days_to_value_p{q}": aj_oracle.first_day_reaching(curve, q / 100) for q in (50, 75, 90)}
    return {
        "purchases": len(rows), **counts, "unowned": sum(r.owner is None for r in rows), "at_risk": 0,
        "pov_rate": len(reached) / len(rows) if rows else None, "median_days_among_reached": pct(reached, 50),
        **quantiles,
    }  # fmt: skip


def model_curve(rows, outcome, shift=False):
    """The incidence of `outcome` at each day with any outcome; `shift`: on the clock from each target day."""
    pairs = [r.outcome() for r in rows]
    days = [day - (r.target if shift else 0) for (day, _), r in zip(pairs, rows, strict=True)]
    return aj_oracle.incidence(days, [o for _, o in pairs], outcome)


def model_by_target(rows):
    if not rows:
        return None
    share, low, high = aj_oracle.at(model_curve(rows, POV, shift=True), 0)
    return {"share": share, "low": low, "high": high}


def assert_same(actual, expected, keys):
    for key in keys:
        want = expected[key]
        assert actual[key] == (want if want is None or isinstance(want, int) else pytest.approx(want, abs=1e-9)), key


def assert_same_by_target(actual, expected):
    if expected is None:
        assert actual is None
        return
    assert actual["share"] == pytest.approx(expected["share"], abs=1e-9)
    for bound in ("low", "high"):
        assert actual[bound] == (None if expected[bound] is None else pytest.approx(expected[bound], abs=1e-9))


def assert_same_curve(actual, expected):
    assert [(p["day"], p["share"], p["low"], p["high"]) for p in actual] == [
        (pytest.approx(d, abs=1e-9), pytest.approx(s, abs=1e-9), *(None if b is None else pytest.approx(b, abs=1e-9)
                                                                   for b in (lo, hi)))
        for d, s, lo, hi in expected
    ]  # fmt: skip


# The checks ---------------------------------------------------------------------------------------


def check_summary(tenant, rows, flt, emails):
    chosen = select(rows, flt, emails)
    result = summary(flt, tenant, now=NOW)
    assert_same(result, model_base(chosen), BASE_KEYS + RATE_KEYS)
    assert_same_curve(result["reached_curve"], model_curve(chosen, POV))
    assert_same_curve(result["lost_curve"], model_curve(chosen, LOST))
    assert_same_by_target(result["reached_by_target"], model_by_target(chosen))
    targets = {r.target for r in chosen}
    assert result["target_days"] == (targets.pop() if len(targets) == 1 else None)
    assert result["computed_at"]


def check_cohorts(tenant, rows, flt, emails):
    months = {}
    for r in select(rows, flt, emails):
        months.setdefault(r.pos_at.astimezone(TZ).strftime("%Y-%m"), []).append(r)
    result = cohorts(flt, tenant, now=NOW)["results"]
    assert [c["month"] for c in result] == sorted(months)  # oldest first
    for cohort in result:
        chosen = months[cohort["month"]]
        assert_same(cohort, model_base(chosen), ("purchases", "reached", "pov_rate"))
        assert_same_by_target(cohort["reached_by_target"], model_by_target(chosen))
        # Mature once its youngest purchase is at least its target day old.
        assert cohort["mature"] == all((NOW - r.pos_at).total_seconds() / 86400 >= r.target for r in chosen)


def check_funnel(tenant, rows, flt, emails, offering):
    chosen = [r for r in select(rows, flt, emails) if r.offering == offering.key]
    result = funnel(flt, tenant, offering, now=NOW)
    assert result["purchases"] == len(chosen)
    assert [m["milestone"] for m in result["milestones"]] == [m.key for m in offering.milestones.all()]
    for step in result["milestones"]:
        clocks = [r.reaches[step["milestone"]] for r in chosen if step["milestone"] in r.reaches]
        without = [r for r in chosen if step["milestone"] not in r.reaches]
        expected = {
            "reached": len(clocks),
            "rate": len(clocks) / len(chosen) if chosen else None,
            "median_clock_days": pct(clocks, 50),
            # Only those past the milestone's due day without it dropped out; the others are not due yet.
            "dropped": sum(r.outcome()[0] > step["due_day"] for r in without),
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
        rows_of = groups[group[by]]
        assert_same(group, model_base(rows_of), ("purchases", "reached", "lost", "pov_rate", "days_to_value_p50"))
        assert_same_by_target(group["reached_by_target"], model_by_target(rows_of))
        by_target = model_by_target(rows_of)
        narrow = by_target["low"] is not None and by_target["high"] - by_target["low"] <= 0.30
        assert group["rankable"] == (group[by] is not None and len(rows_of) >= 20 and narrow)


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
        assert [p["share"] for p in result["reached_curve"]] == [1.0]
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
