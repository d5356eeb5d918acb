"""Generated data for the scratch tenant, written with PostgreSQL COPY.

`SCALE` engagements over two years of purchases, about four events each: most customers reach PoV
(some skip a milestone, some reach it late), others stall, are lost, pause or churn. Customers are
shared by several purchases. The projection of every engagement (and its MilestoneReach rows) is
`engagement.projection.derive` over the generated events, the same function every write and
`recompute` use, so the data is exactly what the API would have left.

The projection is derived as of one day before the run (`LAG`), as if yesterday's scans had run: the
engagements that became overdue since are still on track, and the stalled ones have the open alerts
(and the resolved alerts of late customers) those scans would have opened. The run's first stalled
scan then has a day's worth of new work, as in production.
"""

import random
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import DatabaseError, connection, transaction

from bench.scratch import OFFERINGS
from engagement.models import Customer, Engagement, Event, MilestoneReach, Purchase
from engagement.projection import Fact, Projection, derive
from engagement.projections import load_journeys
from metrics.models import Alert

SEED = 20260501
HISTORY_DAYS = 730
LAG = timedelta(days=1)
CHUNK = 10_000
PURCHASES_PER_CUSTOMER = 1.25
SEGMENTS = (("consumer", 50), ("smb", 30), ("enterprise", 15), ("public", 5))
FATES = (("reach", 72), ("stall", 14), ("lost", 8), ("pause", 4), ("churn", 2))
UNOWNED_SHARE = 0.05
NO_SALES_REP_SHARE = 0.10
SKIP_SHARE = 0.05
EARLY_SURVEY_SHARE = 0.3  # an onboarding survey after the first milestone
FIRST_NAMES = ("Ada", "Ben", "Carla", "Dev", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca")
LAST_NAMES = ("Meyer", "Okafor", "Novak", "Rossi", "Sato", "Tanaka", "Berg", "Costa", "Ivanova", "Lund")

CUSTOMER_COLUMNS = ("id", "tenant_id", "external_id", "name", "email", "segment", "attributes", "created_at",
                    "updated_at")  # fmt: skip
PURCHASE_COLUMNS = ("id", "tenant_id", "external_id", "customer_id", "offering_id", "purchased_at", "amount",
                    "currency", "success_criteria", "created_at")  # fmt: skip
ENGAGEMENT_COLUMNS = ("id", "tenant_id", "purchase_id", "customer_id", "offering_id", "pos_at", "owner_id",
                      "sales_rep_id", *Projection.FIELDS, "created_at", "updated_at")  # fmt: skip
EVENT_COLUMNS = ("id", "tenant_id", "engagement_id", "type", "occurred_at", "milestone_id", "score", "comment",
                 "reason", "external_id", "source", "recorded_by", "created_at")  # fmt: skip
REACH_COLUMNS = ("tenant_id", "engagement_id", "milestone_id", "reached_at", "clock_days")
ALERT_COLUMNS = ("id", "tenant_id", "engagement_id", "step", "due_at", "state", "opened_at", "assignee_id",
                 "acknowledged_at", "acknowledged_by", "resolved_at", "resolution", "resolved_by",
                 "escalated_at")  # fmt: skip
TABLES = (Customer, Purchase, Engagement, Event, MilestoneReach, Alert)


def copy_rows(cursor, model, columns, rows):
    """COPY `rows` (tuples in `columns` order) into the model's table; returns the row count."""
    quote = connection.ops.quote_name
    names = ", ".join(quote(c) for c in columns)
    count = 0
    # Only quoted names from the model are interpolated; the rows travel as COPY data.
    with cursor.copy(f"COPY {quote(model._meta.db_table)} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _weighted(rng, choices):
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


@dataclass
class Generated:
    customers: int = 0
    engagements: int = 0
    events: int = 0
    reaches: int = 0
    alerts: int = 0


class Generator:
    """Builds the rows of one scratch tenant chunk by chunk and COPYs them in."""

    def __init__(self, scratch, total, *, now):
        self.scratch, self.total, self.now = scratch, total, now
        self.tenant = scratch.tenant
        self.end = now - LAG  # the record as of yesterday's scans
        self.rng = random.Random(SEED)
        self.ids = random.Random()  # ids differ per run; the story is the same
        self.journeys = load_journeys(o.id for o in scratch.offerings)
        self.offering_weights = [share for _, _, share, _, _ in OFFERINGS]
        self.customers = max(1, int(total / PURCHASES_PER_CUSTOMER))
        self.customer_ids = []
        self.counts = Generated()

    def uuid(self):
        return uuid.UUID(int=self.ids.getrandbits(128), version=4)

    # Customers ---------------------------------------------------------------------------------

    def write_customers(self, progress):
        for start in range(0, self.customers, CHUNK):
            rows = [self._customer(j) for j in range(start, min(start + CHUNK, self.customers))]
            with transaction.atomic(), connection.cursor() as cursor:
                copy_rows(cursor, Customer, CUSTOMER_COLUMNS, rows)
            progress(len(rows))
        self.counts.customers = self.customers

    def _customer(self, j):
        rng = self.rng
        cid = self.uuid()
        self.customer_ids.append(cid)
        created = self.end - timedelta(days=HISTORY_DAYS + 30)
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)} {j}"
        email = f"customer-{j}@customers.invalid"
        return (cid, self.tenant.pk, f"C-{j:07d}", name, email, _weighted(rng, SEGMENTS), "{}", created, created)

    # Purchases, engagements, events and what the projection and the scans derived from them ------

    def write_engagements(self, progress):
        for start in range(0, self.total, CHUNK):
            rows = {model: [] for model in (Purchase, Engagement, Event, MilestoneReach, Alert)}
            for i in range(start, min(start + CHUNK, self.total)):
                self._engagement(i, rows)
            with transaction.atomic(), connection.cursor() as cursor:
                copy_rows(cursor, Purchase, PURCHASE_COLUMNS, rows[Purchase])
                copy_rows(cursor, Engagement, ENGAGEMENT_COLUMNS, rows[Engagement])
                copy_rows(cursor, Event, EVENT_COLUMNS, rows[Event])
                copy_rows(cursor, MilestoneReach, REACH_COLUMNS, rows[MilestoneReach])
                copy_rows(cursor, Alert, ALERT_COLUMNS, rows[Alert])
            self.counts.engagements += len(rows[Engagement])
            self.counts.events += len(rows[Event])
            self.counts.reaches += len(rows[MilestoneReach])
            self.counts.alerts += len(rows[Alert])
            if start == 0:
                _replan_after_first_chunk()
            progress(len(rows[Engagement]))

    def _engagement(self, i, rows):
        rng, tenant_id = self.rng, self.tenant.pk
        index = rng.choices(range(len(OFFERINGS)), weights=self.offering_weights)[0]
        offering = self.scratch.offerings[index]
        journey = self.journeys[offering.id]
        pos_at = self.end - timedelta(seconds=rng.uniform(3600, HISTORY_DAYS * 86400))
        purchase_id, engagement_id = self.uuid(), self.uuid()
        customer_id = self.customer_ids[rng.randrange(len(self.customer_ids))]
        owner = None if rng.random() < UNOWNED_SHARE else rng.choice(self.scratch.owners).pk
        sales_rep = None if rng.random() < NO_SALES_REP_SHARE else rng.choice(self.scratch.sales_reps).pk
        amount = Decimal(rng.randrange(1900, 250000)) / 100
        rows[Purchase].append(
            (purchase_id, tenant_id, f"P-{i:08d}", customer_id, offering.id, pos_at, amount, "EUR", "[]", pos_at)
        )
        facts = []
        for k, (type_, at, milestone_id, score) in enumerate(self._story(journey, pos_at)):
            event_id, created = self.uuid(), min(at + timedelta(seconds=rng.uniform(1, 600)), self.end)
            rows[Event].append(
                (event_id, tenant_id, engagement_id, type_, at, milestone_id, score, "", "", f"E-{i:08d}-{k}",
                 "api", "bench", created)
            )  # fmt: skip
            fact = Fact(type=type_, occurred_at=at, milestone_id=milestone_id, score=score, seq=(created, event_id))
            facts.append(fact)
        grace = self.tenant.grace_days
        projection = derive(journey, pos_at, facts, now=self.end, grace_days=grace)
        derived = tuple(getattr(projection, name) for name in Projection.FIELDS)
        rows[Engagement].append(
            (engagement_id, tenant_id, purchase_id, customer_id, offering.id, pos_at, owner, sales_rep, *derived,
             pos_at, projection.last_event_at or pos_at)
        )  # fmt: skip
        for milestone_id, (reached_at, clock_days) in projection.reaches.items():
            rows[MilestoneReach].append((tenant_id, engagement_id, milestone_id, reached_at, clock_days))
        alert = self._alert(engagement_id, journey, pos_at, projection)
        if alert:
            rows[Alert].append(alert)

    def _story(self, journey, pos_at):
        """The events of one engagement, oldest first: (type, occurred_at, milestone id, score)."""
        rng, end = self.rng, self.end
        fate = _weighted(rng, FATES)
        milestones = journey.milestones
        done = len(milestones) if fate in ("reach", "churn") else rng.randrange(len(milestones))
        pace = rng.lognormvariate(0.0, 0.35)
        events, at = [], pos_at
        for index, milestone in enumerate(milestones[:done]):
            at = max(at + timedelta(hours=1), pos_at + timedelta(days=milestone.due_day * pace * rng.uniform(0.6, 1.1)))
            if at > end:
                return events  # still under way
            skipped = 0 < index < len(milestones) - 1 and rng.random() < SKIP_SHARE
            if not skipped:
                events.append(("milestone", at, milestone.id, None))
            if index == 0 and rng.random() < EARLY_SURVEY_SHARE:
                survey = at + timedelta(days=rng.uniform(1, 5))
                if survey <= end:
                    events.append(("satisfaction", survey, None, rng.choice((3, 4, 4, 5, 5))))
        later = at + timedelta(days=rng.uniform(0.5, 20))
        if later > end:
            return events
        if fate in ("reach", "churn") and rng.random() < (0.93 if journey.requires_satisfaction else 0.75):
            events.append(("satisfaction", later, None, 5 if rng.random() < 0.6 else rng.choice((2, 3, 4, 4, 4))))
        elif fate == "lost":
            events.append(("lost", later, None, None))
        elif fate == "pause":
            events.append(("paused", later, None, None))
            resumed = later + timedelta(days=rng.uniform(3, 60))
            if rng.random() < 0.5 and resumed <= end:
                events.append(("resumed", resumed, None, None))
        if fate == "churn":
            lost = later + timedelta(days=rng.uniform(10, 200))
            if lost <= end:
                events.append(("lost", lost, None, None))
        return events

    def _alert(self, engagement_id, journey, pos_at, projection):
        """What yesterday's scans left: an open alert per stalled engagement (escalated when old), and a
        resolved one for a customer who reached PoV well after the target."""
        grace, escalation = timedelta(days=self.tenant.grace_days), timedelta(days=self.tenant.escalation_days)
        if projection.status == "stalled":
            opened = projection.next_due_at + grace + timedelta(minutes=5)
            escalated = opened + escalation if opened + escalation <= self.end else None
            return (self.uuid(), self.tenant.pk, engagement_id, projection.next_step, projection.next_due_at, "open",
                    opened, None, None, "", None, "", "", escalated)  # fmt: skip
        due = pos_at + timedelta(days=journey.pov.due_day)
        if projection.status == "reached" and projection.pov_at > due + grace + timedelta(days=1):
            opened = due + grace + timedelta(minutes=5)
            return (self.uuid(), self.tenant.pk, engagement_id, journey.pov.key, due, "resolved", opened, None,
                    None, "", projection.pov_at, "reached", "system", None)  # fmt: skip
        return None


def _replan_after_first_chunk():
    """Statistics for the tables just filled, then a new session. The deferred foreign-key checks run at
    each COMMIT with plans the session cached while the tables were empty (sequential scans): kept,
    every chunk's checks would scan every row written so far, and generation would slow quadratically."""
    tables = [m._meta.db_table for m in (Purchase, Engagement, Event, MilestoneReach, Alert)]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(connection.ops.quote_name(t) for t in tables))
    connection.close()


def vacuum_analyze(progress=None):
    """Fresh statistics and visibility maps, as autovacuum would have left a table this size; then a
    checkpoint, so that writing the load's pages out does not run under the first scenarios."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in TABLES:
            cursor.execute(f"VACUUM (ANALYZE) {quote(model._meta.db_table)}")
            if progress:
                progress(1)
        # Needs a superuser or pg_checkpoint; without, PostgreSQL checkpoints on its own schedule.
        with suppress(DatabaseError):
            cursor.execute("CHECKPOINT")
