"""The results table: one row a lane in rank order, full or compact.

Invariant: a row is a pure function of the ``Standings`` (the same figures
the headless table gives); the compact form holds the same figures, shorter,
and is chosen by the terminal's width alone (below ``FULL_WIDTH``).
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from thunderdome.core import figures
from thunderdome.core.metrics import Standings
from thunderdome.tui import numbers
from thunderdome.tui.palette import STATUS_COLOR, STATUS_ICON, badge
from thunderdome.tui.safe_text import one_line

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


def fill_table(table: DataTable, standings: Standings, width: int) -> None:
    """Fill ``table`` afresh with the results, compact when the terminal's
    ``width`` is below ``FULL_WIDTH``; the lane column takes what room there is."""
    compact = width < FULL_WIDTH
    table.clear(columns=True)
    table.cell_padding = 0 if compact else 1
    longest = max((len(one_line(name, 40)) for name in standings.lanes), default=4)
    columns = COMPACT_COLUMNS if compact else COLUMNS
    others = sum(w for label, w in columns if label != "lane")
    lane_w = 0
    for i, (label, column_w) in enumerate(columns):
        if label == "lane":
            room = width - others - 5 if compact else 24  # the border, the scrollbar, a gap
            column_w = lane_w = min(max(column_w, longest + compact), max(room, column_w))
        header = _right(Text(label), column_w) if compact and i > 2 else label  # figures sit right
        table.add_column(header, width=column_w, key=label)
    for row in compact_rows(standings) if compact else results_rows(standings):
        row[1].truncate(lane_w - compact, overflow="ellipsis")  # a cut name says so
        table.add_row(*row)
