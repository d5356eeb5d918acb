"""The demo tenant: a team, four journeys modelled on real engagement phases, and a reproducible
population of customers moving through them (used by `manage.py seed_demo`).

Rows are built in memory for bulk inserts; the projections are derived afterwards by the same
rebuild `recompute` uses, so the demo looks exactly like data that arrived through the API.
"""

import math
import random
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, timedelta
from decimal import Decimal

from engagement.models import Customer, Engagement, Event, Purchase
from tenants.models import Role

SLUG = "demo"
NAME = "Demo Bank & Electronics"
TIME_ZONE = "Europe/Berlin"
PASSWORD = "demo-pov-2026"
SEED = 2026
RECORDED_BY = "seed_demo"

FATES = (("reach", 78), ("stall", 10), ("lost", 8), ("pause", 4))
PAUSE_RESUMED_SHARE = 0.08  # of engagements that reach PoV or stall: paused for a while, then resumed
SKIP_SHARE = 0.06  # a middle milestone never recorded
SWAP_SHARE = 0.04  # two middle milestones recorded in the wrong order
NO_SURVEY_SHARE = 0.06  # customers who never answer the satisfaction survey
CHURN_SHARE = 0.03  # lost after reaching PoV
UNOWNED_SHARE = 0.05
UNOWNED_PACE = 1.4  # nobody chases an unowned customer
CROSS_SELL_SHARE = 0.15  # bank customers who have both the card and bill pay
SELF_SERVICE_CHANNELS = frozenset({"online", "app", "online shop"})  # no sales rep involved


@dataclass(frozen=True)
class Person:
    email: str
    role: str
    first_name: str
    last_name: str
    share: int = 0  # owners and sales reps: relative number of engagements they get
    pace: float = 1.0  # owners: how fast their customers move (makes the scoreboard differ)
    fit: float = 1.0  # sales reps: below 1, their customers are lost more often


PEOPLE = (
    Person("admin@demo.pov", Role.ADMIN, "Alex", "Berger"),
    Person("owner@demo.pov", Role.OWNER, "Olivia", "Schmidt", share=35),
    Person("sales@demo.pov", Role.SALES, "Sam", "Fischer", share=40),
    Person("service@demo.pov", Role.SERVICE, "Sofia", "Wagner"),
    Person("viewer@demo.pov", Role.VIEWER, "Victor", "Braun"),
    Person("mara.keller@demo.pov", Role.OWNER, "Mara", "Keller", share=25, pace=0.8),
    Person("jonas.weber@demo.pov", Role.OWNER, "Jonas", "Weber", share=25, pace=1.3),
    Person("lea.hoffmann@demo.pov", Role.OWNER, "Lea", "Hoffmann", share=15, pace=0.95),
    Person("tim.schulz@demo.pov", Role.SALES, "Tim", "Schulz", share=30, fit=0.5),
    Person("nina.koch@demo.pov", Role.SALES, "Nina", "Koch", share=30, fit=1.2),
)
ADMIN_EMAIL = PEOPLE[0].email


def _money(value):
    return Decimal(value).quantize(Decimal("0.01"))


def _card_fee(rng, segment):
    tiers = (("29", 6), ("89", 3), ("199", 1)) if segment == "consumer" else (("119", 1),)
    return _money(_weighted(rng, tiers))


def _tv_price(rng, segment):
    hundreds = min(50, max(3, round(rng.lognormvariate(math.log(9), 0.5))))
    return _money(hundreds * 100 - 1)  # shelf prices end in 99


def _software_price(rng, segment):
    seats = rng.randint(5, 40) if segment == "smb" else rng.randint(50, 600)
    return _money(seats * (228 if segment == "smb" else 180))


def _bill_pay_fee(rng, segment):
    return _money("35.88" if segment == "consumer" else "119.88")


@dataclass(frozen=True)
class JourneySpec:
    key: str
    name: str
    milestones: tuple  # (key, name, due_day); the last is the PoV milestone
    share: int  # relative number of customers who buy it first
    segments: tuple  # (segment, weight)
    channels: tuple  # (channel, weight)
    price: object  # price(rng, segment) -> Decimal in EUR
    lost_reasons: tuple
    pause_comments: tuple
    churn_reason: str = ""  # why a customer leaves after PoV; empty: nobody does
    requires_satisfaction: bool = False
    satisfaction_threshold: int = 4
    criteria: tuple = ()  # what customers of this offering typically say they expect

    @property
    def reached_at_sale(self):
        """Milestones due on day 0 come with the sale itself (an approval, a sign-up)."""
        return sum(1 for _key, _name, due_day in self.milestones if due_day == 0)


# fmt: off
JOURNEYS = (
    JourneySpec(
        key="credit-card", name="Credit card", share=35, price=_card_fee,
        milestones=(("approved", "Application approved", 0), ("card-activated", "Card activated", 7),
                    ("first-purchase", "First purchase", 14), ("regular-use", "Regular use", 45)),
        segments=(("consumer", 85), ("smb", 15)), channels=(("branch", 5), ("online", 3), ("app", 2)),
        lost_reasons=("Never activated the card", "Cancelled within the first month", "Moved to another bank"),
        pause_comments=("Card blocked after suspected fraud; replacement on its way", "Customer abroad for weeks"),
        churn_reason="Cancelled the card when the first annual fee was due",
    ),
    JourneySpec(
        key="tv", name="Television", share=25, price=_tv_price,
        milestones=(("delivered", "Delivered", 3), ("installed", "Installed", 5),
                    ("services-set-up", "Set up with channels and streaming", 10),
                    ("used-as-hoped", "Used at home as hoped", 21)),
        segments=(("consumer", 92), ("smb", 8)), channels=(("store", 7), ("online shop", 3)),
        lost_reasons=("Returned within the return period", "Panel defect, refunded", "Did not fit the room"),
        pause_comments=("Wall mount on back order", "Customer is renovating the living room"),
        requires_satisfaction=True, satisfaction_threshold=4,
        criteria=("Picture as good as in the store", "Streaming apps set up", "Easy enough for the whole family",
                  "Fits the living room"),
    ),
    JourneySpec(
        key="software", name="Software subscription", share=15, price=_software_price,
        milestones=(("kickoff", "Kickoff call held", 3), ("installed", "Installed and configured", 14),
                    ("team-onboarded", "Team onboarded", 30), ("used-as-desired", "Used as desired", 60)),
        segments=(("smb", 60), ("enterprise", 40)), channels=(("direct", 6), ("partner", 4)),
        lost_reasons=("Chose a competitor", "Budget cut", "Project cancelled by the customer"),
        pause_comments=("IT change freeze until the quarter ends", "Customer's project lead on leave"),
        churn_reason="Did not renew",
        criteria=("Invoices out in one day", "Month-end close without spreadsheets", "Team of five trained"),
    ),
    JourneySpec(
        key="bill-pay", name="Online bill pay", share=25, price=_bill_pay_fee,
        milestones=(("signed-up", "Signed up", 0), ("first-payee", "First payee added", 7),
                    ("first-bill-paid", "First bill paid", 14), ("regular-use", "Regular use", 60)),
        segments=(("consumer", 80), ("smb", 20)), channels=(("branch", 3), ("online", 4), ("app", 3)),
        lost_reasons=("Closed the current account", "Prefers paying at the branch", "Could not add the first payee"),
        pause_comments=("Waiting for a new online banking device", "Account locked pending an ID check"),
        churn_reason="Closed the current account",
    ),
)
# fmt: on
BANK_PRODUCTS = ("credit-card", "bill-pay")
SCORES = ((5, 45), (4, 35), (3, 12), (2, 5), (1, 3))
SCORE_COMMENTS = {
    5: "Picture and sound are great, the whole family uses it",
    4: "Happy with it",
    3: "Fine, but the streaming apps are slow",
    2: "Picture is too dark in the evening",
    1: "Remote keeps losing the connection",
}

# What happens in one engagement ------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One event of a simulated engagement, `day` days (wall clock) after the purchase."""

    type: str
    day: float
    milestone: str = ""
    score: int | None = None
    comment: str = ""
    reason: str = ""


def _weighted(rng, choices):
    values, weights = zip(*choices, strict=True)
    return rng.choices(values, weights=weights)[0]


def _around(median, rng, spread=0.5):
    """A log-normal delay: most near the median, a long tail of slow ones."""
    return rng.lognormvariate(math.log(median), spread)


def simulate(spec, fate, pace, rng):
    """Every step of one engagement, whether or not it has happened yet; the caller drops future ones."""
    days = _milestone_days(spec, pace, rng)
    keys = [key for key, _name, _due in spec.milestones]
    planned = [Step("milestone", day, milestone=key) for key, day in zip(keys, days, strict=True)]
    if fate == "reach":
        steps = _messy(planned, rng) + _survey(spec, days[-1], rng) + _churn(spec, days[-1], rng)
    else:
        done = rng.randint(spec.reached_at_sale, len(planned) - 1)
        steps = planned[:done] + _ending(spec, fate, days[done - 1] if done else 0.0, rng)
    if fate in ("reach", "stall") and rng.random() < PAUSE_RESUMED_SHARE:
        steps = _with_resumed_pause(spec, steps, days[-1], rng)
    return sorted(steps, key=lambda step: step.day)


def _milestone_days(spec, pace, rng):
    """The day each milestone would be reached: around its due day, scaled by this customer's pace."""
    days = []
    for _key, _name, due_day in spec.milestones:
        day = rng.uniform(0.0, 0.3) if due_day == 0 else due_day * pace * rng.lognormvariate(0.0, 0.25)
        if days:
            day = max(day, days[-1] + rng.uniform(0.2, 2.0))
        days.append(day)
    return days


def _messy(milestones, rng):
    """Real feeds are messy: a middle milestone is sometimes never recorded, or two arrive swapped."""
    kept = [milestones[0], *(m for m in milestones[1:-1] if rng.random() >= SKIP_SHARE), milestones[-1]]
    for i in range(1, len(kept) - 2):
        if rng.random() < SWAP_SHARE:
            first, second = kept[i], kept[i + 1]
            kept[i], kept[i + 1] = replace(first, day=second.day), replace(second, day=first.day)
    return kept


def _survey(spec, pov_day, rng):
    if not spec.requires_satisfaction or rng.random() < NO_SURVEY_SHARE:
        return []
    day = pov_day + _around(2, rng)
    score = _weighted(rng, SCORES)
    steps = [Step("satisfaction", day, score=score, comment=SCORE_COMMENTS[score])]
    if score < spec.satisfaction_threshold and rng.random() < 0.7:
        # Service visits, fixes the set-up, and the follow-up survey is happy.
        steps.append(Step("satisfaction", day + _around(10, rng, 0.4), score=rng.choice((4, 5)),
                          comment="Much better after the service visit"))  # fmt: skip
    return steps


def _churn(spec, pov_day, rng):
    if not spec.churn_reason or rng.random() >= CHURN_SHARE:
        return []
    return [Step("lost", pov_day + _around(60, rng, 0.4), reason=spec.churn_reason)]


def _ending(spec, fate, since, rng):
    """How an engagement that does not reach PoV ends, after its last milestone on day `since`."""
    if fate == "lost":
        lost_day = since + _around(8, rng)
        steps = [Step("lost", lost_day, reason=rng.choice(spec.lost_reasons))]
        if spec.requires_satisfaction and rng.random() < 0.5:
            score = rng.choice((1, 2))
            steps.append(Step("satisfaction", (since + lost_day) / 2, score=score, comment=SCORE_COMMENTS[score]))
        return steps
    if fate == "pause":
        return [Step("paused", since + _around(3, rng), comment=rng.choice(spec.pause_comments))]
    return []  # stalled: the customer simply goes quiet


def _with_resumed_pause(spec, steps, pov_day, rng):
    """A pause somewhere before PoV; everything after it happens that much later."""
    start, length = rng.uniform(1.0, max(1.0, pov_day * 0.8)), _around(12, rng)
    later = [replace(step, day=step.day + length) if step.day > start else step for step in steps]
    return [*later, Step("paused", start, comment=rng.choice(spec.pause_comments)), Step("resumed", start + length)]


# The population ----------------------------------------------------------------------------------

FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hannah", "Ilias", "Jana", "Karim", "Laura",
    "Lukas", "Marie", "Mehmet", "Mia", "Noah", "Olga", "Paul", "Rosa", "Sara", "Tobias", "Ulrike", "Valentin",
    "Wiebke", "Yusuf", "Zoe", "Emma", "Leon", "Sophie", "Finn", "Lina", "Moritz", "Paula", "Erik", "Johanna",
)  # fmt: skip
LAST_NAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
    "Koch", "Richter", "Klein", "Wolf", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann",
    "Lange", "Werner", "Krause", "Lehmann", "Köhler", "Yılmaz", "Kaya", "Nowak", "Rossi", "Jansen", "Dubois",
)  # fmt: skip
COMPANY_WORDS = ("Nordlicht", "Alpen", "Rhein", "Spree", "Elbe", "Hafen", "Sonnen", "Falken", "Eichen", "Kiez",
                 "Stern", "Brücken", "Ufer", "Lindwurm", "Weitblick")  # fmt: skip
COMPANY_TRADES = ("Bäckerei", "Design", "Logistik", "Zahnarztpraxis", "Architekten", "Software", "Gastro",
                  "Immobilien", "Steuerberatung", "Handwerk", "Medien", "Reisen")  # fmt: skip
LEGAL_FORMS = {"smb": ("GmbH", "UG", "e.K.", "GbR"), "enterprise": ("AG", "SE", "GmbH & Co. KG")}
CITIES = (
    ("Berlin", 20), ("Hamburg", 12), ("München", 12), ("Köln", 9), ("Frankfurt am Main", 8), ("Stuttgart", 7),
    ("Leipzig", 6), ("Düsseldorf", 6), ("Dresden", 5), ("Nürnberg", 5), ("Wien", 3),
)  # fmt: skip


def _ascii(text):
    text = text.lower().translate(str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ı": "i", " ": "-"}))
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


@dataclass
class Population:
    customers: list = field(default_factory=list)
    purchases: list = field(default_factory=list)
    engagements: list = field(default_factory=list)
    events: list = field(default_factory=list)

    def batches(self):
        """(model, rows) in an order that satisfies the foreign keys."""
        return [(Customer, self.customers), (Purchase, self.purchases),
                (Engagement, self.engagements), (Event, self.events)]  # fmt: skip


class PopulationBuilder:
    """Builds the demo rows for one tenant from a fixed seed, with every event at or before `now`."""

    def __init__(self, *, tenant, members, offerings, now, seed=SEED):
        self.tenant, self.offerings, self.now = tenant, offerings, now
        self.rng = random.Random(seed)
        # Success criteria and the answers about them draw from their own sequence, so the rest of the
        # population stays what it was before the demo had them.
        self.criteria_rng = random.Random(seed + 1)
        self.owners = [(members[p.email], p) for p in PEOPLE if p.role == Role.OWNER]
        self.sales_reps = [(members[p.email], p) for p in PEOPLE if p.role == Role.SALES]
        self.emails_used = set()
        self.rows = Population()

    def build(self, count, progress=None):
        specs = [(spec, spec.share) for spec in JOURNEYS]
        # A shuffled deck rather than independent draws keeps the mix the same at any size.
        fates = self._deck(count)
        for index in range(count):
            spec = _weighted(self.rng, specs)
            segment = _weighted(self.rng, spec.segments)
            channel = _weighted(self.rng, spec.channels)
            customer = self._customer(index, segment, channel)
            self._purchase(customer, spec, segment, channel, fates[index])
            if spec.key in BANK_PRODUCTS and self.rng.random() < CROSS_SELL_SHARE:
                other = next(s for s in JOURNEYS if s.key in BANK_PRODUCTS and s.key != spec.key)
                self._purchase(
                    customer, other, segment, _weighted(self.rng, other.channels), _weighted(self.rng, FATES)
                )
            if progress:
                progress(1)
        return self.rows

    def _deck(self, count):
        total = sum(weight for _fate, weight in FATES)
        deck = [fate for fate, weight in FATES for _ in range(round(count * weight / total))]
        deck += ["reach"] * (count - len(deck))
        self.rng.shuffle(deck)
        return deck[:count]

    def _customer(self, index, segment, channel):
        rng = self.rng
        if segment == "consumer":
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            name, local, domain = f"{first} {last}", f"{_ascii(first)}.{_ascii(last)}", "example.com"
        else:
            name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_TRADES)} {rng.choice(LEGAL_FORMS[segment])}"
            local, domain = "kontakt", f"{_ascii(name.rsplit(' ', 1)[0])}.example.com"
        email = f"{local}@{domain}"
        if email in self.emails_used:  # namesakes get a number, as mail providers would insist
            email = f"{local}{index}@{domain}"
        self.emails_used.add(email)
        customer = Customer(
            tenant=self.tenant, external_id=f"CUS-{index + 1:05d}", name=name, email=email, segment=segment,
            attributes={"city": _weighted(rng, CITIES), "channel": channel},
        )  # fmt: skip
        self.rows.customers.append(customer)
        return customer

    def _purchase(self, customer, spec, segment, channel, fate):
        offering, milestones = self.offerings[spec.key]
        owner, pace = self._owner()
        purchase = Purchase(
            tenant=self.tenant, external_id=f"ORD-{len(self.rows.purchases) + 1:06d}", customer=customer,
            offering=offering, purchased_at=self._purchase_time(), amount=spec.price(self.rng, segment),
            currency="EUR", success_criteria=self._criteria(spec),
        )  # fmt: skip
        engagement = Engagement(
            tenant=self.tenant, purchase=purchase, customer=customer, offering=offering, pos_at=purchase.purchased_at,
            owner=owner, sales_rep=None if channel in SELF_SERVICE_CHANNELS else self._sales_rep(fate),
        )  # fmt: skip
        self.rows.purchases.append(purchase)
        self.rows.engagements.append(engagement)
        for step in simulate(spec, fate, pace, self.rng):
            occurred_at = purchase.purchased_at + timedelta(days=step.day)
            if occurred_at <= self.now:  # what has not happened yet is not in the record
                self.rows.events.append(self._event(engagement, milestones, step, occurred_at))

    def _event(self, engagement, milestones, step, occurred_at):
        return Event(
            tenant=self.tenant, engagement=engagement, type=step.type, occurred_at=occurred_at,
            milestone=milestones[step.milestone] if step.milestone else None, score=step.score,
            comment=step.comment, reason=step.reason, source="system", recorded_by=RECORDED_BY,
            criteria_met=self._answers(engagement.purchase.success_criteria, step.score) if step.score else None,
        )  # fmt: skip

    def _criteria(self, spec):
        """Two of the offering's typical criteria for most customers; none for a few (nobody asked)."""
        if not spec.criteria or self.criteria_rng.random() < 0.2:
            return []
        return self.criteria_rng.sample(spec.criteria, 2)

    def _answers(self, criteria, score):
        """A happy customer got nearly everything they expected; an unhappy one seldom did."""
        chance = 0.9 if score >= 4 else 0.3
        return {criterion: self.criteria_rng.random() < chance for criterion in criteria} or None

    def _owner(self):
        """The accountable owner (None for a few) and how fast this customer moves under them."""
        pace = self.rng.lognormvariate(-0.15, 0.3)
        if self.rng.random() < UNOWNED_SHARE:
            return None, pace * UNOWNED_PACE
        member, person = _weighted(self.rng, [((m, p), p.share) for m, p in self.owners])
        return member, pace * person.pace

    def _sales_rep(self, fate):
        lost = fate == "lost"
        return _weighted(self.rng, [(m, p.share / p.fit if lost else p.share) for m, p in self.sales_reps])

    def _purchase_time(self):
        """Within the last year, more in recent months (a growing business), in the tenant's opening hours."""
        age = timedelta(days=364 * self.rng.random() ** 1.3)
        local = (self.now - age).astimezone(self.tenant.tzinfo)
        local = local.replace(hour=self.rng.randint(8, 19), minute=self.rng.randrange(60),
                              second=self.rng.randrange(60), microsecond=0)  # fmt: skip
        placed = local.astimezone(UTC)
        return placed if placed <= self.now else placed - timedelta(days=1)
