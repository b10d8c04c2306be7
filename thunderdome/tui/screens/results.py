"""The results screen: the winner called out, every metric, the chart.

Invariant: every figure here comes from the race screen's ``Standings`` via
``ranked()`` / ``results()`` — the same numbers the headless run and the
exports give for the same events. The screen changes nothing but itself: a
key that asks for another screen posts a message (``RerunRequested``,
``NextRaceRequested``, ``SetupRequested``) and the app decides. Its parts
are widgets of their own: ``WinnerCard``, the results table
(``results_table``), ``RecordingNote`` and the demo's ``NextRaceNote``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable

from thunderdome.tui.palette import DIM
from thunderdome.tui.widgets.banner import RaceBanner
from thunderdome.tui.widgets.chart import TITLE as CHART_TITLE, Line, TokenChart
from thunderdome.tui.widgets.footer import key_footer
from thunderdome.tui.widgets.next_race import NextRaceNote
from thunderdome.tui.widgets.recording_note import RecordingNote
from thunderdome.tui.widgets.results_table import FULL_WIDTH, fill_table
from thunderdome.tui.widgets.winner_card import WinnerCard

if TYPE_CHECKING:
    from thunderdome.sources.base import RecordingStatus
    from thunderdome.core.specs import TaskSpec
    from thunderdome.tui.feed import EventFeed


class ResultsScreen(Screen):
    """Final standings of one race."""

    @dataclass
    class RerunRequested(Message):
        """The user asked for the same race again (``r``)."""

        screen: ResultsScreen

    @dataclass
    class NextRaceRequested(Message):
        """The next task is due: ``n``, or the demo's countdown ran out."""

        screen: ResultsScreen

    @dataclass
    class SetupRequested(Message):
        """The user asked to go back to the setup screen (``b``)."""

        screen: ResultsScreen

    BINDINGS = [
        Binding("r", "rerun", "rerun"),
        Binding("e", "app.export", "export"),
        Binding("n", "next", "next race"),
        Binding("escape", "stay", "stay here", show=False),
        Binding("b", "back", "back to setup"),
    ]

    def __init__(
        self,
        feed: "EventFeed",
        colors: dict[str, str],
        *,
        recording: RecordingStatus | None = None,
        next_task: "TaskSpec | None" = None,
        can_go_back: bool = False,
        next_delay: float | None = None,
    ) -> None:
        super().__init__()
        self.next_delay = next_delay
        """Seconds before the next race starts by itself (the demo); None: wait for n."""
        self.feed = feed
        self.standings = feed.standings
        self.lane_colors = colors
        self.recording = recording
        self.next_task = next_task
        self.can_go_back = can_go_back
        self._compact: bool | None = None
        self._next_note = NextRaceNote(next_task, next_delay) if next_task is not None else None

    def compose(self) -> ComposeResult:
        standings = self.standings
        yield RaceBanner(id="banner")
        with VerticalScroll(id="results-body"):
            yield WinnerCard(standings, self.lane_colors)
            table: DataTable = DataTable(id="results-table", zebra_stripes=True, cursor_type="none")
            table.border_title = "results"
            yield table
            with Horizontal(id="results-bottom"):
                with Vertical(id="results-chart-box", classes="panel") as box:
                    box.border_title = CHART_TITLE
                    yield TokenChart(id="results-chart")
                with Vertical(id="results-info", classes="panel") as box:
                    box.border_title = "race"
                    yield RecordingNote(standings, self.recording, self.lane_colors)
                    if self._next_note is not None:
                        yield self._next_note
        yield key_footer()

    def _fill_table(self) -> None:
        """The results table, full or compact for the terminal's width (again
        when a resize crosses ``FULL_WIDTH``)."""
        compact = self.size.width < FULL_WIDTH
        if compact != self._compact:
            self._compact = compact
            fill_table(self.query_one(DataTable), self.standings, self.size.width)

    def on_resize(self) -> None:
        self._fill_table()

    def on_mount(self) -> None:
        standings = self.standings
        self._fill_table()
        lines = [Line(name, color, self.feed.series_for(name)) for name, color in self.lane_colors.items()]
        end = standings.finished_t or standings.last_t
        self.query_one(TokenChart).set_data(lines, end)
        status = Text.assemble(
            ("■ RESULTS", Style(color="#7ad151", bold=True)),
            ("   r rerun · e export · s screenshot" + (" · n next race" if self.next_task else ""), DIM),
        )
        self.query_one(RaceBanner).show(
            task=standings.task,
            kind=standings.kind,
            win_rule=standings.win_rule,
            title=standings.title,
            status=status,
            warnings=[],
            now=end,
        )

    @on(NextRaceNote.CountdownEnded)
    def _countdown_ended(self) -> None:
        self.action_next()

    def action_stay(self) -> None:
        if self._next_note is not None and self._next_note.counting:
            self._next_note.hold()

    def note_export(self, paths: list[str]) -> None:
        note = self.query_one(RecordingNote)
        note.exports = paths
        note.refresh(layout=True)

    def note_screenshot(self, path: str) -> None:
        note = self.query_one(RecordingNote)
        note.screenshot = path
        note.refresh(layout=True)

    def results(self) -> dict[str, Any]:
        return self.standings.results()

    def action_rerun(self) -> None:
        self.post_message(self.RerunRequested(self))

    def action_next(self) -> None:
        if self._next_note is not None:
            self._next_note.stop()
        if self.next_task is not None:
            self.post_message(self.NextRaceRequested(self))

    def action_back(self) -> None:
        if self.can_go_back:
            self.post_message(self.SetupRequested(self))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next":
            return self.next_task is not None
        if action == "back":
            return self.can_go_back
        if action == "stay":
            return self._next_note is not None and self._next_note.counting
        return True
