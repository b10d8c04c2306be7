"""The chart with many lanes, and the colours that tell lanes apart.

Pure tests of ``widgets.chart.plot`` fed scripted races (tests/tui_scripted.py)
and of the palette: eight lanes keep distinct first-token marks and readable
starts on a long race, each lane's name sits where its line ends, the time
axis says where its round seconds are, and no lane colour is (or is near) a
status colour.
"""

from __future__ import annotations

import math
import sys
from itertools import combinations
from pathlib import Path

import pytest
from rich.style import Style

from thunderdome.tui.feed import EventFeed
from thunderdome.tui.palette import LANE_COLORS, MARKER_STYLE, STATUS_BADGE, STATUS_COLOR
from thunderdome.tui.widgets.chart import Line, TimeAxis, plot, time_ticks

sys.path.insert(0, str(Path(__file__).parent))
from tui_scripted import PROFILES, Pace, long_race  # noqa: E402

EIGHT = (("instant", "instant"), ("local", "fast-local"), ("early", "early"), ("cloud", "cloud"),
         ("mid", "mid"), ("spark", "dgx-spark"), ("late", "late"), ("rtx", "rtx4090-offload"))
"""Eight lanes whose first tokens land between 0.01 s and 2.05 s."""


@pytest.fixture(autouse=True)
def eight_paces(monkeypatch):
    extra = {"early": Pace(0.45, 90.0), "mid": Pace(1.1, 60.0), "late": Pace(1.7, 25.0)}
    monkeypatch.setattr("tui_scripted.PROFILES", {**PROFILES, **extra})


def eight_lines(until: float | None) -> tuple[list[Line], float]:
    feed = EventFeed(lambda: 0.0)
    events = long_race(until=until, lanes=EIGHT)
    feed.feed_all(events)
    lines = [Line(name, LANE_COLORS[i], feed.series[name]) for i, (name, _) in enumerate(EIGHT)]
    return lines, max(e.t for e in events)


def marker_columns(rows) -> list[int]:
    axis = rows[-2].plain
    return [i for i, ch in enumerate(axis) if ch == "◆"]


# -- many lanes ------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [70, 100, 150])
def test_eight_first_tokens_keep_eight_marks_when_the_slowest_lane_sets_the_axis(width):
    lines, now = eight_lines(until=None)  # the 4090 lane takes ~94 s
    assert now > 90
    rows = plot(lines, now, width, 14)
    assert len(marker_columns(rows)) == 8  # a linear axis puts them in two columns


def test_eight_lines_are_apart_in_the_first_seconds():
    lines, now = eight_lines(until=None)
    width, height = 100, 16
    rows = plot(lines, now, width, height)
    axis = TimeAxis(end=100.0)
    plot_w = width - 5 - (max(len(line.name) for line in lines) + 2)
    first_seconds = axis.cell(3.0, plot_w) + 5  # the first 3 s, right of the y labels
    assert first_seconds > plot_w // 4  # a quarter of the width, not 3%
    colours = {span.style.color.name for row in rows[:-2] for span in row.spans
               if isinstance(span.style, Style) and span.style.color and span.start < first_seconds}
    assert len(colours & {c.lower() for c in LANE_COLORS}) >= 7  # most lines already show there


def test_each_name_is_written_where_its_line_ends():
    lines, now = eight_lines(until=None)
    width, height = 120, 20
    rows = plot(lines, now, width, height)
    for line in lines:
        found = [(r, row.plain.index(line.name)) for r, row in enumerate(rows[:-2]) if f" {line.name}" in row.plain]
        assert found, line.name
        r, col = found[0]
        spans = [s for s in rows[r].spans if s.start <= col < s.end]
        assert any(isinstance(s.style, Style) and s.style.color and s.style.color.name == line.color.lower() for s in spans)
    finished_first = lines[0]  # 'instant' ends at ~0.45 s: its name is inside the plot, not in the legend column
    r, col = next((r, row.plain.index(" instant")) for r, row in enumerate(rows[:-2]) if " instant" in row.plain)
    end_col = TimeAxis(end=100.0).cell(finished_first.series.end_t or 0.0, width) + 4
    assert col < width // 2 and abs(col - end_col) <= width // 4
    assert r <= 3  # it ended at the top of the token axis


def test_the_time_axis_is_labelled_at_round_seconds_in_order():
    lines, now = eight_lines(until=None)
    labels = plot(lines, now, 120, 14)[-1].plain
    assert labels.rstrip().endswith("s")
    shown = [float(tok) for tok in labels.split()[:-1]]
    assert shown == sorted(shown) and shown[0] == 0 and {1.0, 10.0} <= set(shown)
    gap_first = labels.index(" 1 ") - labels.index("0")
    gap_last = labels.index("100") - labels.index("10 ")
    assert gap_first > gap_last / 3  # 0-1 s gets room on a 100 s axis (linear: 1/90 of it)


def test_time_axis_round_trips_and_ticks_are_round():
    axis = TimeAxis(end=100.0)
    for t in (0.0, 0.01, 0.9, 2.05, 21.8, 93.9, 100.0):
        assert math.isclose(axis.time_at(axis.fraction(t)), t, abs_tol=1e-9)
    assert axis.fraction(0.0) == 0.0 and math.isclose(axis.fraction(100.0), 1.0)
    assert time_ticks(100.0) == [0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
    assert time_ticks(1.25)[-1] == 1.25 or time_ticks(1.25)[-1] == 1.0


def test_a_live_race_keeps_names_and_marks_as_it_runs():
    for until in (0.5, 1.5, 3.0, 12.3):
        lines, now = eight_lines(until=until)
        rows = plot(lines, now, 80, 12)
        started = [line for line in lines if line.series.first_token_t is not None]
        assert len(marker_columns(rows)) == len({line.series.first_token_t for line in started})
        text = "\n".join(row.plain for row in rows)
        assert all(line.name in text for line in started), until


# -- colours -----------------------------------------------------------------------------------


def lab(color: str) -> tuple[float, float, float]:
    """sRGB hex to CIE L*a*b* (D65)."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(color[i:i + 2], 16) / 255) for i in (1, 3, 5))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def distance(a: str, b: str) -> float:
    """CIE76 colour difference: ~2 is just noticeable, 25+ reads as another colour."""
    return math.dist(lab(a), lab(b))


def status_colours() -> dict[str, str]:
    found = {f"status {k}": v for k, v in STATUS_COLOR.items()}
    for status, (_, style) in STATUS_BADGE.items():
        found[f"badge {status}"] = style.split(" on ")[-1]
    found["first-token marker"] = MARKER_STYLE.color.name
    return found


def test_distance_measures_what_it_should():
    assert distance("#7ad151", "#7ad151") == 0
    assert distance("#000000", "#ffffff") == pytest.approx(100, abs=0.5)
    assert distance("#f25f5c", "#ff5555") < 25  # the old coral lane next to error red: too close


@pytest.mark.parametrize("lane", LANE_COLORS)
def test_no_lane_colour_is_near_a_status_colour(lane):
    for what, colour in status_colours().items():
        assert distance(lane, colour) >= 25, f"lane {lane} vs {what} {colour}"


def test_eight_lane_colours_are_far_apart_and_bright_enough():
    assert len(LANE_COLORS) >= 8
    for a, b in combinations(LANE_COLORS, 2):
        assert distance(a, b) >= 25, (a, b)
    assert all(lab(c)[0] >= 50 for c in LANE_COLORS)  # readable on the dark background
