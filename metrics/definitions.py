"""What each figure on the pages means, in one line for its tooltip and in a few for the metrics help page.
docs/metrics.md holds the exact definitions; these say the same for the people reading the pages."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Definition:
    name: str
    line: str  # the tooltip
    more: str = ""  # the help page adds this


DEFINITIONS = {
    "pov_rate": Definition(
        "Reached PoV so far",
        "Customers who have reached their point of value, out of everyone who bought.",
        "Customers still on their way count in the denominator: the share rises as they arrive. Read it with "
        "the curve, which says how fast they arrive.",
    ),
    "days_to_value_p50": Definition(
        "Half reach PoV by",
        "The first day since purchase by which half of all buyers had reached their point of value.",
        "Counted on the value clock (paused time excluded) over everyone who bought: those still waiting and "
        "those lost count too, so it is never a flattering number. When fewer than half have reached PoV so "
        "far, there is no such day yet, and the page says how many have.",
    ),
    "days_to_value_p90": Definition(
        "90% reach PoV by", "The first day since purchase by which 90% of all buyers had reached PoV."
    ),
    "reached_by_target": Definition(
        "Reached PoV by the target",
        "The share of buyers who reached PoV by their offering's target day, with its 95% interval.",
        "Each customer's own target is the due day of their journey's last milestone. The interval is wide "
        "when few customers are behind the number.",
    ),
    "median_days_among_reached": Definition(
        "Median among those who reached PoV",
        "The median days to value of the customers who have reached PoV, leaving out everyone else.",
        "A secondary figure: it looks fastest exactly when many customers are stuck, because they are not in it.",
    ),
    "at_risk": Definition(
        "At risk",
        "Open customers whose chance to reach PoV by the target day is under the company's threshold.",
        "The chance comes from what happened to similar customers: those of the same offering that got as "
        "far along the journey (or the whole offering's, while fewer than 50 did). Admins set the threshold "
        "in Settings.",
    ),
    "stalled": Definition("Stalled", "Open customers whose next milestone is overdue by more than the grace days."),
    "lost": Definition("Lost", "Customers lost before reaching their point of value."),
    "unowned": Definition("Unowned", "Customers without an accountable owner."),
    "curves": Definition(
        "Reached and lost over time",
        "Of all buyers, the share who had reached PoV (green, with its 95% band) and been lost (red) by each "
        "day since purchase; the rest are still on their way.",
        "Both are Aalen–Johansen cumulative incidences: a lost customer can no longer reach PoV, so losses are "
        "counted as a competing outcome rather than as customers who might still arrive.",
    ),
    "value_backlog": Definition(
        "Value backlog",
        "What open customers paid, still waiting for its value, by how long they have waited.",
        "Per currency, by days since purchase on the value clock, with the part that is stalled or at risk.",
    ),
    "cohorts": Definition(
        "By purchase month",
        "Each month's buyers: the share who reached PoV by their target day; greyed while the month is young.",
        "A month is immature while its youngest purchase is younger than its target: its share can still rise.",
    ),
    "funnel": Definition(
        "Journey funnel",
        "How many customers reached each milestone; dropped counts only those past its due day without it.",
    ),
    "scoreboard": Definition(
        "Scoreboard",
        "Owners and sales reps ranked by the share of their customers reaching PoV by the target day.",
        "Rows with fewer than 20 customers, or an interval wider than 30 points, are too few to rank: they "
        "show last, without a rank.",
    ),
    "criteria_met": Definition(
        "Success criteria met",
        "Of the customers who answered about a success criterion, the share who said they got it.",
        "Each customer's latest answer about a criterion counts, per offering, for its five most answered criteria.",
    ),
    "forecast": Definition(
        "Forecast",
        "This customer's chance to reach PoV by the target day, from what happened to similar customers.",
    ),
}
