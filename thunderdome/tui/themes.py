"""The app's colour themes: the everyday dark theme and the presenter theme.

Invariant: every colour the presenter view paints comes from
``PRESENTER_THEME`` (through the stylesheet's variables) or from the lane
palette, and every text/background pair it paints has a WCAG contrast ratio
of at least 4.5:1 (``tests/test_tui_presenter.py`` computes it from the
rendered cells).
"""

from __future__ import annotations

from textual.theme import Theme

THEME = Theme(
    name="thunderdome",
    primary="#ff9f1c",
    secondary="#2ec4f0",
    accent="#ffcf33",
    foreground="#e8e6e3",
    background="#101216",
    surface="#171a20",
    panel="#232833",
    success="#7ad151",
    warning="#ffd23f",
    error="#ff5555",
    dark=True,
)

PRESENTER_THEME = Theme(
    name="thunderdome-presenter",
    primary="#ffb000",
    secondary="#33d6ff",
    accent="#ffd500",
    foreground="#ffffff",
    background="#000000",
    surface="#000000",
    panel="#1c1c1c",
    success="#8ee05f",
    warning="#ffd23f",
    error="#ff6b6b",
    dark=True,
)
"""For projectors: pure white on black, a saturated yellow accent (the
first-token flash is black on it)."""
