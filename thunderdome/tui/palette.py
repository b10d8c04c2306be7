"""Colours and badges: how a lane and its status look, in one place.

Invariant: a lane's colour depends only on its index in the race, so the
lane, its leaderboard row and its chart line always match; a status's badge
depends only on the status. Layout and state styling live in
``thunderdome.tcss``; this module holds what Rich renderables need inline.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

LANE_COLORS = (
    "#ff9f1c",  # amber
    "#4d7cff",  # blue
    "#e85fd8",  # magenta
    "#2fd6b0",  # teal
    "#ffadc6",  # pink
    "#f0f0f0",  # white
    "#b0b0ff",  # lavender
    "#b5895a",  # tan
)
"""Eight lane colours, readable on a dark background, far from each other and
from every status colour and badge (no lane looks FINISHED, STREAMING or
ERROR): tests/test_tui_chart.py measures the distances (CIE76 in Lab, at
least 25)."""


def lane_color(index: int) -> str:
    return LANE_COLORS[index % len(LANE_COLORS)]


STATUS_BADGE: dict[str, tuple[str, str]] = {
    "waiting": ("WAITING", "bold #d0d0d0 on #3a3a3a"),
    "thinking": ("THINKING", "bold #ffffff on #7a3ea8"),
    "streaming": ("STREAMING", "bold #000000 on #2ec4f0"),
    "executing": ("EXECUTING", "bold #000000 on #ffd23f"),
    "finished": ("FINISHED", "bold #000000 on #7ad151"),
    "winner": ("WINNER", "bold #000000 on #ffcf33"),
    "eliminated": ("ELIMINATED", "bold #ffffff on #8b2b2b"),
    "error": ("ERROR", "bold #ffffff on #d12f2f"),
    "stopped": ("STOPPED", "bold #000000 on #9aa5b1"),
}

STATUS_COLOR = {
    "waiting": "#9a9a9a",
    "thinking": "#c58af9",
    "streaming": "#2ec4f0",
    "executing": "#ffd23f",
    "finished": "#7ad151",
    "winner": "#ffcf33",
    "eliminated": "#e06c6c",
    "error": "#ff5555",
    "stopped": "#9aa5b1",
}

STATUS_ICON = {
    "waiting": "…",
    "thinking": "∴",
    "streaming": "▶",
    "executing": "⚙",
    "finished": "✔",
    "winner": "★",
    "eliminated": "✖",
    "error": "✖",
    "stopped": "■",
}

MARKER_STYLE = Style(color="#ffcf33", bold=True)
"""The first-token diamond."""
DIM = Style(color="#8a8a8a")
LABEL = Style(color="#8a8a8a")


def badge(status: str, width: int = 12) -> Text:
    """A fixed-width, centred status badge."""
    label, style = STATUS_BADGE.get(status, (status.upper(), "bold"))
    return Text(f" {label} ".center(width), style=style)


def join_rows(rows: list[Text]) -> Text:
    """Rows as one Text that never wraps (each row is already cut to fit)."""
    text = Text("\n", no_wrap=True, overflow="ellipsis").join(rows)
    text.no_wrap, text.overflow = True, "ellipsis"
    return text
