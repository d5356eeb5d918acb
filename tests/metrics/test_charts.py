"""metrics.charts: server-rendered SVG, checked by parsing it (it must be well-formed XML) and measuring shapes."""

import re
import xml.etree.ElementTree as ET

import pytest
from django.utils.safestring import SafeString

from metrics.charts import (
    cohort_chart,
    funnel_chart,
    histogram_chart,
    nice_step,
    nice_ticks,
    outcomes_chart,
    sparkline,
)

NS = "{http://www.w3.org/2000/svg}"
REACHED = [
    {"day": 3.0, "share": 0.2, "low": 0.1, "high": 0.3},
    {"day": 10.0, "share": 0.45, "low": 0.35, "high": 0.55},
    {"day": 40.0, "share": 0.75, "low": None, "high": None},
]
LOST = [{"day": 5.0, "share": 0.1, "low": 0.05, "high": 0.2}]
BINS = [{"week": week, "count": count, "open": False} for week, count in enumerate([2, 6, 3, 0, 1])]


def cohort(month, purchases, reached, by_target, mature=True):
    share = {"share": by_target, "low": None, "high": None} if purchases else None
    rate = reached / purchases if purchases else None
    return {"month": month, "purchases": purchases, "reached": reached, "pov_rate": rate,
            "reached_by_target": share, "mature": mature}  # fmt: skip


COHORTS = [cohort("2025-11", 10, 2, 0.2), cohort("2025-12", 0, 0, None), cohort("2026-01", 5, 4, 0.8, mature=False)]


def milestone(name, reached, purchases=20, *, is_pov=False, median=None, dropped=0):
    rate = reached / purchases
    return {"milestone": name.lower()[:8], "name": name, "due_day": 7, "is_pov": is_pov, "reached": reached,
            "rate": rate, "median_clock_days": median, "dropped": dropped}  # fmt: skip


FUNNEL = {
    "offering": "onboarding",
    "purchases": 20,
    "milestones": [
        milestone("Kickoff", 17, median=2, dropped=3),
        milestone("First report", 14, dropped=1),
        milestone("PoV", 8, is_pov=True),
    ],
}


def outcomes(chart_id="outcomes", **kw):
    return outcomes_chart(REACHED, LOST, chart_id=chart_id, purchases=20, **kw)


def parse(svg):
    return ET.fromstring(str(svg))


def with_class(root, css_class):
    return [element for element in root.iter() if css_class in element.get("class", "").split()]


def only(elements):
    assert len(elements) == 1, elements
    return elements[0]


def tick_positions(root, axis):
    """{label text: coordinate} of the axis' tick labels (x for the x axis, y for the y axis)."""
    attribute = "x" if axis == "x" else "y"
    return {label.text: float(label.get(attribute)) for label in with_class(root, f"chart-tick-{axis}")}


def percent_to_y(root):
    """The y of a percentage on a 0–100 % axis, from where its 0 % and 100 % gridlines are drawn."""
    ticks = tick_positions(root, "y")
    zero, hundred = ticks["0 %"] - 4, ticks["100 %"] - 4  # labels sit 4 below their gridline
    return lambda percent: zero + (hundred - zero) * percent / 100


def bar_heights(root):
    return [float(bar.get("height")) for bar in with_class(root, "chart-bar")]


def every_chart(chart_id="c"):
    return [
        outcomes(chart_id, target_days=14, p50=10),
        histogram_chart(BINS, chart_id=chart_id, target_days=10),
        cohort_chart(COHORTS, chart_id=chart_id),
        funnel_chart(FUNNEL, chart_id=chart_id),
        sparkline([0.1, 0.35, None, 1 / 3], chart_id=chart_id, label="PoV rate"),
    ]


# --- common to every chart -------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(5))
def test_each_chart_is_an_accessible_responsive_svg(index):
    svg = every_chart("pov-rate-7")[index]
    root = parse(svg)

    assert isinstance(svg, SafeString)
    assert root.tag == f"{NS}svg"
    assert root.get("role") == "img"
    assert root.get("width") == "100%" and root.get("height") is None
    assert re.fullmatch(r"0 0 \d+ \d+", root.get("viewBox"))
    assert root.get("aria-labelledby") == "pov-rate-7-title pov-rate-7-desc"
    title, desc = root.find(f"{NS}title"), root.find(f"{NS}desc")
    assert title.get("id") == "pov-rate-7-title" and title.text
    assert desc.get("id") == "pov-rate-7-desc" and desc.text
    assert "style" not in str(svg) and 'fill="#' not in str(svg)  # colours come from the stylesheet


def test_ids_follow_the_chart_id_so_two_charts_on_a_page_do_not_collide():
    first, second = parse(outcomes("km-a")), parse(outcomes("km-b"))

    assert first.find(f"{NS}title").get("id") == "km-a-title"
    assert second.find(f"{NS}title").get("id") == "km-b-title"


@pytest.mark.parametrize("index", range(5))
def test_coordinates_have_at_most_one_decimal(index):
    svg = str(every_chart()[index])
    numbers = re.findall(r' (?:x|y|x1|x2|y1|y2|cx|cy|r|width|height)="([^"%]*)"', svg)
    numbers += re.findall(r"-?\d+(?:\.\d+)?", " ".join(re.findall(r' d="([^"]*)"', svg)))

    assert numbers
    assert all(re.fullmatch(r"-?\d+(\.\d)?", number) for number in numbers), numbers


@pytest.mark.parametrize("chart_id", ["", "1km", "Km", "km chart", 'km"', "km_1", "km\n", None])
@pytest.mark.parametrize(
    "draw",
    [
        lambda chart_id: outcomes(chart_id),
        lambda chart_id: histogram_chart(BINS, chart_id=chart_id),
        lambda chart_id: cohort_chart(COHORTS, chart_id=chart_id),
        lambda chart_id: funnel_chart(FUNNEL, chart_id=chart_id),
        lambda chart_id: sparkline([1.0], chart_id=chart_id, label="x"),
        lambda chart_id: outcomes_chart([], [], chart_id=chart_id, purchases=0),  # the empty state checks it too
    ],
)
def test_an_invalid_chart_id_is_refused(draw, chart_id):
    with pytest.raises(ValueError, match="chart_id"):
        draw(chart_id)


@pytest.mark.parametrize(
    "draw",
    [
        lambda **kw: outcomes_chart([], [], purchases=0, **kw),
        lambda **kw: histogram_chart([], **kw),
        lambda **kw: histogram_chart([{"week": 0, "count": 0, "open": False}], **kw),
        lambda **kw: cohort_chart([], **kw),
        lambda **kw: cohort_chart([cohort("2026-01", 0, 0, None)], **kw),
        lambda **kw: funnel_chart({"offering": "o", "purchases": 0, "milestones": [milestone("PoV", 0, 1)]}, **kw),
        lambda **kw: funnel_chart(None, **kw),
        lambda **kw: sparkline([None, None], label="PoV rate", **kw),
    ],
)
def test_no_data_shows_the_empty_text_instead_of_a_chart(draw):
    default = parse(draw(chart_id="e"))
    custom = parse(draw(chart_id="e", empty_text="Record a <purchase> first"))

    assert default.tag == "p" and default.get("class") == "chart-empty" and len(default.text) > 5
    assert custom.text == "Record a <purchase> first"
    assert "&lt;purchase&gt;" in str(draw(chart_id="e", empty_text="Record a <purchase> first"))


def test_nice_steps_are_one_two_or_five_times_a_power_of_ten():
    assert nice_step(100) == 20
    assert nice_step(10.85) == 5
    assert nice_step(0.7) == pytest.approx(0.2)
    assert nice_step(3, integer=True) == 1
    assert nice_ticks(100) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(7, integer=True) == [0, 2, 4, 6, 8]
    assert nice_ticks(10.85, cover=False) == [0, 5, 10]


# --- reached and lost ------------------------------------------------------------------------------------------


def path_points(d):
    """(x, y) at the end of each command of a step path."""
    x = y = None
    points = []
    for command, numbers in re.findall(r"([MHVZ])([-\d. ]*)", d):
        values = [float(number) for number in numbers.split()]
        if command == "M":
            x, y = values
        elif command == "H":
            x = values[0]
        elif command == "V":
            y = values[0]
        else:
            continue
        points.append((x, y))
    return points


def test_reached_is_a_step_line_from_zero_ending_at_the_last_share():
    root = parse(outcomes())
    y_of = percent_to_y(root)
    points = path_points(only(with_class(root, "chart-step")).get("d"))

    assert points[0][1] == pytest.approx(y_of(0), abs=0.1)
    assert points[-1][1] == pytest.approx(y_of(75), abs=0.1)


def test_lost_is_stacked_on_reached():
    root = parse(outcomes())
    y_of = percent_to_y(root)
    lost_top = [y for _, y in path_points(only(with_class(root, "chart-lost")).get("d"))]

    # After day 40: 75 % reached plus 10 % lost; the area is closed along the bottom (0 %).
    assert min(lost_top) == pytest.approx(y_of(85), abs=0.1)
    assert max(lost_top) == pytest.approx(y_of(0), abs=0.1)


def test_the_band_spans_the_interval_and_stops_where_the_interval_does():
    root = parse(outcomes())
    y_of = percent_to_y(root)
    ys = [y for _, y in path_points(only(with_class(root, "chart-band")).get("d"))]

    assert min(ys) == pytest.approx(y_of(55), abs=0.1)
    assert max(ys) == pytest.approx(y_of(10), abs=0.1)
    assert with_class(parse(outcomes_chart(REACHED[2:], [], chart_id="c", purchases=1)), "chart-band") == []


def test_n_is_shown_and_the_description_says_how_many_reached_and_were_lost():
    root = parse(outcomes())

    assert only(with_class(root, "chart-n")).text == "n = 20"
    assert "75 % reached PoV and 10 % were lost by day 40" in root.find(f"{NS}desc").text


def test_outcomes_x_axis_reaches_past_the_last_day_or_the_target():
    short = tick_positions(parse(outcomes()), "x")
    long = tick_positions(parse(outcomes(target_days=90)), "x")

    assert "40" in short and "100" not in short
    assert "80" in long


def test_the_target_line_exists_only_with_a_target_and_sits_at_its_day():
    without = parse(outcomes())
    root = parse(outcomes(target_days=14))
    ticks = tick_positions(root, "x")
    per_day = (ticks["10"] - ticks["0"]) / 10

    assert with_class(without, "chart-target") == []
    line = only([element for element in with_class(root, "chart-target") if element.tag == f"{NS}line"])
    assert float(line.get("x1")) == pytest.approx(ticks["0"] + 14 * per_day, abs=0.15)
    assert only(with_class(root, "chart-target-label")).text == "target 14 d"
    assert only(with_class(root, "chart-target-share")).text == "45 %"  # the step holds 45 % from day 10 to 40
    point = only(with_class(root, "chart-target-point"))
    assert float(point.get("cy")) == pytest.approx(percent_to_y(root)(45), abs=0.1)


def test_the_half_marker_is_dotted_and_only_drawn_when_half_reached():
    root = parse(outcomes())
    assert with_class(root, "chart-median") == []
    assert "Half have not reached PoV yet." in root.find(f"{NS}desc").text
    root = parse(outcomes(p50=10))

    line = only([element for element in with_class(root, "chart-median") if element.tag == f"{NS}line"])
    assert line.get("stroke-dasharray")
    assert only(with_class(root, "chart-median-label")).text == "half by 10 d"


# --- histogram --------------------------------------------------------------------------------------------------


def test_histogram_has_one_bar_per_bin_with_heights_proportional_to_counts():
    root = parse(histogram_chart(BINS, chart_id="hist"))
    heights = bar_heights(root)

    assert len(heights) == len(BINS)
    assert heights[1] / heights[0] == pytest.approx(6 / 2, rel=0.01)
    assert heights[3] == 0
    assert [label.text for label in with_class(root, "chart-tick-x")] == ["0–1 w", "1–2 w", "2–3 w", "3–4 w", "4–5 w"]


def test_histogram_labels_the_open_ended_last_bin():
    bins = [{"week": 0, "count": 1, "open": False}, {"week": 25, "count": 3, "open": True}]
    root = parse(histogram_chart(bins, chart_id="hist"))

    assert [label.text for label in with_class(root, "chart-tick-x")] == ["0–1 w", "≥ 25 w"]
    assert "≥ 25 w: 3 customers" in with_class(root, "chart-bar")[1].find(f"{NS}title").text


def test_histogram_target_sits_at_target_days_over_seven_weeks():
    assert with_class(parse(histogram_chart(BINS, chart_id="hist")), "chart-target") == []
    root = parse(histogram_chart(BINS, chart_id="hist", target_days=10))
    bars = with_class(root, "chart-bar")
    week = float(bars[1].get("x")) - float(bars[0].get("x"))
    week_zero_starts = float(bars[0].get("x")) - 0.1 * week  # a bar fills the middle 80 % of its week

    line = only([element for element in with_class(root, "chart-target") if element.tag == f"{NS}line"])
    assert float(line.get("x1")) == pytest.approx(week_zero_starts + 10 / 7 * week, abs=0.2)


# --- cohorts ----------------------------------------------------------------------------------------------------


def test_cohorts_have_one_bar_per_month_proportional_to_the_share_by_the_target():
    root = parse(cohort_chart(COHORTS, chart_id="cohorts"))
    heights = bar_heights(root)
    bars = with_class(root, "chart-bar")

    assert len(heights) == len(COHORTS)
    assert heights[2] / heights[0] == pytest.approx(0.8 / 0.2, rel=0.01)
    assert heights[1] == 0 and "chart-bar-none" in bars[1].get("class")
    assert [label.text for label in with_class(root, "chart-tick-x")] == ["Nov 25", "Dec 25", "Jan 26"]


def test_a_young_month_is_marked_and_says_its_share_can_rise():
    bars = with_class(parse(cohort_chart(COHORTS, chart_id="cohorts")), "chart-bar")

    assert "chart-young" not in bars[0].get("class") and "chart-young" in bars[2].get("class")
    assert "2/10 reached PoV so far" in bars[0].find(f"{NS}title").text
    assert "can rise" in bars[2].find(f"{NS}title").text and "80 %" in bars[2].find(f"{NS}title").text


def test_cohort_month_labels_thin_out_beyond_twelve_months_but_every_bar_stays():
    months = [f"{2024 + index // 12}-{index % 12 + 1:02d}" for index in range(30)]
    cohorts = [cohort(month, 4, 1, 0.25) for month in months]
    root = parse(cohort_chart(cohorts, chart_id="cohorts"))
    labels = [label.text for label in with_class(root, "chart-tick-x")]

    assert len(with_class(root, "chart-bar")) == 30
    assert 1 < len(labels) <= 12
    assert labels[:2] == ["Jan 24", "Apr 24"]


# --- funnel -----------------------------------------------------------------------------------------------------


def test_funnel_has_one_bar_per_milestone_with_lengths_proportional_to_rates():
    root = parse(funnel_chart(FUNNEL, chart_id="funnel"))
    widths = [float(bar.get("width")) for bar in with_class(root, "chart-funnel-bar")]

    assert len(widths) == 3
    assert widths[0] / widths[2] == pytest.approx(17 / 8, rel=0.01)
    assert [label.text for label in with_class(root, "chart-funnel-label")] == [
        "Kickoff — 17 (85 %)",
        "First report — 14 (70 %)",
        "PoV — 8 (40 %)",
    ]


def test_funnel_shows_those_past_the_due_day_without_the_milestone_and_marks_the_pov():
    root = parse(funnel_chart(FUNNEL, chart_id="funnel"))
    bars = with_class(root, "chart-funnel-bar")

    # Not the difference between steps: 3 of the 6 who have not reported yet are not due yet.
    assert [drop.text for drop in with_class(root, "chart-drop")] == [
        "3 dropped (15 %)",
        "1 dropped (5 %)",
        "none dropped",
    ]
    assert [bar for bar in bars if "chart-pov" in bar.get("class").split()] == [bars[2]]


def test_funnel_escapes_user_text_so_a_script_stays_text():
    funnel = {**FUNNEL, "milestones": [milestone('<script>alert("x")</script> & co', 5), milestone("PoV\x0b", 4)]}
    svg = str(funnel_chart(funnel, chart_id="funnel"))
    root = parse(svg)  # also: the vertical tab XML forbids was dropped, or this would raise

    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert not [element for element in root.iter() if element.tag.endswith("script")]
    assert with_class(root, "chart-funnel-label")[0].text.startswith('<script>alert("x")</script> & co — 5')


def test_funnel_of_two_new_customers_not_yet_due_shows_no_drop():
    funnel = {"offering": "x", "purchases": 2, "milestones": [milestone("Kickoff", 0, 2), milestone("PoV", 0, 2)]}
    drops = [drop.text for drop in with_class(parse(funnel_chart(funnel, chart_id="funnel")), "chart-drop")]

    assert drops == ["none dropped", "none dropped"]


# --- sparkline --------------------------------------------------------------------------------------------------


def sparkline_segments(root):
    """The path's pen-down runs, each a list of (x, y)."""
    d = only(with_class(root, "chart-sparkline-line")).get("d")
    runs = re.findall(r"M[^M]*", d)
    return [[(float(x), float(y)) for x, y in re.findall(r"[ML]([-\d.]+) ([-\d.]+)", run)] for run in runs]


def test_sparkline_skips_gaps_and_ends_at_the_last_value():
    root = parse(sparkline([1.0, 3.0, None, 2.0, 4.0, None], chart_id="spark", label="Median days <to> value"))
    segments = sparkline_segments(root)
    end = only(with_class(root, "chart-sparkline-end"))

    assert [len(segment) for segment in segments] == [2, 2]  # 1 → 3, gap, 2 → 4
    assert (float(end.get("cx")), float(end.get("cy"))) == segments[1][-1]
    assert segments[1][-1][1] < segments[0][0][1]  # 4 is drawn higher up than 1
    assert root.find(f"{NS}title").text == "Median days <to> value"


def test_a_flat_sparkline_sits_in_the_middle():
    (segment,) = sparkline_segments(parse(sparkline([2.0, 2.0], chart_id="spark", label="Flat")))

    assert [y for _, y in segment] == [16.0, 16.0]


def test_a_funnel_step_tooltip_counts_those_past_its_due_day_without_it():
    late = {**milestone("Kickoff", 17), "dropped": 3}
    funnel = {**FUNNEL, "milestones": [late, milestone("PoV", 8, is_pov=True)]}
    bars = with_class(parse(funnel_chart(funnel, chart_id="funnel")), "chart-funnel-bar")

    assert "3 past the due day without it" in bars[0].find(f"{NS}title").text
    assert "past the due day" not in bars[1].find(f"{NS}title").text
