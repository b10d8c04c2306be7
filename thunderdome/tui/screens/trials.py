"""The trials summary: after ``--trials N``, per lane the spread of its figures.

Invariant: every number here comes from the one ``summary`` it is given,
``thunderdome.core.trials.summarise_trials`` of the trials' results (the same
summary the headless run prints and writes to ``--json``), formatted by
``thunderdome.tui.numbers`` as the race screen formats the same figures. The
screen changes nothing but itself: ``r`` posts ``RerunRequested`` and the app
decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich import box
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from thunderdome.core.trials import DONE_LABEL
from thunderdome.tui import numbers
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.footer import key_footer

SPREAD = ("median", "min", "max")
CELL = 11
"""Every figure is padded to this width by its formatter (right-aligned, units included)."""


def figure_rows(kind: str) -> tuple[tuple[str, str, Any], ...]:
    """The figures a lane's rows show: (summary field, label, formatter); the
    race kind's deciding figure last."""
    label = DONE_LABEL.get(kind, DONE_LABEL["long"])
    return (("ttft_s", "TTFT", numbers.seconds), ("output_tps", "tok/s", numbers.tps), ("done_s", label, numbers.seconds))


def spread_table(summary: dict[str, Any], colors: dict[str, str], kind: str) -> Table:
    """One block of rows per lane (best first): wins, then median / min / max
    of each figure over the trials where the lane produced it."""
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, expand=False)
    table.add_column("lane", no_wrap=True, max_width=24)
    table.add_column("wins", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for head in SPREAD:
        table.add_column(head, justify="right", no_wrap=True)
    trials = summary["trials"]
    for i, lane in enumerate(summary["lanes"]):
        for k, (field, label, fmt) in enumerate(figure_rows(kind)):
            spread = lane.get(field) or {}
            name = Text(one_line(lane["name"], 24), Style(color=colors.get(lane["name"]), bold=True)) if k == 0 else ""
            wins = f"{lane['wins']}/{trials}" if k == 0 else ""
            table.add_row(name, wins, label, *(fmt(spread.get(key), CELL) for key in SPREAD),
                          end_section=k == 2 and i < len(summary["lanes"]) - 1)
    return table


class TrialsScreen(Screen):
    """The summary of several trials of one race."""

    @dataclass
    class RerunRequested(Message):
        """The user asked for the trials again (``r``)."""

        screen: TrialsScreen

    BINDINGS = [Binding("r", "rerun", "run again")]

    def __init__(self, summary: dict[str, Any], colors: dict[str, str], *, task: str, kind: str) -> None:
        super().__init__()
        self.summary = summary
        """``summarise_trials`` of the trials' results: everything shown."""
        self.lane_colors = colors
        self.task_name, self.kind = task, kind

    def compose(self) -> ComposeResult:
        clarity = self.summary["clarity"]
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(" ⚡ THUNDERDOME ", Style(color="#000000", bgcolor="#ff9f1c", bold=True))
        title.append(f"  {one_line(self.task_name, 40)} · {self.summary['trials']} trials", Style(bold=True))
        yield Static(title, id="trials-title")
        with VerticalScroll(id="trials-body"):
            yield Static(Text(one_line(clarity["text"], 300), Style(bold=True)), id="trials-verdict",
                         classes="-clear" if clarity["clear"] else "-unclear")
            yield Static(spread_table(self.summary, self.lane_colors, self.kind), id="trials-table")
        yield key_footer()

    def action_rerun(self) -> None:
        self.post_message(self.RerunRequested(self))
