"""How the race screen shares a terminal between the board and the lanes.

Invariant: ``race_layout(width, height, lanes)`` is a pure function of the
terminal size and the lane count, and whatever it returns keeps the whole
leaderboard and every lane's header on screen at once whenever they can fit
(at 80x24: 8 lanes as one line each under an 11-row leaderboard). The lanes
give up, in this order, the gap between them, their text and their second
header row; on a narrow terminal the chart moves below the lanes (scroll
to it) before a lane loses anything. Sizes are in terminal rows.
"""

from __future__ import annotations

import math
from typing import NamedTuple

CHROME_ROWS = 4
"""The banner (3 rows) and the footer (1)."""
NARROW_BELOW = 110
"""Columns under which the board and the chart stack (the app's ``-narrow``)."""
CHART_ROWS = 9
"""The smallest chart worth showing, border included: the stacked chart's
height, and the least a squeezed wide board keeps for the chart beside it."""
PANEL_BORDER = 2

LANE_MODES = ("full", "tight", "brief", "headers", "one-line")
"""What a lane keeps, most first: ``full`` (a gap above, two header rows, a
text window of at least three rows), ``tight`` (no gap, at least two text
rows), ``brief`` (one text row), ``headers`` (the two header rows, no text),
``one-line`` (one header row: name and track)."""
MODE_ROWS = {"full": 6, "tight": 4, "brief": 3, "headers": 2, "one-line": 1}
"""Rows a lane needs in each mode, its gap included."""


class RaceLayout(NamedTuple):
    """How the race screen lays out ``lanes`` lanes in a ``width`` x ``height`` terminal."""

    columns: int
    rows: int
    lane_mode: str
    """One of ``LANE_MODES``; the lane grid carries it as the class ``-<mode>``."""
    lanes_height: int | None
    """The lane grid's height; None: what is left of the screen (``1fr``)."""
    lanes_min_height: int
    board_height: int | None
    """Wide terminals: the leaderboard/chart row's height; None: stacked (auto)."""
    chart_below: bool
    """Narrow and short: the chart sits below the lanes instead of above them."""
    board_room: int
    """Rows the leaderboard may use (it spaces its rows out when they fit twice)."""


def lane_columns(width: int, lanes: int) -> int:
    """How many lane columns fit: stacked rows on normal terminals and for up to
    three lanes, a grid on wide screens with many lanes."""
    if lanes <= 1 or width < NARROW_BELOW:
        return 1
    if lanes <= 3 and width < 180:
        return 1
    return max(1, min(lanes, width // 56, 4))


def lane_mode(rows_each: int) -> str:
    """The most a lane can keep in ``rows_each`` rows (its gap included)."""
    return next((mode for mode in LANE_MODES if MODE_ROWS[mode] <= rows_each), "one-line")


def leaderboard_height(lanes: int) -> int:
    """The leaderboard box with one row per lane, its header and border."""
    return max(lanes, 1) + 1 + PANEL_BORDER


def race_layout(width: int, height: int, lanes: int) -> RaceLayout:
    lanes = max(lanes, 1)
    cols = lane_columns(width, lanes)
    rows = max(1, math.ceil(lanes / cols))
    body = max(height - CHROME_ROWS, 1)
    if width < NARROW_BELOW:
        board = leaderboard_height(lanes)
        if body - board - CHART_ROWS >= rows * MODE_ROWS["full"]:
            return RaceLayout(cols, rows, "full", None, rows * MODE_ROWS["full"], None, False, lanes + 1)
        return _squeezed(cols, rows, body - board, None, chart_below=True, board_room=lanes + 1)
    board = max(lanes + 4, min(2 * lanes + 3, 14), 12 if height >= 34 else 9, body // 3)  # a third: the chart reads
    if body - board >= rows * MODE_ROWS["full"]:
        return RaceLayout(cols, rows, "full", None, max(16, rows * MODE_ROWS["full"]), board, False, board - PANEL_BORDER)
    board = max(leaderboard_height(lanes), CHART_ROWS)
    return _squeezed(cols, rows, body - board, board, chart_below=False, board_room=board - PANEL_BORDER)


def _squeezed(cols: int, rows: int, room: int, board: int | None, *, chart_below: bool, board_room: int) -> RaceLayout:
    """Lanes sharing ``room`` rows: each keeps what fits, and the grid takes
    all of ``room`` (or scrolls, if even one line a lane does not fit)."""
    mode = lane_mode(room // rows)
    needed = rows * MODE_ROWS[mode]
    return RaceLayout(cols, rows, mode, max(room, needed), needed, board, chart_below, board_room)
