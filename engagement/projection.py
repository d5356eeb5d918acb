"""The engagement projection as a pure function of a journey, a purchase time and events (docs/metrics.md,
"Engagement fields"), and the stalled rule.

Every path that stores a projection calls `derive` (engagement.projections), so a single event, a batch
and `recompute` agree by construction; the property tests check the definitions themselves.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

SATISFACTION_STEP = "satisfaction"


@dataclass(frozen=True)
class MilestoneSpec:
    """What `derive` reads of a milestone (a Milestone row has the same attributes)."""

    id: object
    key: str
    order: int
    due_day: int


@dataclass(frozen=True)
class Journey:
    milestones: tuple  # MilestoneSpec or Milestone rows, sorted by order; the last is the PoV milestone
    requires_satisfaction: bool = False
    satisfaction_threshold: int = 4

    @property
    def pov(self) -> Any:
        return self.milestones[-1]


class Fact(NamedTuple):
    """One event as the projection sees it. `seq` breaks ties between events at the same instant.
    A named tuple: ingestion builds one per stored event of every engagement it touches."""

    type: str
    occurred_at: datetime
    milestone_id: object = None
    score: int | None = None
    seq: tuple = ()


@dataclass
class Projection:
    status: str
    next_step: str = ""
    next_due_at: datetime | None = None
    pov_at: datetime | None = None
    days_to_value: float | None = None
    calendar_days_to_value: float | None = None
    lost_at: datetime | None = None
    days_to_loss: float | None = None
    churned_at: datetime | None = None
    paused_days: float = 0.0
    paused_since: datetime | None = None
    last_event_at: datetime | None = None
    reaches: dict = field(default_factory=dict)  # milestone id -> (reached_at, clock_days)

    FIELDS = (
        "status", "next_step", "next_due_at", "pov_at", "days_to_value", "calendar_days_to_value",
        "lost_at", "days_to_loss", "churned_at", "paused_days", "paused_since", "last_event_at",
    )  # fmt: skip


def days(delta: timedelta) -> float:
    return delta.total_seconds() / 86400.0


class ValueClock:
    """Pause intervals of one engagement; the clock runs from pos_at and stops while paused."""

    def __init__(self, pos_at: datetime, facts: Iterable[Fact]):
        self.pos_at = pos_at
        self.closed = []  # (start, end)
        self.open_since = None
        for fact in facts:
            if fact.type == "paused" and self.open_since is None:
                self.open_since = max(fact.occurred_at, pos_at)
            elif fact.type == "resumed" and self.open_since is not None:
                end = max(fact.occurred_at, self.open_since)
                self.closed.append((self.open_since, end))
                self.open_since = None

    def paused_days(self, t: datetime) -> float:
        """Paused time before `t`, in days."""
        total = timedelta(0)
        for start, end in self.closed:
            if start < t:
                total += min(end, t) - start
        if self.open_since is not None and self.open_since < t:
            total += t - self.open_since
        return days(total)

    def closed_days(self) -> float:
        return days(sum((end - start for start, end in self.closed), timedelta(0)))

    def clock_days(self, t: datetime) -> float:
        return days(t - self.pos_at) - self.paused_days(t)


def _earliest(facts: Iterable[Fact], predicate: Callable[[Fact], bool]) -> datetime | None:
    return next((f.occurred_at for f in facts if predicate(f)), None)


def derive(journey: Journey, pos_at: datetime, facts: Iterable[Fact], *, now: datetime, grace_days: int) -> Projection:
    """The projection of one engagement at `now`."""
    facts = sorted(facts, key=lambda f: (f.occurred_at, f.seq))
    clock = ValueClock(pos_at, facts)
    by_id = {m.id: m for m in journey.milestones}
    reaches = {}
    for fact in facts:
        if fact.type == "milestone" and fact.milestone_id in by_id and fact.milestone_id not in reaches:
            reaches[fact.milestone_id] = (fact.occurred_at, clock.clock_days(fact.occurred_at))

    pov_at = _pov_at(journey, facts, reaches)
    lost_at = _lost_since(facts)
    out = Projection(
        status="on_track",
        paused_days=clock.closed_days(),
        paused_since=clock.open_since,
        last_event_at=facts[-1].occurred_at if facts else None,
        reaches=reaches,
    )
    if lost_at is not None and (pov_at is None or lost_at < pov_at):
        out.status = "lost"
        out.lost_at = lost_at
        out.days_to_loss = clock.clock_days(lost_at)
        return out
    if pov_at is not None:
        out.status = "reached"
        out.pov_at = pov_at
        out.calendar_days_to_value = days(pov_at - pos_at)
        out.days_to_value = out.calendar_days_to_value - clock.paused_days(pov_at)
        out.churned_at = lost_at if lost_at is not None and lost_at >= pov_at else None
        return out

    out.next_step, due_day = _next_step(journey, reaches)
    if clock.open_since is not None:
        # While the clock is stopped nothing is due: the due date moves with the pause.
        out.status = "paused"
        return out
    out.next_due_at = pos_at + timedelta(days=due_day) + timedelta(days=out.paused_days)
    if out.next_due_at < stalled_before(now, grace_days):
        out.status = "stalled"
    return out


def stalled_before(now: datetime, grace_days: int) -> datetime:
    """The stalled rule: an engagement under way whose next step was due before this instant is stalled
    (due + grace days have passed). `derive` applies it to one engagement, the clock's scan
    (projections.mark_stalled) to every on-track one."""
    return now - timedelta(days=grace_days)


def _lost_since(facts: list[Fact]) -> datetime | None:
    """When the loss in force began: the first `lost` event not followed by a `reopened` one. Reopening
    takes a loss back (the events stay, the history with them); a `reopened` while not lost is ignored."""
    since = None
    for fact in facts:
        if fact.type == "lost" and since is None:
            since = fact.occurred_at
        elif fact.type == "reopened":
            since = None
    return since


def _pov_at(journey: Journey, facts: list[Fact], reaches: dict) -> datetime | None:
    milestone_at = reaches.get(journey.pov.id, (None,))[0]
    if milestone_at is None:
        return None
    if not journey.requires_satisfaction:
        return milestone_at
    satisfied_at = _earliest(
        facts, lambda f: f.type == "satisfaction" and (f.score or 0) >= journey.satisfaction_threshold
    )
    return None if satisfied_at is None else max(milestone_at, satisfied_at)


def _next_step(journey: Journey, reaches: dict) -> tuple[str, int]:
    """The first milestone after the furthest reached one; 'satisfaction' when only that is missing."""
    furthest = max((m.order for m in journey.milestones if m.id in reaches), default=None)
    for milestone in journey.milestones:
        if furthest is None or milestone.order > furthest:
            return milestone.key, milestone.due_day
    return SATISFACTION_STEP, journey.pov.due_day
