"""A lane's live token stream: answer text plain, reasoning dim and italic,
an agent's turns apart.

Invariant: appending text costs O(new text + one screen row), never O(whole
text) (the rows are wrapped as they grow, ``stream_rows.WrappedRows``), and
only the rows that changed are repainted (never the blank ones below the
text). It is no widget of its own but a window of its host widget (the
lane, which paints its header above it; ``place()`` says where), and the
window's size never depends on its text: a fixed window onto the newest
rows (a terminal-like tail), painted through the Line API from cached
strips (a row's painted line is reused while the width, the scrollbar cell
and the style stay), so a growing text never asks Textual for a new layout
or a scroll reflow (a full-screen layout costs ~50 ms at 200x60, see
benchmarks/render_capacity.py). The viewer can still wheel back through
the text (the host passes the wheel on); the window then stays put until
wheeled down to the end. A one-cell scrollbar is drawn by the window
itself. Text is expected already ``clean()``ed and is turned into
``rich.text.Text`` without markup parsing.
No known secret is ever painted: the lane's pieces (both channels) pass
through one ``redact.HeldText``, so a key split across deltas or across the
reasoning and answer channels shows as ``[redacted]``; the end of a piece
that may begin a key waits for the next piece, or for ``release_held()``
when the lane ends, or for a mark (then a held key beginning of 6+
characters is a key cut short, and redacted).

Marks (``feed.FEEDBACK``, ``feed.TURN``) end the text before them: what was
held is released, redacted, first; their own text comes redacted from the
feed. The turn and answer rules and the feedback sent to the model show
dim (see ``stream_rows``). Secondary text (reasoning, feedback, rules, the
placeholder) is painted in a concrete colour: the
answer's own colour blended toward the background (``SECONDARY``), so it is
dimmer than the answer in every lane state. Rows hold a key style per
channel (``KEY_STYLES``), swapped for the concrete one as a row is painted:
a restyle repaints, it never re-wraps. The host lists ``COMPONENT_CLASSES``
(the window's own ``token-stream`` style, the secondary text styles) and
calls ``restyled()`` when its styles change.
"""

from __future__ import annotations

from math import ceil

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.color import Color as TextualColor
from textual.geometry import Region, Size
from textual.scrollbar import ScrollBarRender
from textual.strip import Strip
from textual.widget import Widget

from thunderdome.core.redact import HeldText, known
from thunderdome.tui.feed import FEEDBACK, TURN
from thunderdome.tui.widgets.stream_rows import (
    KEY_STYLES, MARKS, PLACEHOLDER, REASONING, PaintedRow, WrappedRows, _runs, key_style,
)

SECONDARY: dict[str, tuple[str, float]] = {
    REASONING: ("token-stream--reasoning", 0.6),
    FEEDBACK: ("token-stream--feedback", 0.6),
    TURN: ("token-stream--rule", 0.42),
    PLACEHOLDER: ("token-stream--placeholder", 0.6),
}
"""Secondary text: its component class (text style) and how much of the
answer colour's distance from the background it keeps."""
FALLBACK_STYLE = Style(color="#8a8a8a", italic=True)
"""A secondary style before the widget's styles exist (repainted on layout)."""
WHEEL_ROWS = 3
"""Rows moved per mouse-wheel step."""
WINDOW = "token-stream"
"""The component class of the window's own style (its background and text colour)."""
COMPONENT_CLASSES = {WINDOW, *(name for name, _ in SECONDARY.values())}
"""What the host widget lists in its ``COMPONENT_CLASSES``."""
DEFAULT_CSS = """
    & > .token-stream--reasoning { text-style: italic; }
    & > .token-stream--placeholder { text-style: italic; }
    & > .token-stream--feedback { text-style: none; }
    & > .token-stream--rule { text-style: none; }
"""
"""The secondary text styles, nested in the host's ``DEFAULT_CSS``."""


class TokenStream:
    """One lane's streamed text, showing its tail in a window of ``host``."""

    def __init__(self, host: Widget) -> None:
        self._host = host
        self._region = Region()
        """The window, in the host's content coordinates."""
        self._show_reasoning = True
        self._fragments: list[tuple[str, list[str]]] = []  # (channel, pieces), merged runs
        self._text = WrappedRows()
        self._cache: dict[int, PaintedRow] = {}
        self._pass: tuple[int, int, int, int] | None = None
        """The window's geometry while Textual paints it (``render_lines``)."""
        self._base: Style | None = None
        self._paint: dict[Style, Style] | None = None
        """Key style -> the concrete style it is painted in, until the styles change."""
        self._width = 0
        self._top: int | None = None
        """First row shown when wheeled back; None: follow the newest rows."""
        self._shown_top = 0
        self._bar: tuple[tuple[int, int, int], list[Strip]] = ((0, 0, 0), [])
        self._gutter: Style | None = None
        self._bar_colors: tuple[Color, Color] | None = None
        self._cells: dict[tuple[str, Style | None], Strip] = {}
        self.reasoning_chars = 0
        self.answer_chars = 0
        self._held: HeldText[str] = HeldText(known(), divisible=True)

    # -- public -------------------------------------------------------------------------

    @property
    def show_reasoning(self) -> bool:
        """Whether reasoning text is shown (toggled with a key); hidden reasoning
        leaves a one-line placeholder with its size."""
        return self._show_reasoning

    @show_reasoning.setter
    def show_reasoning(self, show: bool) -> None:
        if show != self._show_reasoning:
            self._show_reasoning = show
            if self._host.is_mounted:
                self._top = None
                self._rebuild()

    @property
    def rich_style(self) -> Style:
        """The window's own style: the answer's colour on its background."""
        return self._base_style()

    @property
    def size(self) -> Size:
        """The window's size."""
        return self._region.size

    def place(self, region: Region) -> None:
        """The host laid the window out at ``region`` (content coordinates)."""
        if region == self._region:
            return
        self._region = region
        if self._wrap_width() != self._width:
            self._rebuild()
        else:
            self._cache.clear()
            self.refresh()

    def refresh(self, region: Region | None = None) -> None:
        """Repaint ``region`` of the window (all of it if None)."""
        window = self._region
        region = Region(0, 0, *window.size) if region is None else region
        gutter = self._host.styles.gutter
        self._host.refresh(region.translate(window.offset + (gutter.left, gutter.top)))

    def restyled(self) -> None:
        """The host's styles changed: every row is painted again in the new ones."""
        self._paint = None
        self._cache.clear()
        self._bar, self._gutter, self._base, self._bar_colors = ((0, 0, 0), []), None, None, None
        self._cells.clear()
        self.refresh()

    def append(self, channel: str, text: str) -> None:
        """Add a cleaned piece of ``channel`` text."""
        self.extend([(channel, text)])

    def extend(self, pieces: list[tuple[str, str]]) -> None:
        """Append a frame's worth of ``(channel, text)`` pieces; the rows are
        re-wrapped and repainted once for the whole batch."""
        held = self._held
        held.secrets = known()  # a key may become known mid-race
        safe: list[tuple[str, str]] = []
        for channel, text in _runs(pieces):  # redaction per run of a channel, not per token
            if channel in MARKS:
                safe.extend(held.release_cut())  # the text before a mark has ended
                safe.append((channel, text))
            else:
                safe.extend(held.push(channel, text))
        self._show(safe)

    def release_held(self) -> None:
        """The lane's text has ended: show what was held back, redacted."""
        if self._held:
            self._show(self._held.release_cut())

    def _show(self, pieces: list[tuple[str, str]]) -> None:
        self._text.width = self._width or self._wrap_width()
        before = self._row_count()
        changed = False
        for channel, text in _runs(pieces):  # one append per run of a channel, not per token
            changed = self._take(channel, text) or changed
        if changed:
            self._publish(before)

    def _take(self, channel: str, text: str) -> bool:
        """Store a piece; True if visible rows changed."""
        if not text:
            return False
        if self._fragments and self._fragments[-1][0] == channel and channel not in MARKS:
            self._fragments[-1][1].append(text)
        else:
            self._fragments.append((channel, [text]))
        if channel == REASONING:
            self.reasoning_chars += len(text)
        elif channel not in MARKS:
            self.answer_chars += len(text)
        if channel == REASONING and not self.show_reasoning:
            self._cache.pop(0, None)  # the placeholder's count
            if self._visible_row(0):
                self.refresh(Region(0, 0, self.size.width, 1))
            return False
        self._text.add(channel, text, wrap=False)
        return True

    def clear(self) -> None:
        self._fragments.clear()
        self._held = HeldText(known(), divisible=True)
        self.reasoning_chars = self.answer_chars = 0
        self._rebuild()

    @property
    def plain(self) -> str:
        """Everything shown (for tests): the visible rows joined by newlines."""
        return "\n".join(self._text.plain_rows())

    def tail_lines(self, count: int) -> list[str]:
        """The last ``count`` visible rows (plain), for compact lanes and tests."""
        return self._text.plain_rows()[-count:]

    @property
    def following(self) -> bool:
        """True while the newest rows are shown (not wheeled back)."""
        return self._top is None

    def scroll_rows(self, delta: int) -> bool:
        """Move the window ``delta`` rows (negative: back); True if it moved.
        Reaching the newest rows follows them again."""
        last = self._last_top()
        top = self._window_top()
        new = min(max(top + delta, 0), last)
        if new == top:
            return False
        self._top = None if new >= last else new
        self.refresh()
        return True

    # -- building rows ----------------------------------------------------------------

    def _paint_map(self) -> dict[Style, Style]:
        paint = self._paint
        if paint is None:
            paint = {KEY_STYLES[channel]: self._secondary(channel) for channel in SECONDARY}
            if FALLBACK_STYLE not in paint.values():  # before the widget's styles exist: asked again
                self._paint = paint
        return paint

    def _painted(self, strip: Strip) -> Strip:
        """``strip`` with its key styles swapped for the concrete ones."""
        paint = self._paint_map()
        return Strip([Segment(seg.text, paint[seg.style]) if seg.style in paint else seg for seg in strip],
                     strip.cell_length)

    def _secondary(self, channel: str) -> Style:
        """``channel``'s concrete style: the answer's colour blended toward the
        background (a partial component style would leave ``$text-muted`` at
        full white), with the component's text style."""
        name, keep = SECONDARY[channel]
        base = self._base_style()
        try:
            component = self._host.get_component_rich_style(name, partial=True)
        except KeyError:
            return FALLBACK_STYLE
        if base.color is None or base.bgcolor is None:
            return FALLBACK_STYLE
        back = TextualColor.from_rich_color(base.bgcolor)
        color = back.blend(TextualColor.from_rich_color(base.color), keep)
        return Style(color=color.rich_color, italic=component.italic, bold=component.bold)

    def _base_style(self) -> Style:
        """The window's style (it walks every ancestor's styles), kept until the styles change."""
        if self._base is None:
            self._base = self._host.get_component_rich_style(WINDOW)
        return self._base

    def _wrap_width(self) -> int:
        return max(self._region.width - 1, 8)  # a column for the scrollbar

    def _row_count(self) -> int:
        return len(self._text) + (1 if self._placeholder() else 0)

    def _placeholder(self) -> bool:
        return not self.show_reasoning and self.reasoning_chars > 0

    # -- the window -------------------------------------------------------------------

    def _height(self) -> int:
        return self._region.height

    def _last_top(self) -> int:
        return max(0, self._row_count() - self._height())

    def _window_top(self) -> int:
        return self._geometry()[2]

    def _geometry(self) -> tuple[int, int, int, int]:
        """(width, height, top, total rows) of the window as it is now."""
        width, height = self._region.size
        total = self._row_count()
        last = max(0, total - height)
        top = last if self._top is None else min(self._top, last)
        return width, height, top, total

    def _visible_row(self, index: int) -> bool:
        top = self._window_top()
        return top <= index < top + self._height()

    def _publish(self, before: int) -> None:
        """Wrap the tail, forget the rows that changed, repaint what shows."""
        self._text.wrap_tail()
        first = max(0, before - 1)
        cache = self._cache
        for y in [y for y in cache if y >= first]:
            del cache[y]
        _, height, top, total = self._geometry()
        if top != self._shown_top or (total != before and total > height):
            self.refresh()  # the window moved, or the scrollbar's thumb did: every row
        elif first < top + height:  # only the rows that changed (the tail row, as a rule),
            y = max(first - top, 0)  # not the blank ones below the text, which stay blank
            end = min(height, total - top)
            if end > y:
                self.refresh(Region(0, y, self.size.width, end - y))
        if len(cache) > 4 * height + 16:  # only what shows is worth keeping
            for y in [y for y in cache if not top <= y < top + height]:
                del cache[y]

    def _rebuild(self) -> None:
        self._cache.clear()
        self._width = self._wrap_width()
        self._text = WrappedRows(self._width)
        for channel, pieces in self._fragments:
            if channel == REASONING and not self.show_reasoning:
                continue
            self._text.add(channel, "".join(pieces))
        self.refresh()

    # -- painting (the host's Line API) -----------------------------------------------------

    def begin_paint(self) -> None:
        """The host starts painting: the window's geometry is read once for
        all its lines, not per line (until ``end_paint()``)."""
        self._pass = self._geometry()

    def end_paint(self) -> None:
        self._pass = None

    def render_line(self, y: int) -> Strip:
        """Row ``y`` of the window, painted."""
        width, height, top, total = self._pass or self._geometry()
        if y == 0:
            self._shown_top = top
        index = top + y
        if total <= height or width < 2:
            cell = self._gutter_cell() if width >= 1 else None
        else:
            cell = self._scrollbar_cell(y, height, total, top)
        base = self._base_style()
        row = self._cache.get(index)
        if row is None:
            row = self._cache[index] = PaintedRow(self._render_row(index))
        key = (width, cell, base)
        if row.key != key:  # the same row in the same window costs a lookup, not a new strip
            text = row.strip.crop_extend(0, width - 1, base).apply_style(base)
            row.key, row.line = key, text if cell is None else Strip.join([text, cell])
        return row.line

    def _scrollbar_cell(self, y: int, height: int, total: int, top: int) -> Strip:
        """Row ``y`` of a vertical scrollbar drawn as Textual's own."""
        key = (height, total, top)
        if self._bar[0] != key:
            self._bar = (key, self._scrollbar(height, total, top))
        cells = self._bar[1]
        return cells[y] if y < len(cells) else Strip.blank(1)

    def _scrollbar(self, height: int, total: int, top: int) -> list[Strip]:
        if self._bar_colors is None:
            styles = self._host.styles
            background, color = styles.scrollbar_background, styles.scrollbar_color
            if background.a < 1:
                background = self._host.background_colors[1] + background  # what lies under the window
            self._bar_colors = (background.rich_color, (background + color).rich_color)
        back, fore = self._bar_colors
        bar = ScrollBarRender.render_bar(
            size=height, virtual_size=ceil(total), window_size=height, position=top, thickness=1,
            vertical=True, back_color=back, bar_color=fore,
        )
        under = self._gutter_style()  # what Textual lays under its own scrollbar
        cells = []
        for segment in bar.segments:
            if not segment.text:
                continue
            key = (segment.text, segment.style)
            cell = self._cells.get(key)  # a handful of distinct cells: build each once
            if cell is None:
                style = under + segment.style.clear_meta_and_links() if segment.style else under
                cell = self._cells[key] = Strip([Segment(segment.text, style)], 1)
            cells.append(cell)
        return cells

    def _gutter_style(self) -> Style:
        if self._gutter is None:
            self._gutter = Style(bgcolor=self._base_style().bgcolor)
        return self._gutter

    def _gutter_cell(self) -> Strip:
        """The blank column where the scrollbar would be (one strip, reused)."""
        key = self._gutter_style()
        cell = self._cells.get(("", key))
        if cell is None:
            cell = self._cells[("", key)] = Strip.blank(1, key)
        return cell

    def _render_row(self, index: int) -> Strip:
        if self._placeholder():
            if index == 0:
                label = f"▸ reasoning hidden ({self.reasoning_chars:,} chars) — press t to show"
                return self._painted(Strip(Text().append(label, key_style(PLACEHOLDER)).render(self._host.app.console)))
            index -= 1
        row = self._text.row(index)
        if row is None:
            return Strip.blank(0)
        return self._painted(Strip(row.render(self._host.app.console)))
