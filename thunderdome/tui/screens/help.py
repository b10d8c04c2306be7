"""The help overlay: every key, grouped by where it works.

Invariant: the help text is static and names only keys that are bound.
"""

from __future__ import annotations

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
            ("q", "quit (stops a running race cleanly)"),
            ("s", "save an SVG screenshot"),
            ("e", "export results (Markdown + JSON)"),
            ("?", "this help"),
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
    "The chart's x axis is time since the start barrier: a late start shows as a\n"
    "line that begins late, the slope is the output speed (tokens/s)."
)


def help_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style=Style(color="#ff9f1c", bold=True), no_wrap=True)
    table.add_column()
    for section, keys in KEYS:
        table.add_row(Text(section.upper(), Style(color="#8a8a8a", bold=True)), "")
        for key, what in keys:
            table.add_row(key, what)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(help_table(), id="help-keys")
            yield Static(Text(READING, Style(color="#a0a0a0", italic=True)), id="help-reading")

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "keys"

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
