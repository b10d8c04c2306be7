"""The results screen: the winner called out, every metric, the chart.

Invariant: every figure here comes from the race screen's ``Standings`` via
``ranked()`` / ``results()`` — the same numbers the headless run and the
exports give for the same events. The screen changes nothing but itself: a
key that asks for another screen posts a message (``RerunRequested``,
``NextRaceRequested``, ``SetupRequested``) and the app decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Digits, Static

from thunderdome import figures
from thunderdome.events import NATURAL_ENDS
from thunderdome.lane_stats import CLIENT_LIMITED_NOTE
from thunderdome.metrics import LaneStats, Standings, client_limited
from thunderdome.tool_figures import has_tool_figures, tool_line
from thunderdome.tui import numbers
from thunderdome.tui.palette import DIM, LABEL, STATUS_COLOR, STATUS_ICON, badge
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.banner import RaceBanner
from thunderdome.tui.widgets.chart import TITLE as CHART_TITLE, Line, TokenChart
from thunderdome.tui.widgets.footer import key_footer

if TYPE_CHECKING:
    from thunderdome.sources.base import RecordingStatus
    from thunderdome.specs import TaskSpec
    from thunderdome.tui.feed import EventFeed

COLUMNS = (
    ("#", 2), ("lane", 14), ("status", 12), ("TTFT", 7), ("TTFA", 7), ("e2e", 7),
    ("tokens", 12), ("tok/s", 6), ("server", 6), ("ITL p50/p99 ms", 14), ("done", 7),
)
"""Fits 120 columns; verdicts and errors are listed in full beside the chart."""
COMPACT_COLUMNS = (
    ("#", 2), ("lane", 8), ("", 2), ("TTFT", 7), ("TTFA", 7), ("e2e", 7),
    ("tok", 6), ("tok/s", 7), ("srv/s", 7), ("ITL ms 50/99", 13), ("done", 7),
)
"""The same columns for narrower terminals (80 columns): no cell padding (each
width holds its one-cell gap), units on the figures (``0.253s``, ``5.14s``), the status
as its icon, ``*`` for an estimated token count; the lane column takes the rest."""
FULL_WIDTH = sum(width + 2 for _, width in COLUMNS) + 4
"""Terminal columns the full table needs (cell padding, border, scrollbar)."""


def _itl(p50: float | None, p99: float | None) -> str:
    if p50 is None or p99 is None:
        return "—".rjust(14)
    return f"{p50:.1f} / {p99:.1f}".rjust(14)


def why_line(standings: Standings, ranked: list[LaneStats]) -> Text:
    """Why the winner won: an earlier start, a faster pace, or both (or, in a
    Thunderdome race, whom it knocked out)."""
    text = Text()
    if standings.kind == "thunderdome" and ranked:
        victims = [s.name for s in ranked if s.eliminated_by == ranked[0].name]
        if victims:
            text.append(one_line("knocked out " + ", ".join(victims), 200), Style(color="#d0d0d0"))
            return text
    if len(ranked) < 2 or ranked[0].ttft_s is None:
        return text
    first, second = ranked[0], ranked[1]
    parts: list[str] = []
    if second.ttft_s is not None:
        gap = second.ttft_s - first.ttft_s
        if gap > 0.005:
            parts.append(f"first token {figures.seconds(gap)} before {second.name}")
        elif gap < -0.005:
            parts.append(f"first token {figures.seconds(-gap)} after {second.name}")
    if first.output_tps and second.output_tps:
        ratio = first.output_tps / second.output_tps
        if ratio >= 1.05:
            parts.append(f"{ratio:.1f}× {second.name}'s output speed")
        elif ratio <= 0.95:
            parts.append(f"{1 / ratio:.1f}× slower output than {second.name}")
    if parts:
        text.append(one_line(" · ".join(parts), 200), Style(color="#d0d0d0"))
    return text


def lane_note(standings: Standings, s: LaneStats) -> str:
    """Why a lane ended as it did, in one line ('' when there is nothing to say)."""
    lane = standings.lanes[s.name]
    if s.status == "eliminated":
        who = f"killed by {s.eliminated_by}" if s.eliminated_by else "eliminated"
        return who + (f" · {lane.reason}" if lane.reason and lane.reason != who else "")
    if s.status == "error":
        return s.error or lane.reason or "error"
    if s.status == "stopped":
        return lane.reason or "stopped"
    if s.verdict:
        return s.verdict
    unusual = s.finish_reason is not None and s.finish_reason not in NATURAL_ENDS and s.status == "finished"
    return " · ".join(part for part in (f"finish reason: {s.finish_reason}" if unusual else "", *s.figure_notes()) if part)


def results_rows(standings: Standings) -> list[list[Text]]:
    """The results table rows, in rank order."""
    rows: list[list[Text]] = []
    for s in standings.ranked(standings.finished_t):
        color = STATUS_COLOR.get(s.status, "")
        done = figures.done_s(s, standings.kind)
        rows.append(
            [
                Text(str(s.rank), Style(bold=True)),
                Text(one_line(s.name, 40), Style(bold=True)),
                badge(s.status, 12),
                Text(numbers.seconds(s.ttft_s)),
                Text(numbers.seconds(s.ttfa_s)),
                Text(numbers.seconds(s.e2e_s)),
                Text(f"{s.tokens} {s.tokens_source}".rjust(12)),
                Text(figures.rate_digits(s.output_tps).rjust(6)),
                Text(figures.rate_digits(s.server_tps).rjust(6)),
                Text(_itl(s.itl_p50_ms, s.itl_p99_ms)),
                Text(numbers.seconds(done), Style(color=color, bold=True)),
            ]
        )
    return rows


def compact_rows(standings: Standings) -> list[list[Text]]:
    """``results_rows`` for ``COMPACT_COLUMNS``: the same figures, shorter."""
    rows: list[list[Text]] = []
    for s in standings.ranked(standings.finished_t):
        color = STATUS_COLOR.get(s.status, "")
        done = s.completion_s if standings.kind == "thunderdome" else s.finish_t
        mark = "*" if s.tokens_source == "estimate" else ""
        rows.append(
            [
                Text(str(s.rank), Style(bold=True)),
                Text(one_line(s.name, 40), Style(bold=True)),
                Text(" " + STATUS_ICON.get(s.status, " "), Style(color=color, bold=True)),
                *(Text(_short_seconds(v)) for v in (s.ttft_s, s.ttfa_s, s.e2e_s)),
                Text(f"{s.tokens}{mark}"),
                *(Text("—" if v is None else f"{v:.1f}") for v in (s.output_tps, s.server_tps)),
                Text(_itl(s.itl_p50_ms, s.itl_p99_ms).strip().replace(" / ", "/")),
                Text(_short_seconds(done), Style(color=color, bold=True)),
            ]
        )
    return [[_right(cell, width) if i > 2 else cell for i, (cell, (_, width)) in enumerate(zip(row, COMPACT_COLUMNS))] for row in rows]


def _right(text: Text, width: int) -> Text:
    """``text`` set right in its ``width``-cell column (the gap on its left)."""
    text.justify = "right"
    text.truncate(width)
    return text


def _short_seconds(value: float | None) -> str:
    """``numbers.seconds`` with the unit closed up: ``0.253s``, the same figure."""
    return numbers.seconds(value).strip().replace(" s", "s")


class WinnerCard(Horizontal):
    """Who won, in big digits, and why."""

    def __init__(self, standings: Standings, colors: dict[str, str]) -> None:
        super().__init__(id="winner")
        self.standings = standings
        self.lane_colors = colors

    def compose(self) -> ComposeResult:
        standings = self.standings
        ranked = standings.ranked(standings.finished_t)
        winner = next((s for s in ranked if s.name == standings.winner), None)
        text = Text(no_wrap=True, overflow="ellipsis")
        if winner is None:
            text.append("  NO WINNER\n", Style(bold=True, color="#ff6b6b"))
            reasons = [f"{s.name}: {s.error or s.status}" for s in ranked]
            text.append("  " + one_line("; ".join(reasons) or "no lane finished", 300) + "\n", DIM)
            seconds = standings.finished_t or 0.0
        else:
            text.append("  ★ WINNER  ", Style(color="#000000", bgcolor="#ffcf33", bold=True))
            text.append("  " + one_line(winner.name, 40), Style(color=self.lane_colors.get(winner.name, "#ffffff"), bold=True))
            text.append("  " + one_line(" · ".join(p for p in (winner.kind, winner.model) if p), 60) + "\n", DIM)
            seconds = figures.done_s(winner, standings.kind) or 0.0
            text.append(f"  {figures.winner_line(winner, standings.kind)}", Style(bold=True))
            if winner.ttft_s is not None:
                text.append(f" · TTFT {figures.seconds(winner.ttft_s)}", LABEL)
            if winner.tta_s is not None:
                text.append(f" · action {figures.seconds(winner.tta_s)}", LABEL)
            if winner.output_tps:
                text.append(f" · {figures.rate(winner.output_tps)}", LABEL)
            text.append("\n  ")
            text.append_text(why_line(standings, ranked))
        yield Static(text, id="winner-text")
        yield Digits(figures.seconds_digits(seconds) if winner is not None else numbers.clock(seconds), id="winner-time")


class RecordingNote(Widget):
    """Where the recording and the exports went."""

    DEFAULT_CSS = "RecordingNote { height: auto; }"

    def __init__(self, standings: Standings, recording: RecordingStatus | None, colors: dict[str, str]) -> None:
        super().__init__(id="recording-note")
        self.standings = standings
        self.recording = recording
        self.isolation = standings.isolation
        self.kind = standings.kind
        self.lane_colors = colors
        self.exports: list[str] = []
        self.screenshot: str | None = None

    def render(self) -> Text:
        text = Text()
        standings = self.standings
        for s in standings.ranked(standings.finished_t):
            note = lane_note(standings, s)
            if not note:
                continue
            mark, color = (
                ("✖ ", "#ff6b6b") if s.status in ("error", "eliminated")
                else ("■ ", STATUS_COLOR["stopped"]) if s.status == "stopped"
                else ("✔ ", "#7ad151")
            )
            text.append(mark, Style(color=color, bold=True))
            text.append(one_line(s.name, 30), Style(color=self.lane_colors.get(s.name, ""), bold=True))
            text.append("  " + one_line(note, 300) + "\n", Style(color="#d0d0d0"))
        tool_lanes = [s for s in standings.ranked(standings.finished_t) if has_tool_figures(s)]
        if tool_lanes:
            text.append("tool calls\n", LABEL)
        for s in tool_lanes:
            text.append("⚒ ", Style(color="#ffcf33", bold=True))
            text.append(one_line(s.name, 30), Style(color=self.lane_colors.get(s.name, ""), bold=True))
            text.append("  " + tool_line(s) + "\n", Style(color="#d0d0d0"))
        if text.plain:
            text.append("\n")
        duration = standings.finished_t
        text.append("race       ", LABEL)
        text.append(f"{numbers.seconds(duration).strip()}", Style(bold=True))
        if standings.max_tokens:
            text.append(f" · max {standings.max_tokens} tokens", DIM)
        if standings.time_scale != 1.0:
            text.append(f" · sim time ×{standings.time_scale:g}", Style(color="#ffcf33", bold=True))
        if client_limited(standings.ranked(standings.finished_t)):
            text.append(f"\n           ⚠ {CLIENT_LIMITED_NOTE}", Style(color="#ffcf33", bold=True))
        if standings.started_at:
            text.append("\nstarted    ", LABEL)
            text.append(standings.started_at[:19].replace("T", " ") + " UTC", DIM)
        text.append("\n")
        text.append("recording  ", LABEL)
        recording = self.recording
        text.append(one_line(recording.path, 300) if recording else "not recorded", Style(bold=bool(recording)))
        if recording is not None and not recording.complete:
            text.append("\n           ✖ ", Style(color="#ff6b6b", bold=True))
            text.append(one_line(recording.describe(), 300), Style(color="#ff6b6b", bold=True))
        elif recording is not None:
            text.append("\n           replay: ", LABEL)
            text.append(f"thunderdome replay {one_line(recording.path, 300)}", DIM)
        if self.kind == "thunderdome":
            text.append("\nsandbox    ", LABEL)
            ok = self.isolation == "bwrap"
            text.append(self.isolation, Style(color="#7ad151" if ok else "#ffd23f", bold=True))
            if not ok:
                text.append("  ⚠ weaker isolation than bubblewrap", Style(color="#ffd23f"))
        for path in self.exports:
            text.append("\nexported   ", LABEL)
            text.append(one_line(path, 300), Style(bold=True))
        if self.screenshot:
            text.append("\nscreenshot ", LABEL)
            text.append(one_line(self.screenshot, 300), Style(bold=True))
        text.append("\n\n◆ first token · ✖ out or failed · time axis: log\n", DIM)
        text.append("tokens: usage/server = the server's own count,\n        estimate (*) = streamed chunks counted", DIM)
        if tool_lanes:
            text.append("\nfirst call: its name arrived · action: its arguments\ncomplete · model/tool: time streaming vs running", DIM)
        return text


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
        self._countdown: Any = None
        self.feed = feed
        self.standings = feed.standings
        self.lane_colors = colors
        self.recording = recording
        self.next_task = next_task
        self.can_go_back = can_go_back
        self._compact: bool | None = None

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
                    if self.next_task is not None:
                        yield Static(self._next_text(self.next_delay), id="next-race")
        yield key_footer()

    def _fill_table(self) -> None:
        """The results table, full or compact for the terminal's width (again
        when a resize crosses ``FULL_WIDTH``)."""
        compact = self.size.width < FULL_WIDTH
        if compact == self._compact:
            return
        self._compact = compact
        standings = self.standings
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.cell_padding = 0 if compact else 1
        longest = max((len(one_line(name, 40)) for name in standings.lanes), default=4)
        columns = COMPACT_COLUMNS if compact else COLUMNS
        others = sum(width for label, width in columns if label != "lane")
        lane_w = 0
        for i, (label, width) in enumerate(columns):
            if label == "lane":
                room = self.size.width - others - 5 if compact else 24  # the border, the scrollbar, a gap
                width = lane_w = min(max(width, longest + compact), max(room, width))
            header = _right(Text(label), width) if compact and i > 2 else label  # figures sit right
            table.add_column(header, width=width, key=label)
        for row in compact_rows(standings) if compact else results_rows(standings):
            row[1].truncate(lane_w - compact, overflow="ellipsis")  # a cut name says so
            table.add_row(*row)

    def on_resize(self) -> None:
        self._fill_table()

    def on_mount(self) -> None:
        standings = self.standings
        self._fill_table()
        lines = [Line(name, color, self.feed.series_for(name)) for name, color in self.lane_colors.items()]
        end = standings.finished_t or standings.last_t
        self.query_one(TokenChart).set_data(lines, end)
        if self.next_task is not None and self.next_delay is not None:
            self._countdown = self.set_interval(1.0, self._tick)
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

    def _next_text(self, left: float | None) -> Text:
        assert self.next_task is not None
        text = Text.assemble(("next  ", LABEL), (one_line(self.next_task.name, 40), Style(bold=True, color="#ff9f1c")))
        if left is not None:
            text.append(f"  starts in {max(0, round(left))} s", Style(bold=True))
            text.append(" · n now · esc to stay", DIM)
        else:
            text.append("  press n", DIM)
        return text

    def _tick(self) -> None:
        if self.next_delay is None:
            return
        self.next_delay -= 1
        if self.next_delay <= 0:
            self.action_next()
            return
        self.query_one("#next-race", Static).update(self._next_text(self.next_delay))

    def action_stay(self) -> None:
        if self._countdown is not None:
            self._countdown.stop()
            self._countdown = None
            self.next_delay = None
            self.query_one("#next-race", Static).update(self._next_text(None))

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
        if self._countdown is not None:
            self._countdown.stop()
            self._countdown = None
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
            return self._countdown is not None
        return True
