"""The help overlay: every key, grouped by where it works.

Invariant: the help text is static and names only keys that are bound; it
is laid out in two columns of sections so that all of it fits an 80x24
terminal (tests/test_tui_layout.py).
"""

from __future__ import annotations

from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "everywhere",
        (
            ("q", "quit (stops a race cleanly)"),
            ("s", "save an SVG screenshot"),
            ("e", "export (Markdown + JSON)"),
            ("?", "this help"),
            ("^p", "command palette"),
        ),
    ),
    (
        "race",
        (
            ("t", "show / hide reasoning text"),
            ("r", "run the race again"),
            ("b", "presenter mode: big figures, high contrast"),
        ),
    ),
    (
        "replay",
        (
            ("space", "pause / resume"),
            ("+  -", "faster / slower"),
            (".  n", "step one event (pauses)"),
            ("0", "restart from the start"),
        ),
    ),
    (
        "results",
        (
            ("r", "rerun the same race"),
            ("n", "next race (demo)"),
            ("b", "back to setup"),
        ),
    ),
    (
        "trials",
        (("r", "run the trials again"),),
    ),
)

READING = (
    "◆ marks each lane's first token; TTFT is measured from the request.\n"
    "The chart's x axis is time since the start barrier, logarithmic after the\n"
    "first half second (the first seconds get room): a late start begins late."
)


def help_table() -> Table:
    """The sections in two columns, the first half of them on the left."""
    half = (len(KEYS) + 1) // 2
    table = Table.grid(padding=(0, 2))
    table.add_column()
    table.add_column()
    table.add_row(_sections(KEYS[:half]), _sections(KEYS[half:]))
    return table


def _sections(sections: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]) -> Group:
    parts: list[Text | Table] = []
    for i, (section, keys) in enumerate(sections):
        parts.append(Text(("\n" if i else "") + section.upper(), Style(color="#8a8a8a", bold=True)))
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style=Style(color="#ff9f1c", bold=True), no_wrap=True, min_width=5)
        table.add_column()
        for key, what in keys:
            table.add_row(key, what)
        parts.append(table)
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(help_table(), id="help-keys")
            yield Static(Text(READING, Style(color="#a0a0a0", italic=True)), id="help-reading")

    def on_mount(self) -> None:
        box = self.query_one("#help")
        box.border_title = "keys"
        box.border_subtitle = "esc / ? / q close"

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
