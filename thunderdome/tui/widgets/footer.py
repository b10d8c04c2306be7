"""The key bar at the bottom of every screen.

Invariant: every screen's footer is made here, compact and without the
command palette's entry (``ctrl+p`` still works; the help lists it), so all
of a screen's keys fit on one row of an 80-column terminal (a replay's
eleven keys included; tests/test_tui_layout.py checks each screen).
"""

from __future__ import annotations

from textual.widgets import Footer


def key_footer() -> Footer:
    return Footer(compact=True, show_command_palette=False)
