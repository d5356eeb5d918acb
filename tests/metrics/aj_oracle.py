"""A plain-Python Aalen–Johansen estimator, written from its definition (docs/metrics.md, "Curves"), to
hold the SQL to: the cumulative incidence of one outcome among competing ones, with the 95% interval as
lifelines' AalenJohansenFitter computes it (Greenwood-type variance, log(−log) transformation). Unlike
lifelines it takes tied days of different outcomes as they are, so it also checks the data lifelines
would jitter."""

import math

Z95 = 1.959963984540054
POV, LOST = 1, 2


def incidence(durations, outcomes, outcome):
    """[(day, share, low, high)] at each day with any outcome; outcomes are 0 (still open), POV or LOST."""
    days = sorted({d for d, o in zip(durations, outcomes, strict=True) if o})
    survival_before, share, unbounded = 1.0, 0.0, False
    a_sum = a_share = a_share2 = second = g = h = 0.0
    points = []
    for day in days:
        waiting = sum(1 for d in durations if d >= day)
        ended = sum(1 for d, o in zip(durations, outcomes, strict=True) if d == day and o)
        mine = sum(1 for d, o in zip(durations, outcomes, strict=True) if d == day and o == outcome)
        share += survival_before * mine / waiting
        if waiting == ended:
            unbounded = True
        else:
            a = ended / (waiting * (waiting - ended))
            a_sum, a_share, a_share2 = a_sum + a, a_share + a * share, a_share2 + a * share * share
        second += survival_before**2 * mine * (waiting - mine) / waiting**3
        c = survival_before * mine / waiting**2
        g, h = g + c, h + c * share
        variance = (
            None if unbounded else share**2 * a_sum - 2 * share * a_share + a_share2 + second - 2 * (share * g - h)
        )
        points.append((day, share, *_interval(share, variance)))
        survival_before *= 1 - ended / waiting
    return points


def _interval(share, variance):
    if variance is None or not 0 < share < 1:
        return None, None
    spread = Z95 * math.sqrt(max(variance, 0.0)) / (share * abs(math.log(share)))
    centre = math.log(-math.log(share))
    return math.exp(-math.exp(centre + spread)), math.exp(-math.exp(centre - spread))


def at(points, day):
    """(share, low, high) of the step function at `day`: the last point on or before it, else nothing yet."""
    before = [p for p in points if p[0] <= day]
    return before[-1][1:] if before else (0.0, None, None)


def first_day_reaching(points, share):
    return next((day for day, value, *_ in points if value >= share - 1e-12), None)
