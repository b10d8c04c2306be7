"""A widget that paints a few rows of rich text, repainting only rows that changed.

Invariant: ``set_rows()`` is the only way rows change; a row whose text and
styles are equal to what is on screen is not repainted, and a row's strip is
built once per (text, width). Rows are painted through the Line API
(``render_line``), which skips Textual's per-render visual pipeline (about
1 ms per widget, ~10 ms for a table: the bulk of a frame at 16 lanes). Rows
are expected to fit the width; a longer one is cut with an ellipsis, as the
``text-overflow: ellipsis`` rule did. A paint reads the widget's geometry
once for all its lines, and a row's painted line is kept until the row, the
width or the styles change. ``render()`` still returns the rows as one
``Text`` (tests and screenshots of a single widget read it). ``RowStrips``
is that painting without a widget: a widget that paints several parts
(a lane: its header and info rows) holds one per part.
"""

from __future__ import annotations

from typing import Hashable

from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from rich.console import Console

from thunderdome.tui.palette import join_rows


def row_strip(row: Text, width: int, console: Console) -> Strip:
    """``row`` painted, cut with an ellipsis if it is wider than ``width``."""
    if row.cell_len > width:
        row = row.copy()
        row.truncate(width, overflow="ellipsis")
    strip = Strip(row.render(console, end=""))
    if row.style:  # Text.render leaves a span-less text's own style out
        strip = strip.apply_style(console.get_style(row.style))
    return strip


class RowStrips:
    """A few rows of ``Text`` and the painted line of each, built once per row
    and width; the owner calls ``forget()`` when its styles change."""

    def __init__(self) -> None:
        self.rows: list[Text] = []
        self._strips: dict[int, Strip] = {}
        self._width = -1

    def set(self, rows: list[Text]) -> list[int] | None:
        """Take ``rows``: the indices of those that differ from the rows before
        (to repaint), or None when their count changed (all of them)."""
        old = self.rows
        self.rows = rows
        if len(rows) != len(old):
            self._strips.clear()
            return None
        changed = [y for y, (new, was) in enumerate(zip(rows, old))
                   if new is not was and (new != was or new.style != was.style)]  # Text's == skips .style
        for y in changed:
            self._strips.pop(y, None)
        return changed

    def replace(self, rows: list[Text]) -> None:
        """Take ``rows`` built for a new size: every line is painted again."""
        self.rows = rows
        self._strips.clear()

    def forget(self) -> None:
        """The styles changed: every line is painted again."""
        self._strips.clear()

    def line(self, y: int, width: int, console: Console, base: Style) -> Strip:
        """Row ``y`` painted ``width`` cells wide on ``base`` (blank past the rows)."""
        if width != self._width:
            self._strips.clear()
            self._width = width
        line = self._strips.get(y)
        if line is None:
            row = row_strip(self.rows[y], width, console) if y < len(self.rows) else Strip.blank(0)
            line = self._strips[y] = row.crop_extend(0, width, base).apply_style(base)
        return line


class RowsWidget(Widget):
    """Rows of ``Text``, one per line; height follows the row count if ``auto``."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._painted = RowStrips()
        self._base: Style | None = None
        self._key: Hashable = None
        self._pass_width: int | None = None
        """The content width while Textual paints the widget (``render_lines``)."""

    @property
    def rows(self) -> list[Text]:
        """The rows shown, one per line."""
        return self._painted.rows

    # -- for subclasses that build their rows from data -------------------------------------

    def build_rows(self, width: int) -> list[Text] | None:
        """The rows for ``width`` from the widget's data; None if rows are only
        ever given with ``set_rows``."""
        return None

    def rows_key(self, width: int) -> Hashable:
        """What the rows depend on besides the data (they are rebuilt when it changes)."""
        return width

    def update_rows(self) -> None:
        """Rebuild the rows from the data (after it changed) and repaint what differs."""
        width = self.content_region.width
        rows = self.build_rows(width)
        if rows is not None:
            self.set_rows(rows, self.rows_key(width))

    # -- showing rows -------------------------------------------------------------------------

    def set_rows(self, rows: list[Text], key: Hashable = None) -> None:
        """Show ``rows`` (built for ``key``, see ``rows_key``); repaint only the
        rows that differ (all, and a new layout if the height is auto, when
        the count changed)."""
        self._key = key
        changed = self._painted.set(rows)
        if changed is None:
            self.refresh(layout=self._auto_height())
            return
        width = self.size.width
        for y in changed:
            self.refresh(Region(0, y, width, 1))

    def _rows_now(self, width: int) -> bool:
        """Rebuild stale rows (the size changed since they were made), without a
        repaint request; True if the row count changed."""
        if self._key is None:
            return False
        key = self.rows_key(width)
        if key == self._key:
            return False
        rows = self.build_rows(width)
        if rows is None:
            return False
        counted = len(rows) != len(self.rows)
        self._key = key
        self._painted.replace(rows)
        return counted

    def _auto_height(self) -> bool:
        return self.styles.height is not None and self.styles.height.is_auto

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self._rows_now(width)
        return len(self.rows)

    def render(self) -> Text:
        return join_rows(self.rows)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._painted.forget()
        self._base = None

    def _base_style(self) -> Style:
        """``rich_style`` (it walks every ancestor's styles), kept until the styles change."""
        if self._base is None:
            self._base = self.rich_style
        return self._base

    def render_lines(self, crop: Region) -> list[Strip]:
        """Textual's paint of the widget: the size is read, and stale rows
        rebuilt, once for all its lines, not per line."""
        width = self._fresh_width()
        self._pass_width = width
        try:
            return super().render_lines(crop)
        finally:
            self._pass_width = None

    def _fresh_width(self) -> int:
        """The content width, with the rows rebuilt for it if they are stale."""
        width = self.content_region.width or self.size.width
        if self._rows_now(width) and self._auto_height():
            # rebuilt for a new size with more or fewer rows: the height follows
            # (asked after this paint: a layout asked for during one is dropped)
            self.call_after_refresh(self.refresh, layout=True)
        return width

    def render_line(self, y: int) -> Strip:
        width = self._pass_width if self._pass_width is not None else self._fresh_width()
        return self._painted.line(y, width, self.app.console, self._base_style())
