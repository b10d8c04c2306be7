"""Cumulative tokens over race time, one braille line per lane.

Invariant: the picture is a pure function of (series, colours, now, size):
``plot()`` returns the rows as ``rich.text.Text`` and is unit-tested without
an app. The x axis is seconds since the start barrier, so a late first token
shows as a line that starts late (its ◆ sits on the axis at that time). The
axis is logarithmic past its first half second (``TimeAxis``): the first
seconds, where the first tokens land, keep a readable share of the width
however long the race runs, so eight lanes' starts and ◆ marks stay apart;
ticks sit at round seconds. Axes snap to round numbers so the frame does not
rescale on every token. Each lane's name is written where its line ends
(beside the line, else in the legend column at that row). Lane names go
through ``one_line`` (redacted, control characters visible).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text

from thunderdome.tui.feed import Series
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.rows import RowsWidget

AXIS = Style(color="#7a7a7a")
LABEL = Style(color="#9a9a9a")
_NICE = (1, 2, 2.5, 5, 10)
TITLE = "tokens over time · log time axis"
"""The chart panel's title: it says the time axis is not linear."""
_DOT = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row][col]


def nice_ceiling(value: float) -> float:
    """The smallest 1/2/2.5/5 x 10^k not below ``value``."""
    if value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for m in _NICE:
        candidate = m * 10**exp
        if candidate >= value * 0.999999:
            return candidate
    return 10 ** (exp + 1)


def axis_max(value: float, floor: float, *, integer: bool = False) -> float:
    """A round axis end just above ``value``: a whole number of round steps
    (about five), so the plot stays nearly full yet rescales only in steps.
    ``integer``: whole-number steps (token counts)."""
    value = max(value, floor)
    step = nice_ceiling(value / 5)
    if integer:
        step = max(1, math.ceil(step))
    return round(math.ceil(value * 1.02 / step) * step, 9)


def _fmt_tick(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value / 1000:g}k"


@dataclass(frozen=True)
class TimeAxis:
    """Race time to a fraction of the axis: ``log(1 + t/knee) / log(1 + end/knee)``.
    About linear below ``knee`` seconds, logarithmic above, so a 100 s race
    still gives its first 2 s a quarter of the width (a linear axis: 2%)."""

    end: float
    knee: float = 0.5

    def fraction(self, t: float) -> float:
        return math.log1p(max(t, 0.0) / self.knee) / math.log1p(self.end / self.knee)

    def time_at(self, fraction: float) -> float:
        return self.knee * math.expm1(fraction * math.log1p(self.end / self.knee))

    def cell(self, t: float, cells: int) -> int:
        """The cell of ``cells`` that holds race time ``t``."""
        return min(cells - 1, int(self.fraction(t) * cells))


@dataclass
class _Trace:
    """A line's settled dots for one geometry (``key``): every dot column up
    to ``last_dx`` is left of the series' newest point, so it is final."""

    key: tuple[float, float, int, int, int, int]
    last_dx: int
    prev: int | None
    cells: dict[tuple[int, int], int]
    """(row, cell) -> braille bits."""


@dataclass(frozen=True)
class Line:
    """One lane's line: its series, colour and label."""

    name: str
    color: str
    series: Series


LABEL_MAX = 16
"""A lane name on the chart is cut to this many cells."""
NEAR_ROWS = 2
"""A name beside its line's end sits at most this many rows from it."""


def plot(lines: list[Line], now: float, width: int, height: int) -> list[Text]:
    """Render the chart into ``height`` rows of ``width`` cells."""
    if width < 16 or height < 4:
        return [Text("") for _ in range(max(height, 0))]
    totals = [line.series.total for line in lines]
    ymax = axis_max(max(totals, default=0.0), 10.0, integer=True)
    axis = TimeAxis(axis_max(now, 1.0))
    ylab = max(len(_fmt_tick(ymax)), len(_fmt_tick(ymax / 2)), 1)
    names = {id(line): one_line(line.name, 40)[:LABEL_MAX] for line in lines}  # outside text: redacted, visible
    legend_w = max((len(name) for name in names.values()), default=0) + 2
    if width - ylab - 2 - legend_w < 12:
        legend_w = 0
    pw = width - ylab - 2 - legend_w  # plot cells
    ph = height - 2  # plot rows (x axis + labels below)
    dots_w, dots_h = pw * 2, ph * 4
    masks = [[0] * pw for _ in range(ph)]
    colors: list[list[str | None]] = [[None] * pw for _ in range(ph)]
    ends: list[tuple[int, int, Line]] = []

    # per dot row: the cell row and the braille bit of each dot column (inlined: ~5k dots a redraw)
    row_of = [ph - 1 - dy // 4 for dy in range(dots_h + 1)]
    bits_of = [[_DOT[3 - dy % 4][col] for dy in range(dots_h + 1)] for col in (0, 1)]
    top_dy = dots_h - 1

    def fill(cells: dict[tuple[int, int], int], dx: int, lo: int, hi: int) -> None:
        cell = dx >> 1
        if 0 <= cell < pw:
            bits = bits_of[dx & 1]
            for y in range(lo, hi + 2):  # two dots thick: readable on a projector
                row = row_of[y]
                if row >= 0:
                    cells[(row, cell)] = cells.get((row, cell), 0) | bits[y]

    for line in lines:
        s = line.series
        if s.first_token_t is None or not s.points:
            continue
        times = s.times if len(s.times) == len(s.points) else [p[0] for p in s.points]
        points, color = s.points, line.color
        stop = min(now, s.end_t) if s.end_t is not None else now
        stop = max(stop, times[-1]) if s.end_t is not None else stop
        start_dx = round(axis.fraction(s.first_token_t) * (dots_w - 1))
        stop_dx = min(dots_w - 1, round(axis.fraction(stop) * (dots_w - 1)))
        last_dx = max(start_dx, stop_dx)
        # the dots left of the newest point cannot change any more: kept on the series
        key = (axis.end, ymax, dots_w, dots_h, start_dx, s.version)
        trace = s.plot_cache.get((dots_w, dots_h))
        if trace is None or trace.key != key:
            trace = s.plot_cache[(dots_w, dots_h)] = _Trace(key, start_dx - 1, None, {})
        newest = times[-1]
        tail: dict[tuple[int, int], int] = {}
        prev, settled = trace.prev, True
        for dx in range(trace.last_dx + 1, last_dx + 1):
            t = axis.time_at(dx / (dots_w - 1))
            if dx == last_dx:
                t = max(t, stop)  # the line ends at the lane's latest count
            i = bisect_right(times, t)
            value = points[i - 1][1] if i else 0.0
            dy = min(top_dy, max(0, round(value / ymax * (dots_h - 1))))
            lo, hi = (dy, dy) if prev is None else (min(prev, dy), max(prev, dy))
            settled = settled and dx < last_dx and t < newest
            fill(trace.cells if settled else tail, dx, lo, hi)
            if settled:
                trace.last_dx, trace.prev = dx, dy
            prev = dy
        for cells in (trace.cells, tail):
            for (row, cell), bits in cells.items():
                masks[row][cell] |= bits
                colors[row][cell] = color
        if prev is not None:
            ends.append((row_of[min(prev + 1, top_dy)], last_dx >> 1, line))

    labels = _place_labels(ends, names, masks, pw + legend_w)
    rows: list[Text] = []
    label_rows = {0: _fmt_tick(ymax), ph - 1: "0"}
    if ph >= 7 and ymax % 2 == 0:
        label_rows[round((ph - 1) / 2)] = _fmt_tick(ymax / 2)
    styles: dict[str, Style] = {}
    for r in range(ph):
        text = Text(no_wrap=True, overflow="crop")
        text.append(label_rows.get(r, "").rjust(ylab), LABEL)
        text.append(" ┤" if r in label_rows else " │", AXIS)
        run_style: Style | None = None
        run: list[str] = []
        mask_row, color_row, label_row = masks[r], colors[r], labels.get(r)
        for c in range(pw if label_row is None else pw + legend_w):
            mask = mask_row[c] if c < pw else 0
            if label_row is not None and c in label_row:
                ch, style = label_row[c]
            elif mask:
                ch, color = chr(0x2800 + mask), color_row[c]
                style = styles.get(color) if color else None
                if color and style is None:
                    style = styles[color] = Style(color=color)
            else:
                ch, style = " ", None
            if style is not run_style and run:
                text.append("".join(run), run_style)
                run = []
            run_style = style
            run.append(ch)
        if run:
            text.append("".join(run), run_style)
        if label_row is None:
            text.append(" " * legend_w)
        rows.append(text)
    rows.append(_x_axis(lines, axis, ylab, pw, legend_w))
    rows.append(_x_labels(axis, ylab, pw, legend_w))
    return rows


def _place_labels(
    ends: list[tuple[int, int, Line]], names: dict[int, str], masks: list[list[int]], width: int
) -> dict[int, dict[int, tuple[str, Style]]]:
    """Each line's name where the line ends: just right of its last point, on
    its row or a near one, on cells no dot and no other name uses; else in
    the legend column (where a line ending at the right edge lands anyway)
    at the nearest free row. A name that finds no room is left out."""
    ph = len(masks)
    pw = len(masks[0]) if masks else 0
    taken: dict[int, dict[int, tuple[str, Style]]] = {}

    def free(row: int, start: int, length: int) -> bool:
        used = taken.get(row, {})
        return start >= 0 and start + length <= width and all(
            c not in used and (c >= pw or not masks[row][c]) for c in range(start, start + length)
        )

    for row, cell, line in sorted(ends, key=lambda e: (-e[1], e[0])):  # the rightmost ends first
        name = " " + names[id(line)]
        near = sorted(range(ph), key=lambda r: (abs(r - row), r > row))
        beside = min(cell + 1, width - len(name))
        # beside the end (its row or up to NEAR_ROWS away), else the legend column, else anywhere beside
        spots = [(r, beside) for r in near if abs(r - row) <= NEAR_ROWS] + [(r, pw) for r in near] + [(r, beside) for r in near]
        spot = next((spot for spot in spots if free(spot[0], spot[1], len(name))), None)
        if spot is None:
            continue
        r, c = spot
        style = Style(color=line.color, bold=True)
        for k, ch in enumerate(name):
            taken.setdefault(r, {})[c + k] = (ch, style)
    return taken


def _x_axis(lines: list[Line], axis: TimeAxis, ylab: int, pw: int, legend_w: int) -> Text:
    cells = ["─"] * pw
    styles: list[Style] = [AXIS] * pw
    for line in lines:  # a lane that failed or was knocked out: ✖ where it ended
        end = line.series.end_t
        if end is not None and line.series.end_status in ("eliminated", "error"):
            c = axis.cell(end, pw)
            cells[c] = "✖"
            styles[c] = Style(color=line.color, bold=True)
    for line in lines:  # first tokens win the cell: they are what the axis is about
        t = line.series.first_token_t
        if t is None:
            continue
        c = axis.cell(t, pw)
        cells[c] = "◆"
        styles[c] = Style(color=line.color, bold=True)
    text = Text(no_wrap=True, overflow="crop")
    text.append(" " * ylab + " └", AXIS)
    for ch, style in zip(cells, styles):
        text.append(ch, style)
    text.append(" " * legend_w)
    return text


def time_ticks(end: float) -> list[float]:
    """Round seconds up to ``end`` for a log axis: 0, then 1-2-5 steps."""
    ticks, k = [0.0], -1
    while True:
        for m in (1, 2, 5):
            value = round(m * 10.0**k, 9)
            if value > end * (1 + 1e-9):
                return ticks + ([end] if ticks[-1] < end * 0.8 else [])
            ticks.append(value)
        k += 1


def _x_labels(axis: TimeAxis, ylab: int, pw: int, legend_w: int) -> Text:
    """Tick labels at their place on the axis, the larger ones first (a label
    that would touch another is left out)."""
    line = [" "] * (pw + legend_w)
    for value in sorted(time_ticks(axis.end), key=lambda v: (v != 0.0, -v)):
        label = _fmt_tick(value)
        col = axis.cell(value, pw) if value < axis.end else pw - 1
        start = max(0, min(col - len(label) // 2, pw - len(label)))
        if all(ch == " " for ch in line[max(0, start - 1) : start + len(label) + 1]):
            line[start : start + len(label)] = list(label)
    tail = "".join(line).rstrip()
    return Text(" " * (ylab + 2) + tail + " s", style=LABEL, no_wrap=True, overflow="crop")


class TokenChart(RowsWidget):
    """The chart widget: give it lines and the race time; rows that did not
    change are not repainted."""

    DEFAULT_CSS = """
    TokenChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._lines: list[Line] = []
        self._now = 0.0

    def set_data(self, lines: list[Line], now: float) -> None:
        self._lines, self._now = lines, now
        self.update_rows()

    def rows_key(self, width: int) -> tuple[int, int]:
        return width, self.content_region.height

    def build_rows(self, width: int) -> list[Text]:
        return plot(self._lines, self._now, width, self.content_region.height)
