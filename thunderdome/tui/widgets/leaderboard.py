"""The live leaderboard: who leads right now, and by how much.

Invariant: the order and every figure, projected finishes included, are
exactly ``Standings.ranked(now)`` (the same order and projection the results
and the headless table use); this widget only lays them out. Columns have
fixed widths and units, so a re-rank moves rows, never columns.
"""

from __future__ import annotations

from rich.console import Console
from rich.style import Style
from rich.table import Table
from rich.text import Text

from thunderdome.core import figures
from thunderdome.core.metrics import LaneStats, Standings
from thunderdome.tui import numbers
from thunderdome.tui.palette import DIM, STATUS_COLOR, STATUS_ICON
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.rows import RowsWidget


def _when(standings: Standings, s: LaneStats, now: float) -> Text:
    """Done time (``figures.done_s``) for lanes over the line; a Thunderdome
    lane's race clock otherwise (``figures.clock_s``, as its header shows it);
    a long-race lane's projected finish."""
    lane = standings.lanes[s.name]
    color = STATUS_COLOR.get(s.status, "")
    done = figures.done_s(s, standings.kind)
    if done is not None:
        return Text(numbers.seconds(done), Style(color=color, bold=True))
    if standings.kind == "thunderdome":
        return Text(numbers.seconds(figures.clock_s(s, standings.kind, now)), Style(color=color) if lane.ended else DIM)
    if lane.ended:
        return Text("—".rjust(7), DIM)
    eta = s.projected_t
    return Text(("~" + numbers.seconds(eta).strip()).rjust(7) if eta is not None else "—".rjust(7), DIM)


def leaderboard_table(
    standings: Standings,
    now: float,
    colors: dict[str, str],
    *,
    compact: bool = False,
    leading: int = 0,
    ranked: list[LaneStats] | None = None,
) -> Table:
    """The leaderboard as a borderless rich table; ``leading`` blank rows
    between lanes when there is room (easier to read from afar). ``ranked``:
    ``standings.ranked(now)`` if the caller has it already."""
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
        if priced(standings):
            table.add_column("$", justify="right", width=COST_W, no_wrap=True)
    label = "done" if standings.kind == "thunderdome" else "finish"
    table.add_column(label, justify="right", width=7, no_wrap=True)
    for i, s in enumerate(standings.ranked(now) if ranked is None else ranked):
        if i and leading:
            for _ in range(leading):
                table.add_row()
        table.add_row(*_cells(standings, s, now, colors, compact, priced(standings)))
    return table


def _cell(text: Text, width: int, justify: str) -> Text:
    """``text`` fitted to a ``width``-cell column as a no-wrap table cell."""
    if text.cell_len > width:
        text = text.copy()
        text.truncate(width, overflow="ellipsis")
    elif text.cell_len < width:
        text = text.copy()
        if justify == "right":
            text.pad_left(width - text.cell_len)
        else:
            text.pad_right(width - text.cell_len)
    return text


def leaderboard_rows(
    standings: Standings,
    now: float,
    colors: dict[str, str],
    width: int,
    *,
    compact: bool = False,
    leading: int = 0,
    ranked: list[LaneStats] | None = None,
) -> list[Text]:
    """The leaderboard as one ``Text`` per screen row, laid out exactly as
    ``leaderboard_table`` renders at ``width`` (fixed columns one cell apart,
    the lane column takes the rest) but built directly: ~20x cheaper than
    measuring a rich Table, which matters at 20 frames a second. Widths too
    small for the lane column fall back to the table."""
    fixed = [(2, "right"), (0, "left"), (1, "left"), (7, "right")]
    cost = not compact and priced(standings)
    if not compact:
        fixed += [(6, "right"), (6, "right")] + ([(COST_W, "right")] if cost else [])
    fixed.append((7, "right"))
    lane_w = width - sum(w for w, _ in fixed) - (len(fixed) - 1)
    if lane_w < 8:
        console = Console(width=max(width, 1), color_system="truecolor", legacy_windows=False)
        table = leaderboard_table(standings, now, colors, compact=compact, leading=leading, ranked=ranked)
        return [Text.assemble(*((seg.text, seg.style) for seg in line)) for line in console.render_lines(table, pad=False)]
    widths = [(lane_w if w == 0 else w, justify) for w, justify in fixed]

    def row(cells: list[Text]) -> Text:
        out = Text(no_wrap=True, overflow="ellipsis", end="")
        for i, (cell, (w, justify)) in enumerate(zip(cells, widths)):
            if i:
                out.append(" ")
            out.append_text(_cell(cell, w, justify))
        return out

    label = "done" if standings.kind == "thunderdome" else "finish"
    heads = ["#", "lane", "", "TTFT"] + ([] if compact else ["tok/s", "tokens"] + ["$"] * cost) + [label]
    rows = [row([Text(h, HEADER) for h in heads])]
    for i, s in enumerate(standings.ranked(now) if ranked is None else ranked):
        if i and leading:
            rows.extend(Text(" " * width, no_wrap=True, end="") for _ in range(leading))
        rows.append(row(_cells(standings, s, now, colors, compact, cost)))
    return rows


HEADER = Style(bold=True, color="#9a9a9a")


def priced(standings: Standings) -> bool:
    """Some lane has a price: the board shows a cost column."""
    return any(lane.price for lane in standings.lanes.values())


COST_W = 7


def _cells(
    standings: Standings, s: LaneStats, now: float, colors: dict[str, str], compact: bool, cost: bool = False
) -> list[Text]:
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
        row.append(Text(figures.rate_digits(s.output_tps)))
        tokens = lane.live_tokens if not lane.ended else s.tokens
        mark = "*" if lane.ended and s.tokens_source == "estimate" else ""
        row.append(Text(f"{tokens}{mark}"))
        if cost:
            row.append(Text("—" if s.cost is None else f"{s.cost:.4f}"))
    row.append(_when(standings, s, now))
    return row


class Leaderboard(RowsWidget):
    """Shows the ranking the race screen read from the UI's own Standings."""

    DEFAULT_CSS = "Leaderboard { height: auto; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._standings: Standings | None = None
        self._now = 0.0
        self._colors: dict[str, str] = {}
        self._ranked: list[LaneStats] = []
        self._room = 0

    def set_data(self, standings: Standings, now: float, colors: dict[str, str], ranked: list[LaneStats]) -> None:
        """Show ``ranked`` (``standings.ranked(now)``) at race time ``now``."""
        self._standings, self._now, self._colors, self._ranked = standings, now, colors, ranked
        self.update_rows()  # a new layout only when the row count changes

    def set_room(self, rows: int) -> None:
        """The rows the board has for the leaderboard (the race screen's layout):
        rows are spaced out when they fit twice. A new room rebuilds the rows
        and, if their count changes, the widget's height follows."""
        if rows != self._room:
            self._room = rows
            self.update_rows()

    def rows_key(self, width: int) -> tuple[int, int]:
        return width, self._room

    def build_rows(self, width: int) -> list[Text]:
        if self._standings is None or not self._standings.lanes:
            return [Text("waiting for the start…", DIM)]
        if width <= 0:
            return []
        lanes = len(self._standings.lanes)
        leading = 1 if lanes > 1 and 2 * lanes <= self._room - 1 else 0
        return leaderboard_rows(
            self._standings, self._now, self._colors, width, compact=width < 44, leading=leading, ranked=self._ranked
        )

    def order(self) -> list[str]:
        """Lane names as currently ranked (tests)."""
        return [s.name for s in self._ranked]
