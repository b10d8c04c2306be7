"""Console tables that fit their width and never lose a cell silently.

Invariant: a ``fitted_table`` is never wider than ``width`` while its
required columns fit. Text columns (``Column.wrap``) wrap, folding long
words, instead of being cut; when even wrapped text leaves the table too
wide, whole columns are left out, lowest ``keep`` first, and the caption
names every column left out. Rich never crops a row at the console's edge;
on a console too narrow for the required columns alone, cells end in ``…``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

REQUIRED = 1_000
"""``Column.keep`` of a column that is never left out."""
WRAP_MIN = 12
"""``Column.room`` unless told: the least width of a wrapping column."""


@dataclass(frozen=True)
class Column:
    header: str
    justify: str = "left"
    wrap: bool = False
    """Text that may wrap over lines (notes, titles, URLs); else one line."""
    keep: int = REQUIRED
    """When the table does not fit, the column with the lowest ``keep`` is left out first."""
    room: int = WRAP_MIN
    """A wrapping column's least width (its whole text when shorter): other columns go first."""


def _width(value: Any) -> int:
    text = value.plain if isinstance(value, Text) else str(value)
    return max((cell_len(line) for line in text.splitlines()), default=0)


def _needs(column: Column, cells: list[Any]) -> int:
    natural = max([_width(column.header), *(_width(c) for c in cells)])
    return min(natural, max(column.room, cell_len(column.header))) if column.wrap else natural


@functools.lru_cache(maxsize=64)
def _frame_width(columns: int, pad_edge: bool, show_edge: bool, padding: int, box_name: str) -> int:
    """What a table of ``columns`` columns adds around its cells (padding, edges, dividers)."""
    probe = Table(box=getattr(box, box_name), pad_edge=pad_edge, show_edge=show_edge, padding=(0, padding))
    for _ in range(columns):
        probe.add_column("x")
    probe.add_row(*("x" * columns))
    console = Console(width=10_000, file=None)
    return Measurement.get(console, console.options, probe).maximum - columns


def fitted_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    width: int,
    *,
    title: Text | str | None = None,
    hint: str = "",
    pad_edge: bool = True,
    box_name: str = "SIMPLE_HEAD",
) -> Table:
    """A rich table of ``rows`` (cells in ``columns`` order) that fits
    ``width``; ``hint`` follows the list of columns left out (e.g. where the
    whole figures are)."""
    cells = [[row[i] for row in rows] for i in range(len(columns))]
    needs = [_needs(col, col_cells) for col, col_cells in zip(columns, cells)]
    kept = list(range(len(columns)))

    def total() -> int:
        return sum(needs[i] for i in kept) + _frame_width(len(kept), pad_edge, True, 1, box_name)

    while total() > width:
        droppable = [i for i in kept if columns[i].keep < REQUIRED]
        if not droppable:
            break
        kept.remove(min(reversed(droppable), key=lambda i: columns[i].keep))  # ties: the rightmost goes
    left_out = [columns[i].header for i in range(len(columns)) if i not in kept]
    caption = None
    if left_out:
        caption = Text(f"not shown at {width} columns: {', '.join(left_out)}{hint}", style="dim")
    table = Table(
        title=title, title_style="bold", header_style="bold", caption=caption, caption_justify="left",
        pad_edge=pad_edge, box=getattr(box, box_name),
    )
    for i in kept:
        col = columns[i]
        if col.wrap:
            table.add_column(col.header, justify=col.justify, overflow="fold")  # type: ignore[arg-type]
        else:
            table.add_column(col.header, justify=col.justify, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table


__all__ = ["Column", "REQUIRED", "WRAP_MIN", "fitted_table"]
