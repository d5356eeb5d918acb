"""Server-rendered SVG charts for the metrics dashboards.

Pure functions: rollup data in, a safe SVG string out. The dashboards use no JavaScript and no network, so all a
reader needs is in the markup: a <title> and <desc> for screen readers, <title> tooltips on bars, and `chart-*`
CSS classes that the site stylesheet colours (a theme change never touches Python). Every attribute goes through
`_el`, which rounds numbers to one decimal and escapes strings; every piece of text goes through `_text`, because
offering and milestone names come from users.
"""

import math
import re
from bisect import bisect_right

from django.utils.html import escape
from django.utils.safestring import mark_safe

SVG_NS = "http://www.w3.org/2000/svg"
CHART_ID = re.compile(r"[a-z][a-z0-9-]*")
# XML 1.0 forbids these even escaped: one in a milestone name would make the browser drop the whole SVG.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WIDTH, HEIGHT = 600, 300
MAX_CATEGORY_LABELS = 12  # more month or week labels than this collide at the chart's width
FUNNEL_ROW, FUNNEL_TOP, FUNNEL_NAME_CHARS = 44, 30, 48

OUTCOMES_EMPTY = "No customer in this selection has reached PoV or been lost yet. Record milestones as they happen."
HISTOGRAM_EMPTY = "No customer in this selection has reached PoV yet, so there is no time to value to show."
COHORT_EMPTY = "No purchases in this selection yet. Monthly cohorts appear once purchases are recorded."
FUNNEL_EMPTY = "No purchases of this offering yet (or its journey has no milestones). Record a purchase to start."
SPARKLINE_EMPTY = "No data yet"


# --- markup ------------------------------------------------------------------------------------------------------


def _num(value):
    """Compact number for the markup: at most one decimal, no trailing zero, never "-0"."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _display(value):
    """A value shown to people: up to two decimals for small numbers, whole numbers from 100 on."""
    if abs(value) >= 100:
        return str(round(value))
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def _optional_float(value):
    # Rollups may hand over ints or Decimals; the scales below do float arithmetic.
    return None if value is None else float(value)


def _percent(share):
    return "–" if share is None else f"{round(share * 100)} %"


def _text(value):
    return escape(XML_FORBIDDEN.sub("", str(value)))


def _attr(value):
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _num(value)
    return _text(value)


def _el(tag, *children, **attrs):
    """One element. `class_` becomes class and underscores become hyphens (`text_anchor` → text-anchor)."""
    rendered = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{_attr(value)}"' for name, value in attrs.items() if value is not None
    )
    inner = "".join(children)
    return f"<{tag}{rendered}>{inner}</{tag}>" if inner else f"<{tag}{rendered}/>"


def _label(text, css_class, x, y, anchor=None, **extra):
    return _el("text", _text(text), class_=css_class, x=x, y=y, text_anchor=anchor, **extra)


def _check_id(chart_id):
    # The id is used to build the ids aria-labelledby points at: it must be unique per page and safe in an id.
    if not isinstance(chart_id, str) or not CHART_ID.fullmatch(chart_id):
        raise ValueError(f"chart_id must match ^[a-z][a-z0-9-]*$, got {chart_id!r}")


def _svg(chart_id, kind, title, desc, body, *, width=WIDTH, height=HEIGHT):
    # width="100%" and no height: the viewBox keeps the aspect ratio at any container width.
    # font-size is a presentation attribute, so the stylesheet overrides it; it only keeps unstyled output legible.
    opening = (
        f'<svg xmlns="{SVG_NS}" id="{chart_id}" class="chart chart-{kind}" viewBox="0 0 {width} {height}"'
        f' width="100%" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" font-size="12">'
    )
    title_tag = _el("title", _text(title), id=f"{chart_id}-title")
    desc_tag = _el("desc", _text(desc), id=f"{chart_id}-desc")
    return mark_safe(opening + title_tag + desc_tag + "".join(body) + "</svg>")  # noqa: S308 - all went through _el/_text


def _empty(chart_id, empty_text):
    return mark_safe(f'<p id="{chart_id}" class="chart-empty">{_text(empty_text)}</p>')  # noqa: S308 - escaped


# --- scales and axes -----------------------------------------------------------------------------------------------


def nice_step(span, *, target_ticks=5, integer=False):
    """A 1-2-5 step giving about `target_ticks` ticks over `span`, so axes read 0, 20, 40 and not 0, 17.3, 34.6."""
    if span <= 0:
        return 1
    raw = span / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(multiple * magnitude for multiple in (1, 2, 5, 10) if raw <= multiple * magnitude * (1 + 1e-9))
    return max(1, round(step)) if integer else step


def nice_ticks(upper, *, integer=False, cover=True):
    """Ticks from 0 by a nice step: up to the first tick at or above `upper` (cover), or the last one below it."""
    step = nice_step(upper, integer=integer)
    ratio = upper / step
    count = math.ceil(ratio - 1e-9) if cover else math.floor(ratio + 1e-9)
    return [round(i * step, 9) for i in range(max(count, 1 if cover else 0) + 1)]


class _Frame:
    """Maps data values onto the plot area inside the margins (SVG y grows downwards)."""

    def __init__(self, x_max, y_max, *, width=WIDTH, height=HEIGHT):
        self.x_max, self.y_max = x_max or 1, y_max or 1
        self.left, self.right, self.top, self.bottom = 60, width - 16, 16, height - 48

    def x(self, value):
        return self.left + (self.right - self.left) * min(max(value, 0), self.x_max) / self.x_max

    def y(self, value):
        return self.bottom - (self.bottom - self.top) * min(max(value, 0), self.y_max) / self.y_max


def _y_axis(frame, ticks, label_of, title):
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(_el("line", class_="chart-grid", x1=frame.left, x2=frame.right, y1=y, y2=y))
        parts.append(_label(label_of(tick), "chart-label chart-tick-y", frame.left - 6, y + 4, "end"))
    middle = (frame.top + frame.bottom) / 2
    parts.append(_label(title, "chart-axis-title", 14, middle, "middle", transform=f"rotate(-90 14 {_num(middle)})"))
    parts.append(_el("line", class_="chart-axis", x1=frame.left, x2=frame.left, y1=frame.top, y2=frame.bottom))
    return parts


def _x_axis(frame, labelled_positions, title):
    """The baseline, a label under each (x, text) position and the axis title."""
    parts = [_el("line", class_="chart-axis", x1=frame.left, x2=frame.right, y1=frame.bottom, y2=frame.bottom)]
    for x, label in labelled_positions:
        parts.append(_label(label, "chart-label chart-tick-x", x, frame.bottom + 16, "middle"))
    parts.append(_label(title, "chart-axis-title", (frame.left + frame.right) / 2, frame.bottom + 38, "middle"))
    return parts


def _thinned(labels):
    """Every n-th label, so that at most MAX_CATEGORY_LABELS are shown; the bars themselves are all kept."""
    every = math.ceil(len(labels) / MAX_CATEGORY_LABELS)
    return [label for index, label in enumerate(labels) if index % every == 0]


def _marker(frame, x_value, css_class, dash, label, *, label_row=0):
    """A vertical line across the plot with a label at its top, flipped left when it would leave the chart."""
    x = frame.x(x_value)
    flip = x > frame.right - 90
    label_x, anchor = (x - 4, "end") if flip else (x + 4, "start")
    label_y = frame.top + 12 + 14 * label_row
    return [
        _el("line", class_=css_class, x1=x, x2=x, y1=frame.top, y2=frame.bottom, stroke_dasharray=dash),
        _label(label, f"chart-label {css_class}-label", label_x, label_y, anchor),
    ]


def _bar(frame, slot, value, css_class, tooltip):
    """A vertical bar filling the middle 80 % of slot [slot, slot + 1), with a hover tooltip."""
    x, y = frame.x(slot + 0.1), frame.y(value)
    width, height = frame.x(slot + 0.9) - x, frame.bottom - y
    return _el("rect", _el("title", _text(tooltip)), class_=css_class, x=x, y=y, width=width, height=height)


# --- charts --------------------------------------------------------------------------------------------------------


def _step_at(curve, day):
    """The share of a step curve (points in day order) at `day`: the last point on or before it, else 0."""
    return _steps_at(curve, [day])[0]


def _steps_at(curve, days):
    """_step_at for each of `days`, found by bisection: a curve has up to 500 points, a chart asks ~1,000 days."""
    curve_days = [float(p["day"]) for p in curve]
    shares = [0.0] + [float(p["share"]) for p in curve]  # index 0: before the first point, nothing yet
    return [shares[bisect_right(curve_days, day)] for day in days]


def _steps(frame, days, values):
    """A step path through (day, percent) values from day 0, where nothing has happened yet."""
    path = f"M{_num(frame.x(0))} {_num(frame.y(0))}"
    return path + "".join(
        f"H{_num(frame.x(day))}V{_num(frame.y(value))}" for day, value in zip(days, values, strict=True)
    )


def _band(frame, reached):
    """The reached curve's 95% interval as a closed polygon: along the highs to the right edge, back along
    the lows. Each value holds from its day to the next, as the curve's own steps do."""
    bounded = [p for p in reached if p.get("low") is not None]
    if not bounded:
        return None
    xs = [frame.x(p["day"]) for p in bounded] + [frame.right]
    highs, lows = [frame.y(p["high"] * 100) for p in bounded], [frame.y(p["low"] * 100) for p in bounded]
    path = [f"M{_num(xs[0])} {_num(highs[0])}"]
    for i, high in enumerate(highs):
        path.append(f"V{_num(high)}H{_num(xs[i + 1])}")
    for i in range(len(lows) - 1, -1, -1):
        path.append(f"V{_num(lows[i])}H{_num(xs[i])}")
    return "".join(path) + "Z"


def _outcomes_desc(reached, lost, purchases, target_days, p50):
    last_day = max(float(p["day"]) for p in (*reached, *lost))
    share, gone = _step_at(reached, last_day), _step_at(lost, last_day)
    parts = [
        f"Of {purchases} customers, {_percent(share)} reached PoV and {_percent(gone)} were lost by day "
        f"{_display(last_day)}; the rest are still on their way."
    ]
    if target_days is not None:
        parts.append(f"By the target day {_display(target_days)}: {_percent(_step_at(reached, target_days))}.")
    parts.append(f"Half reach PoV by day {_display(p50)}." if p50 is not None else "Half have not reached PoV yet.")
    return " ".join(parts)


def outcomes_chart(reached, lost, *, chart_id, purchases, target_days=None, p50=None, empty_text=OUTCOMES_EMPTY):
    """Reached PoV (from the bottom, with its 95% band) and lost (stacked on it) by clock day since purchase,
    the rest still waiting; the target day dashed, the day half reached dotted."""
    _check_id(chart_id)
    target_days, p50 = _optional_float(target_days), _optional_float(p50)
    if not reached and not lost:
        return _empty(chart_id, empty_text)
    days = sorted({float(p["day"]) for p in (*reached, *lost)})
    frame = _Frame(max(days[-1], target_days or 0, 1) * 1.05, 100)
    reached_values = [share * 100 for share in _steps_at(reached, days)]
    stacked = [r + share * 100 for r, share in zip(reached_values, _steps_at(lost, days), strict=True)]
    bottom = f"H{_num(frame.right)}V{_num(frame.y(0))}H{_num(frame.x(0))}Z"
    body = [
        *_y_axis(frame, nice_ticks(100), lambda tick: f"{_num(tick)} %", "share of customers"),
        *_x_axis(
            frame, [(frame.x(day), _num(day)) for day in nice_ticks(frame.x_max, cover=False)], "days since purchase"
        ),
        _el("path", class_="chart-lost", d=_steps(frame, days, stacked) + bottom),
        _el("path", class_="chart-reached", d=_steps(frame, days, reached_values) + bottom),
    ]
    if band := _band(frame, reached):
        body.append(_el("path", class_="chart-band", d=band))
    body.append(_el("path", class_="chart-line chart-step", d=_steps(frame, days, reached_values), fill="none"))
    if p50 is not None:
        body += _marker(frame, p50, "chart-median", "2 3", f"half by {_display(round(p50))} d", label_row=1)
    if target_days is not None:
        share = _step_at(reached, target_days) * 100
        body += _marker(frame, target_days, "chart-target", "6 4", f"target {_display(target_days)} d")
        x, y = frame.x(target_days), frame.y(share)
        body.append(_el("circle", class_="chart-target-point", cx=x, cy=y, r=4))
        body.append(_label(f"{round(share)} %", "chart-label chart-target-share", x + 6, y - 6))
    body.append(_label(f"n = {purchases}", "chart-label chart-n", frame.right, frame.top + 12, "end"))
    desc = _outcomes_desc(reached, lost, purchases, target_days, p50)
    return _svg(chart_id, "outcomes", "Customers reaching PoV, and lost, over time", desc, body)


def _week_label(histogram_bin):
    week = histogram_bin["week"]
    return f"≥ {week} w" if histogram_bin.get("open") else f"{week}–{week + 1} w"


def histogram_chart(bins, *, chart_id, target_days=None, empty_text=HISTOGRAM_EMPTY):
    """Days to value by week as vertical bars; the target day marked at week target_days / 7."""
    _check_id(chart_id)
    target_days = _optional_float(target_days)
    total = sum(histogram_bin["count"] for histogram_bin in bins)
    if not total:
        return _empty(chart_id, empty_text)
    count_ticks = nice_ticks(max(histogram_bin["count"] for histogram_bin in bins), integer=True)
    # Bars sit at their week on a week scale, so a week with no bin leaves a gap and the target lands exactly.
    frame = _Frame(max(histogram_bin["week"] for histogram_bin in bins) + 1, count_ticks[-1])
    bars, labels = [], []
    for histogram_bin in bins:
        week, count, label = histogram_bin["week"], histogram_bin["count"], _week_label(histogram_bin)
        noun = "customer" if count == 1 else "customers"
        bars.append(_bar(frame, week, count, "chart-bar", f"{label}: {count} {noun} reached PoV"))
        labels.append((frame.x(week + 0.5), label))
    body = [*_y_axis(frame, count_ticks, _num, "customers"), *bars]
    body += _x_axis(frame, _thinned(labels), "weeks from purchase to PoV")
    if target_days is not None:
        body += _marker(frame, target_days / 7, "chart-target", "6 4", f"target {_display(target_days)} d")
    desc = f"Weeks from purchase to PoV for the {total} customers who reached it, one bar per week."
    return _svg(chart_id, "histogram", "Time to value", desc, body)


def _month_label(month):
    """ "2026-01" → "Jan 26"; anything else is shown as given."""
    try:
        year, number = (int(part) for part in str(month).split("-")[:2])
        return f"{MONTHS[number - 1]} {year % 100:02d}"
    except (ValueError, IndexError):
        return str(month)


def _cohort_share(cohort):
    """The month's share reaching PoV by the target day; None for a month without purchases."""
    by_target = cohort.get("reached_by_target") or {}
    return by_target.get("share") if cohort["purchases"] else None


def _cohort_tooltip(cohort, label):
    share = _cohort_share(cohort)
    if share is None:
        return f"{label}: no purchases"
    young = "" if cohort.get("mature", True) else "; still young, the share can rise"
    so_far = f"{cohort['reached']}/{cohort['purchases']} reached PoV so far"
    return f"{label}: {_percent(share)} by the target day, {so_far}{young}"


def cohort_chart(cohorts, *, chart_id, empty_text=COHORT_EMPTY):
    """Per purchase month, oldest first: the share reaching PoV by the target day; months younger than the
    target (whose share can still rise) drawn as young."""
    _check_id(chart_id)
    if not any(cohort["purchases"] for cohort in cohorts):
        return _empty(chart_id, empty_text)
    frame = _Frame(len(cohorts), 100)
    bars, labels = [], []
    for index, cohort in enumerate(cohorts):
        share, label = _cohort_share(cohort), _month_label(cohort["month"])
        css_class = "chart-bar" if share is not None else "chart-bar chart-bar-none"
        css_class += "" if cohort.get("mature", True) else " chart-young"
        bars.append(_bar(frame, index, (share or 0) * 100, css_class, _cohort_tooltip(cohort, label)))
        labels.append((frame.x(index + 0.5), label))
    body = [*_y_axis(frame, nice_ticks(100), lambda tick: f"{_num(tick)} %", "by the target day"), *bars]
    body += _x_axis(frame, _thinned(labels), "purchase month")
    desc = (
        "Share of each month's buyers who reached PoV by their target day, oldest month first. Months whose "
        "youngest purchase is not yet past its target are drawn lighter: their share can still rise."
    )
    return _svg(chart_id, "cohorts", "Reached PoV by the target day, by purchase month", desc, body)


def _drop_text(dropped, purchases):
    """Those past the milestone's due day without it, in customers and in points of the purchases (the
    bars' scale). Customers not yet due are still on their way: they never count as dropped."""
    if not dropped:
        return "none dropped"
    return f"{dropped} dropped ({round(dropped / purchases * 100)} %)"


def _funnel_row(index, milestone, purchases, width):
    top, full = FUNNEL_TOP + index * FUNNEL_ROW, width - 16
    name = str(milestone["name"])
    short = name if len(name) <= FUNNEL_NAME_CHARS else name[: FUNNEL_NAME_CHARS - 1] + "…"
    reached, rate = milestone["reached"], milestone["rate"] or 0
    median = milestone.get("median_clock_days")
    shown_rate = _percent(milestone["rate"])
    tooltip = f"{name}: {reached} of {purchases} purchases ({shown_rate}), due day {milestone['due_day']}"
    tooltip += f", median {_display(median)} days after purchase" if median is not None else ""
    if milestone.get("dropped"):
        tooltip += f"; {milestone['dropped']} past the due day without it"
    css_class = "chart-bar chart-funnel-bar" + (" chart-pov" if milestone.get("is_pov") else "")
    bar_width = full * min(rate, 1)
    return [
        _label(f"{short} — {reached} ({shown_rate})", "chart-label chart-funnel-label", 8, top + 12),
        _label(_drop_text(milestone.get("dropped"), purchases), "chart-label chart-drop", width - 8, top + 12, "end"),
        _el("rect", class_="chart-track", x=8, y=top + 18, width=full, height=16),
        _el("rect", _el("title", _text(tooltip)), class_=css_class, x=8, y=top + 18, width=bar_width, height=16),
    ]


def funnel_chart(funnel, *, chart_id, empty_text=FUNNEL_EMPTY):
    """One horizontal bar per milestone in journey order (length = rate), with how many dropped out there."""
    _check_id(chart_id)
    milestones, purchases = (funnel or {}).get("milestones") or [], (funnel or {}).get("purchases") or 0
    if not milestones or not purchases:
        return _empty(chart_id, empty_text)
    height = FUNNEL_TOP + len(milestones) * FUNNEL_ROW + 4
    noun = "purchase" if purchases == 1 else "purchases"
    body = [_label(f"{purchases} {noun}", "chart-label chart-funnel-total", 8, 16)]
    for index, milestone in enumerate(milestones):
        body += _funnel_row(index, milestone, purchases, WIDTH)
    desc = (
        f"Of {purchases} {noun}, how many reached each milestone, in journey order, and how many dropped out: "
        "past its due day without it. The last is the point of value."
    )
    return _svg(chart_id, "funnel", "Milestone funnel", desc, body, height=height)


def _gapped_path(points):
    """A line through (x, y) points that lifts the pen at each None, so a missing value is a gap, not a zero."""
    commands, pen_down = [], False
    for point in points:
        if point is not None:
            commands.append(f"{'L' if pen_down else 'M'}{_num(point[0])} {_num(point[1])}")
        pen_down = point is not None
    return "".join(commands)


def sparkline(values, *, chart_id, label, empty_text=SPARKLINE_EMPTY):
    """A small trend line for a headline card; None values leave gaps instead of being drawn as zero."""
    _check_id(chart_id)
    present = [value for value in values if value is not None]
    if not present:
        return _empty(chart_id, empty_text)
    width, height, pad = 120, 32, 3
    low, high = min(present), max(present)
    if low == high:  # a flat series sits in the middle instead of on the floor
        low, high = low - 1, high + 1
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    scale = (height - 2 * pad) / (high - low)
    points = [None if v is None else (pad + i * step, height - pad - (v - low) * scale) for i, v in enumerate(values)]
    end_x, end_y = next(point for point in reversed(points) if point is not None)
    body = [
        _el("path", class_="chart-line chart-sparkline-line", d=_gapped_path(points), fill="none"),
        _el("circle", class_="chart-sparkline-end", cx=end_x, cy=end_y, r=2),
    ]
    desc = f"{len(present)} values from {_display(present[0])} to {_display(present[-1])}"
    desc += f", lowest {_display(min(present))}, highest {_display(max(present))}."
    return _svg(chart_id, "sparkline", label, desc, body, width=width, height=height)
