"""The engagement projection (`engagement.projection.derive`) against the definitions of docs/metrics.md.

Example tests pin each definition with hand-computed values; property tests compare `derive` with a
brute-force model written here from the text of docs/metrics.md (pause state replayed hour by hour, paused time
counted from those hourly states) and check invariants over random journeys and event sequences.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from engagement.projection import Fact, Journey, MilestoneSpec, derive

POS = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
STATUSES = {"reached", "lost", "paused", "stalled", "on_track"}
EVENT_TYPES = ("milestone", "satisfaction", "lost", "paused", "resumed")
TICK = timedelta(microseconds=1)
ULP = 1e-12  # days are floats: allow for rounding when comparing two ways of computing one span


def calendar_days(when):
    return (when - POS) / timedelta(days=1)


def at(days=0, **parts):
    """A time `days` (plus `parts`) after the purchase."""
    return POS + timedelta(days=days, **parts)


def journey(*due_days, requires_satisfaction=False, threshold=4, orders=None):
    """Milestones m1, m2, ... with the given due days; the last is the PoV milestone."""
    orders = orders or range(len(due_days))
    specs = tuple(
        MilestoneSpec(id=f"id-m{i + 1}", key=f"m{i + 1}", order=order, due_day=due_day)
        for i, (order, due_day) in enumerate(zip(orders, due_days, strict=True))
    )
    return Journey(milestones=specs, requires_satisfaction=requires_satisfaction, satisfaction_threshold=threshold)


def reached(key, when, seq=()):
    return Fact(type="milestone", occurred_at=when, milestone_id=f"id-{key}", seq=seq)


def satisfied(score, when, seq=()):
    return Fact(type="satisfaction", occurred_at=when, score=score, seq=seq)


def fact(type_, when, seq=()):
    return Fact(type=type_, occurred_at=when, seq=seq)


def run(journey_, facts, *, now=None, grace_days=3):
    return derive(journey_, POS, facts, now=now or at(1), grace_days=grace_days)


J3 = journey(2, 7, 14)


# The value clock: pause and resume ---------------------------------------------------------------


def test_without_events_the_first_milestone_is_next_and_due_on_its_day():
    p = run(J3, [], now=at(1))
    assert p.status == "on_track"
    assert (p.next_step, p.next_due_at) == ("m1", at(2))
    assert p.pov_at is None and p.days_to_value is None and p.calendar_days_to_value is None
    assert p.paused_days == 0 and p.paused_since is None and p.last_event_at is None
    assert p.reaches == {}


def test_pause_then_resume_stops_the_value_clock():
    p = run(J3, [fact("paused", at(1)), fact("resumed", at(3)), reached("m3", at(5))], now=at(6))
    assert p.status == "reached"
    assert p.pov_at == at(5)
    assert p.calendar_days_to_value == pytest.approx(5.0)
    assert p.days_to_value == pytest.approx(3.0)
    assert p.paused_days == pytest.approx(2.0)
    assert p.paused_since is None


def test_only_paused_time_before_pov_counts_including_an_open_pause():
    facts = [
        fact("paused", at(1)),
        fact("resumed", at(2, hours=12)),  # 1.5 days paused
        fact("paused", at(6)),
        reached("m3", at(8)),  # reached while paused: 2 more days paused before PoV
        fact("resumed", at(9)),
        fact("paused", at(10)),  # after PoV: does not count
    ]
    p = run(J3, facts, now=at(20))
    assert p.status == "reached"
    assert p.calendar_days_to_value == pytest.approx(8.0)
    assert p.days_to_value == pytest.approx(8.0 - 3.5)
    assert p.paused_days == pytest.approx(1.5 + 3.0)  # closed pauses
    assert p.paused_since == at(10)


def test_open_pause_sets_status_paused_even_far_past_due():
    facts = [fact("paused", at(1)), fact("resumed", at(2)), fact("paused", at(4))]
    p = run(J3, facts, now=at(300))
    assert p.status == "paused"
    assert p.paused_since == at(4)
    assert p.paused_days == pytest.approx(1.0)
    assert p.next_step == "m1"
    # While the clock is stopped nothing is due.
    assert p.next_due_at is None


def test_second_pause_while_paused_is_ignored():
    facts = [fact("paused", at(1)), fact("paused", at(2)), fact("resumed", at(4)), reached("m3", at(6))]
    p = run(J3, facts, now=at(7))
    assert p.paused_days == pytest.approx(3.0)  # from the first pause, not the second
    assert p.days_to_value == pytest.approx(3.0)


def test_resume_without_pause_is_ignored():
    facts = [
        fact("resumed", at(1)),
        fact("paused", at(2)),
        fact("resumed", at(3)),
        fact("resumed", at(4)),
        reached("m3", at(6)),
    ]
    p = run(J3, facts, now=at(7))
    assert p.paused_days == pytest.approx(1.0)
    assert p.days_to_value == pytest.approx(5.0)

    alone = run(J3, [fact("resumed", at(1))], now=at(1, hours=1))
    assert alone.status == "on_track" and alone.paused_days == 0 and alone.paused_since is None
    assert alone.next_due_at == at(2)


def test_without_pauses_days_to_value_equals_calendar_days():
    p = run(J3, [reached("m3", at(4, hours=6))], now=at(5))
    assert p.days_to_value == p.calendar_days_to_value == pytest.approx(4.25)


# PoV and satisfaction ----------------------------------------------------------------------------


def test_pov_is_the_pov_milestone_when_satisfaction_is_not_required():
    p = run(J3, [satisfied(1, at(3)), reached("m3", at(5))], now=at(6))
    assert (p.status, p.pov_at) == ("reached", at(5))


def test_a_satisfaction_alone_never_reaches_pov():
    j = journey(2, 7, 14, requires_satisfaction=True)
    p = run(j, [satisfied(5, at(1))], now=at(1, hours=1))
    assert p.status == "on_track" and p.pov_at is None and p.next_step == "m1"


def test_low_score_does_not_count_and_pov_is_the_later_qualifying_satisfaction():
    j = journey(2, 7, 14, requires_satisfaction=True, threshold=4)
    facts = [reached("m3", at(5)), satisfied(3, at(6))]
    waiting = run(j, facts, now=at(8))
    assert waiting.status == "on_track" and waiting.pov_at is None
    # Only the satisfaction is missing: it is the next step, due with the PoV milestone.
    assert (waiting.next_step, waiting.next_due_at) == ("satisfaction", at(14))

    done = run(j, [*facts, satisfied(4, at(9))], now=at(10))
    assert (done.status, done.pov_at) == ("reached", at(9))
    assert done.days_to_value == pytest.approx(9.0)


def test_satisfaction_before_the_pov_milestone_makes_the_milestone_the_pov():
    j = journey(2, 7, 14, requires_satisfaction=True)
    p = run(j, [satisfied(5, at(2)), reached("m3", at(5))], now=at(6))
    assert (p.status, p.pov_at) == ("reached", at(5))


def test_pov_uses_the_earliest_qualifying_event_of_each_kind():
    j = journey(2, 7, 14, requires_satisfaction=True, threshold=4)
    facts = [
        reached("m3", at(7)),
        satisfied(4, at(10)),
        satisfied(2, at(4)),  # too low
        reached("m3", at(5)),
        satisfied(5, at(6)),
    ]
    p = run(j, facts, now=at(11))
    assert p.pov_at == at(6)  # max(first m3 at day 5, first qualifying satisfaction at day 6)
    assert p.reaches["id-m3"][0] == at(5)


@pytest.mark.parametrize("threshold", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("score", [1, 2, 3, 4, 5])
def test_a_score_counts_when_it_is_at_least_the_threshold(threshold, score):
    j = journey(2, requires_satisfaction=True, threshold=threshold)
    p = run(j, [reached("m1", at(1)), satisfied(score, at(1, hours=2))], now=at(2))
    if score >= threshold:
        assert (p.status, p.pov_at) == ("reached", at(1, hours=2))
    else:
        assert (p.status, p.pov_at, p.next_step) == ("on_track", None, "satisfaction")


# Lost and churned --------------------------------------------------------------------------------


def test_lost_before_pov_sets_status_lost_with_clock_days_to_loss():
    facts = [fact("paused", at(1)), fact("resumed", at(2)), fact("lost", at(4)), reached("m3", at(6))]
    p = run(J3, facts, now=at(400))
    assert p.status == "lost"
    assert p.lost_at == at(4)
    assert p.days_to_loss == pytest.approx(3.0)
    assert p.pov_at is None and p.days_to_value is None and p.churned_at is None
    assert (p.next_step, p.next_due_at) == ("", None)


def test_lost_before_the_qualifying_satisfaction_is_lost():
    j = journey(2, 7, 14, requires_satisfaction=True)
    p = run(j, [reached("m3", at(5)), fact("lost", at(6)), satisfied(5, at(7))], now=at(8))
    assert (p.status, p.lost_at, p.pov_at) == ("lost", at(6), None)


def test_the_earliest_lost_event_is_the_loss():
    p = run(J3, [fact("lost", at(3)), fact("lost", at(2))], now=at(4))
    assert (p.status, p.lost_at) == ("lost", at(2))


def test_lost_after_pov_keeps_reached_and_sets_churned_at():
    facts = [reached("m3", at(5)), fact("lost", at(12)), fact("lost", at(9))]
    p = run(J3, facts, now=at(13))
    assert p.status == "reached"
    assert (p.pov_at, p.churned_at, p.lost_at, p.days_to_loss) == (at(5), at(9), None, None)


def test_lost_at_the_same_instant_as_pov_is_not_before_it():
    p = run(J3, [fact("lost", at(5), seq=(1,)), reached("m3", at(5), seq=(2,))], now=at(6))
    assert (p.status, p.pov_at, p.churned_at) == ("reached", at(5), at(5))


def test_reopened_takes_the_loss_back_and_the_clock_counts_the_time_since_the_purchase():
    facts = [fact("lost", at(3)), fact("reopened", at(20))]
    p = run(J3, facts, now=at(21), grace_days=3)
    assert (p.lost_at, p.days_to_loss, p.churned_at) == (None, None, None)
    # m1 was due on day 2: three weeks on, the reopened engagement is stalled, not on track from day 20.
    assert (p.status, p.next_step, p.next_due_at) == ("stalled", "m1", at(2))
    later = run(J3, [*facts, reached("m3", at(25))], now=at(26))
    assert (later.status, later.pov_at, later.days_to_value) == ("reached", at(25), pytest.approx(25.0))


def test_a_loss_after_a_reopening_is_a_new_loss_from_its_own_day():
    p = run(J3, [fact("lost", at(3)), fact("reopened", at(5)), fact("lost", at(8))], now=at(9))
    assert (p.status, p.lost_at, p.days_to_loss) == ("lost", at(8), pytest.approx(8.0))


def test_reopened_while_not_lost_is_ignored():
    p = run(J3, [fact("reopened", at(1)), fact("lost", at(3))], now=at(4))
    assert (p.status, p.lost_at) == ("lost", at(3))


def test_reopening_a_churned_customer_clears_churned_at_and_keeps_pov():
    facts = [reached("m3", at(5)), fact("lost", at(9)), fact("reopened", at(10))]
    p = run(J3, facts, now=at(11))
    assert (p.status, p.pov_at, p.churned_at) == ("reached", at(5), None)


# Stalled -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("grace_days", [0, 3])
def test_stalled_only_strictly_after_due_plus_grace(grace_days):
    boundary = at(2 + grace_days)
    assert run(J3, [], now=boundary, grace_days=grace_days).status == "on_track"
    assert run(J3, [], now=boundary + TICK, grace_days=grace_days).status == "stalled"


def test_stalled_boundary_moves_with_the_next_milestone_and_closed_pauses():
    facts = [reached("m1", at(1)), fact("paused", at(2)), fact("resumed", at(3, hours=6))]
    p = run(J3, facts, now=at(5))
    assert p.next_step == "m2"
    assert p.next_due_at == at(7 + 1.25)
    assert run(J3, facts, now=at(7 + 1.25 + 3)).status == "on_track"
    assert run(J3, facts, now=at(7 + 1.25 + 3) + TICK).status == "stalled"


def test_reached_lost_and_paused_are_never_stalled():
    late = at(1000)
    assert run(J3, [reached("m3", at(100))], now=late).status == "reached"
    assert run(J3, [fact("lost", at(100))], now=late).status == "lost"
    assert run(J3, [fact("paused", at(100))], now=late).status == "paused"


# Next step and due date --------------------------------------------------------------------------

J4 = journey(2, 5, 9, 14)


@pytest.mark.parametrize(
    ("facts", "next_step", "due"),
    [
        ([reached("m1", at(1))], "m2", at(5)),
        ([reached("m2", at(1))], "m3", at(9)),  # m1 skipped
        ([reached("m3", at(1)), reached("m1", at(2))], "m4", at(14)),  # m1 late: the furthest counts
        ([reached("m2", at(1)), reached("m1", at(1, hours=1))], "m3", at(9)),
        ([Fact(type="milestone", occurred_at=at(1), milestone_id="id-elsewhere")], "m1", at(2)),
    ],
)
def test_next_step_is_the_first_milestone_after_the_furthest_reached(facts, next_step, due):
    p = run(J4, facts, now=at(1, hours=2))
    assert (p.status, p.next_step, p.next_due_at) == ("on_track", next_step, due)


def test_next_step_follows_order_not_list_position_or_key():
    j = journey(3, 6, 10, orders=(5, 10, 40))
    p = run(j, [reached("m2", at(1))], now=at(2))
    assert (p.next_step, p.next_due_at) == ("m3", at(10))


def test_satisfaction_step_is_due_with_the_pov_milestone_plus_closed_pauses():
    j = journey(2, 7, 14, requires_satisfaction=True)
    facts = [reached("m3", at(5)), fact("paused", at(6)), fact("resumed", at(8))]
    p = run(j, facts, now=at(9))
    assert (p.next_step, p.next_due_at) == ("satisfaction", at(16))
    assert run(j, facts, now=at(19)).status == "on_track"
    assert run(j, facts, now=at(19) + TICK).status == "stalled"


def test_next_due_at_adds_the_exact_closed_paused_time():
    pause = timedelta(days=1, hours=3, minutes=7, seconds=11, microseconds=13)
    start = at(0, hours=5, microseconds=7)
    p = run(J3, [fact("paused", start), fact("resumed", start + pause)], now=at(2))
    assert p.next_due_at == POS + timedelta(days=2) + pause


def test_reaches_record_the_first_event_per_milestone_on_the_value_clock():
    facts = [fact("paused", at(1)), fact("resumed", at(2)), reached("m2", at(5)), reached("m2", at(3))]
    p = run(J4, facts, now=at(6))
    assert p.reaches == {"id-m2": (at(3), pytest.approx(2.0))}
    assert p.last_event_at == at(5)


def test_same_instant_events_are_ordered_by_seq():
    pause_then_resume = run(J3, [fact("resumed", at(1), seq=(2,)), fact("paused", at(1), seq=(1,))], now=at(1))
    assert pause_then_resume.status == "on_track" and pause_then_resume.paused_days == 0
    resume_then_pause = run(J3, [fact("resumed", at(1), seq=(1,)), fact("paused", at(1), seq=(2,))], now=at(1))
    assert resume_then_pause.status == "paused" and resume_then_pause.paused_since == at(1)


# Property tests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    journey: Journey
    facts: tuple  # in their true order (seq ascending)
    arrival: tuple  # the same facts in the order they are handed to derive
    unit: timedelta
    now_ticks: int
    grace_days: int

    @property
    def now(self):
        return POS + self.now_ticks * self.unit

    def ticks(self, when):
        return (when - POS) // self.unit

    def describe(self):
        """The scenario in a form to paste into an example test when a property fails."""
        j = self.journey
        lines = [
            f"milestones (key, order, due_day): {[(m.key, m.order, m.due_day) for m in j.milestones]}",
            f"requires_satisfaction={j.requires_satisfaction} threshold={j.satisfaction_threshold}",
            f"now = POS + {self.now_ticks} x {self.unit}, grace_days={self.grace_days}",
            "facts (type, ticks after POS, milestone_id, score, seq), in arrival order:",
        ]
        lines += [f"  {f.type} {self.ticks(f.occurred_at)} {f.milestone_id} {f.score} {f.seq}" for f in self.arrival]
        return "\n".join(lines)


@st.composite
def scenarios(draw, unit=timedelta(hours=1), max_days=120):
    n = draw(st.integers(1, 5))
    due_days = sorted(draw(st.lists(st.integers(0, 60), min_size=n, max_size=n)))
    orders = sorted(draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n, unique=True)))
    specs = tuple(
        MilestoneSpec(id=f"id{i}", key=f"k{i}", order=order, due_day=due_day)
        for i, (order, due_day) in enumerate(zip(orders, due_days, strict=True))
    )
    journey_ = Journey(
        milestones=specs, requires_satisfaction=draw(st.booleans()), satisfaction_threshold=draw(st.integers(1, 5))
    )
    now_ticks = draw(st.integers(0, timedelta(days=max_days) // unit))
    # Besides uniform times, favour a few shared instants so same-instant ties are common.
    shared = draw(st.lists(st.integers(0, now_ticks), min_size=1, max_size=3))
    times = st.one_of(st.integers(0, now_ticks), st.sampled_from([0, now_ticks, *shared]))
    # Each scenario uses a subset of the event types, so journeys without losses or pauses are common.
    # Milestone events weigh more, and the PoV milestone is favoured, so PoV is often within reach.
    types = sorted(draw(st.sets(st.sampled_from(EVENT_TYPES), min_size=1)))
    types += ["milestone"] * 2 if "milestone" in types else []
    milestones = st.one_of(st.just(n - 1), st.integers(0, n))
    events = draw(st.lists(st.tuples(st.sampled_from(types), times, milestones, st.integers(1, 5)), max_size=14))
    facts = tuple(
        Fact(
            type=type_,
            occurred_at=POS + ticks * unit,
            # Index n names a milestone of another offering, which the projection ignores.
            milestone_id=(specs[m].id if m < n else "id-elsewhere") if type_ == "milestone" else None,
            score=score if type_ == "satisfaction" else None,
            seq=(i,),
        )
        for i, (type_, ticks, m, score) in enumerate(events)
    )
    arrival = tuple(draw(st.permutations(facts)))
    return Scenario(journey_, facts, arrival, unit, now_ticks, draw(st.integers(0, 5)))


def derive_scenario(s, facts=None):
    return derive(s.journey, POS, s.arrival if facts is None else facts, now=s.now, grace_days=s.grace_days)


@dataclass
class Expected:
    status: str
    pov_at: datetime | None = None
    days_to_value: float | None = None
    calendar_days_to_value: float | None = None
    next_step: str = ""
    next_due_at: datetime | None = None
    churned_at: datetime | None = None
    lost_at: datetime | None = None
    days_to_loss: float | None = None
    reaches: dict | None = None


def model(s):
    """docs/metrics.md computed on the hour grid of the scenario, written independently of `derive`.

    The pause state during hour [h, h+1) is the state after replaying, in order, every event up to
    hour h: a 'paused' sets it, a 'resumed' clears it (so a second pause or a lone resume has no
    effect). Paused time before hour t is the number of paused hours below t.
    """
    assert s.unit == timedelta(hours=1)
    hour = s.ticks
    ordered = sorted(s.facts, key=lambda f: (hour(f.occurred_at), f.seq))
    paused_hours, paused, pending = [], False, list(ordered)
    for h in range(s.now_ticks + 1):
        while pending and hour(pending[0].occurred_at) == h:
            event = pending.pop(0)
            if event.type in ("paused", "resumed"):
                paused = event.type == "paused"
        paused_hours.append(paused)
    assert not pending

    paused_before = [0]
    for flag in paused_hours:
        paused_before.append(paused_before[-1] + flag)

    def clock_days(h):
        return (h - paused_before[h]) / 24

    def first(predicate):
        return min((hour(f.occurred_at) for f in s.facts if predicate(f)), default=None)

    def when(h):
        return None if h is None else POS + timedelta(hours=h)

    j = s.journey
    pov = j.milestones[-1]
    reached_at = {m.id: first(lambda f, m=m: f.type == "milestone" and f.milestone_id == m.id) for m in j.milestones}
    reaches = {mid: (when(h), pytest.approx(clock_days(h), abs=1e-9)) for mid, h in reached_at.items() if h is not None}
    satisfied_at = first(lambda f: f.type == "satisfaction" and f.score >= j.satisfaction_threshold)
    pov_h = reached_at[pov.id]
    if j.requires_satisfaction:
        pov_h = None if pov_h is None or satisfied_at is None else max(pov_h, satisfied_at)
    lost_h = first(lambda f: f.type == "lost")

    if lost_h is not None and (pov_h is None or lost_h < pov_h):
        days_to_loss = pytest.approx(clock_days(lost_h), abs=1e-9)
        return Expected("lost", lost_at=when(lost_h), days_to_loss=days_to_loss, reaches=reaches)
    if pov_h is not None:
        return Expected(
            "reached",
            pov_at=when(pov_h),
            days_to_value=pytest.approx(clock_days(pov_h), abs=1e-9),
            calendar_days_to_value=pytest.approx(pov_h / 24, abs=1e-9),
            churned_at=when(first(lambda f: f.type == "lost" and hour(f.occurred_at) >= pov_h)),
            reaches=reaches,
        )
    reached_orders = [m.order for m in j.milestones if reached_at[m.id] is not None]
    later = [m for m in j.milestones if not reached_orders or m.order > max(reached_orders)]
    next_step, due_day = (later[0].key, later[0].due_day) if later else ("satisfaction", pov.due_day)
    if paused:
        return Expected("paused", next_step=next_step, reaches=reaches)
    due_h = 24 * due_day + paused_before[-1]  # not paused now: every pause so far is closed
    status = "stalled" if s.now_ticks > due_h + 24 * s.grace_days else "on_track"
    return Expected(status, next_step=next_step, next_due_at=when(due_h), reaches=reaches)


@settings(max_examples=300, deadline=None)
@given(scenarios(unit=timedelta(microseconds=1)))
def test_result_does_not_depend_on_the_order_facts_are_given_in(s):
    note(s.describe())
    expected = derive_scenario(s, s.facts)
    assert derive_scenario(s, s.arrival) == expected
    assert derive_scenario(s, tuple(reversed(s.arrival))) == expected


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_derive_agrees_with_a_brute_force_model_of_the_contract(s):
    note(s.describe())
    expected = model(s)
    got = derive_scenario(s)
    assert got.status == expected.status
    assert got.pov_at == expected.pov_at
    assert got.days_to_value == expected.days_to_value
    assert got.calendar_days_to_value == expected.calendar_days_to_value
    assert got.next_step == expected.next_step
    assert got.next_due_at == expected.next_due_at
    assert got.churned_at == expected.churned_at
    assert got.lost_at == expected.lost_at
    assert got.days_to_loss == expected.days_to_loss
    assert got.reaches == expected.reaches


@settings(max_examples=300, deadline=None)
@given(st.one_of(scenarios(unit=timedelta(microseconds=1)), scenarios(unit=timedelta(minutes=1), max_days=5)))
def test_invariants(s):
    note(s.describe())
    p = derive_scenario(s)
    assert p.status in STATUSES
    assert p.paused_days >= 0
    if p.status == "reached":
        assert p.pov_at is not None and POS <= p.pov_at <= s.now
        assert p.next_step == "" and p.next_due_at is None
        assert 0 <= p.days_to_value <= p.calendar_days_to_value
        assert p.lost_at is None
        assert p.churned_at is None or p.churned_at >= p.pov_at
    else:
        assert p.pov_at is None and p.days_to_value is None and p.calendar_days_to_value is None
        assert p.churned_at is None
    if p.status == "lost":
        assert p.lost_at is not None and 0 <= p.days_to_loss <= calendar_days(p.lost_at) + ULP
        assert p.next_step == "" and p.next_due_at is None
    else:
        assert p.lost_at is None and p.days_to_loss is None
    if p.status in ("paused", "stalled", "on_track"):
        keys = {m.key for m in s.journey.milestones} | {"satisfaction"}
        assert p.next_step in keys
        assert (p.next_due_at is None) == (p.status == "paused")
        assert (p.paused_since is not None) == (p.status == "paused")
    if p.status in ("stalled", "on_track"):
        stalled = s.now > p.next_due_at + timedelta(days=s.grace_days)
        assert stalled == (p.status == "stalled")
        assert p.next_due_at >= POS
    for reached_at, clock_days in p.reaches.values():
        assert 0 <= clock_days <= calendar_days(reached_at) + ULP
