"""Pure statistics for CONTRACT §5: linear-interpolated percentiles and the Kaplan–Meier estimator.

Kept free of Django so the brute-force tests and lifelines can check them directly.
"""

import math
from collections import Counter


def percentile(sorted_values, q):
    """Linear interpolation between closest ranks (PostgreSQL percentile_cont, NumPy's default)."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    fraction = position - lower
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * fraction


def kaplan_meier(durations, observed):
    """Survival steps [(time, S(time))] at each distinct time with at least one event.

    Matches lifelines' KaplanMeierFitter: at time t, S *= 1 - d(t)/n(t), where n(t) counts every
    subject with duration >= t (censored at t are still at risk at t).
    """
    events = Counter(t for t, e in zip(durations, observed, strict=True) if e)
    exits = Counter(durations)
    at_risk = len(durations)
    survival = 1.0
    steps = []
    for t in sorted(exits):
        deaths = events.get(t, 0)
        if deaths:
            survival *= 1.0 - deaths / at_risk
            steps.append((t, survival))
        at_risk -= exits[t]
    return steps


def survival_at(steps, t):
    """S(t) from the steps (1.0 before the first event)."""
    value = 1.0
    for time, survival in steps:
        if time > t:
            break
        value = survival
    return value


def first_time_reaching(steps, share):
    """The first event time where 1 - S >= share, or None."""
    return next((time for time, survival in steps if 1.0 - survival >= share - 1e-12), None)


CURVE_POINTS = 500


def thin_curve(steps, max_points=CURVE_POINTS):
    """At most ~max_points of the steps, so large tenants get a bounded curve of exact values: the
    first step in each 1/max_points band of reached share, plus the last step. The SQL path keeps the
    same steps (a row_number() per band)."""
    if len(steps) <= max_points:
        return steps
    kept, last_band = [], None
    for time, survival in steps:
        band = math.floor((1.0 - survival) * max_points)
        if band != last_band:
            kept.append((time, survival))
            last_band = band
    if kept[-1] != steps[-1]:
        kept.append(steps[-1])
    return kept
