"""The live leaderboard: who leads right now, and by how much.

Invariant: the order is exactly ``Standings.ranked(now)`` (the same order the
results and the headless table use); this widget only lays it out. Columns
have fixed widths and units, so a re-rank moves rows, never columns.
"""

from __future__ import annotations

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from thunderdome.metrics import LaneStats, Standings
from thunderdome.tui import numbers
from thunderdome.tui.palette import DIM, STATUS_COLOR, STATUS_ICON
from thunderdome.tui.safe_text import one_line


def _when(standings: Standings, s: LaneStats, now: float) -> Text:
    """Finish time for lanes that are done, projected finish for the others."""
    lane = standings.lanes[s.name]
    color = STATUS_COLOR.get(s.status, "")
    if standings.kind == "thunderdome":
        if s.completion_s is not None:
            return Text(numbers.seconds(s.completion_s), Style(color=color, bold=True))
        if lane.ended:
            return Text(numbers.seconds(lane.end_t), Style(color=color))
        return Text(numbers.seconds(now - (lane.started_t or 0.0)), DIM)
    if s.status in ("finished", "winner") and s.finish_t is not None:
        return Text(numbers.seconds(s.finish_t), Style(color=color, bold=True))
    if lane.ended:
        return Text("—".rjust(7), DIM)
    eta = standings.projected_finish(lane, now)
    return Text(("~" + numbers.seconds(eta).strip()).rjust(7) if eta is not None else "—".rjust(7), DIM)


def leaderboard_table(
    standings: Standings, now: float, colors: dict[str, str], *, compact: bool = False, leading: int = 0
) -> Table:
    """The leaderboard as a borderless rich table; ``leading`` blank rows
    between lanes when there is room (easier to read from afar)."""
    table = Table(
        box=None, expand=True, padding=(0, 1), collapse_padding=True, pad_edge=False, show_edge=False,
        header_style="bold #9a9a9a",
    )
    table.add_column("#", justify="right", width=2, no_wrap=True)
    table.add_column("lane", ratio=1, no_wrap=True, overflow="ellipsis", min_width=8)
    table.add_column("", width=1, no_wrap=True)
    table.add_column("TTFT", justify="right", width=7, no_wrap=True)
    if not compact:
        table.add_column("tok/s", justify="right", width=6, no_wrap=True)
        table.add_column("tokens", justify="right", width=6, no_wrap=True)
    label = "done" if standings.kind == "thunderdome" else "finish"
    table.add_column(label, justify="right", width=7, no_wrap=True)
    for i, s in enumerate(standings.ranked(now)):
        if i and leading:
            for _ in range(leading):
                table.add_row()
        lane = standings.lanes[s.name]
        color = colors.get(s.name, "")
        status_color = STATUS_COLOR.get(s.status, "")
        name = Text(one_line(s.name, 40), Style(color=color, bold=True))
        if s.status in ("eliminated", "error"):
            name.stylize(Style(strike=s.status == "eliminated", dim=True))
        row: list[Text] = [
            Text(str(s.rank), Style(bold=True, color="#ffcf33" if s.status == "winner" else None)),
            name,
            Text(STATUS_ICON.get(s.status, " "), Style(color=status_color, bold=True)),
            Text(numbers.seconds(s.ttft_s)),
        ]
        if not compact:
            tps = s.output_tps
            row.append(Text("—" if tps is None else f"{tps:.1f}"))
            tokens = lane.live_tokens if not lane.ended else s.tokens
            mark = "*" if lane.ended and s.tokens_source == "estimate" else ""
            row.append(Text(f"{tokens}{mark}"))
        row.append(_when(standings, s, now))
        table.add_row(*row)
    return table


class Leaderboard(Widget):
    """Re-ranks every frame from the UI's own Standings."""

    DEFAULT_CSS = "Leaderboard { height: auto; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._standings: Standings | None = None
        self._now = 0.0
        self._colors: dict[str, str] = {}
        self._rows = -1

    def set_data(self, standings: Standings, now: float, colors: dict[str, str]) -> None:
        grew = len(standings.lanes) != self._rows
        self._standings, self._now, self._colors = standings, now, colors
        self._rows = len(standings.lanes)
        self.refresh(layout=grew)  # a new layout only when the row count changes

    def order(self) -> list[str]:
        """Lane names as currently ranked (tests)."""
        if self._standings is None:
            return []
        return [s.name for s in self._standings.ranked(self._now)]

    def render(self) -> Table | Text:
        if self._standings is None or not self._standings.lanes:
            return Text("waiting for the start…", DIM)
        region = self.content_region
        compact = region.width < 44
        lanes = len(self._standings.lanes)
        room = self.parent.content_region.height if self.parent is not None else region.height
        leading = 1 if lanes > 1 and 2 * lanes <= room - 1 else 0
        return leaderboard_table(self._standings, self._now, self._colors, compact=compact, leading=leading)
