"""A lane's live token stream: answer text plain, reasoning dim and italic.

Invariant: appending text costs O(new text + one screen row), never O(whole
text): the rows of a paragraph are final once a later row exists (greedy word
wrap only ever moves the *last* word), so only the paragraph's unfinished last
row is wrapped again. Rows are painted on demand through the Line API
(``render_line``), and the widget stays scrolled to the newest row unless the
viewer scrolls up (``anchor``). Text is expected already ``clean()``ed and is
turned into ``rich.text.Text`` without markup parsing.
"""

from __future__ import annotations

from rich._wrap import divide_line
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

ANSWER, REASONING = "answer", "reasoning"


class TokenStream(ScrollView, can_focus=False):
    """Line-API widget holding one lane's streamed text."""

    COMPONENT_CLASSES = {"token-stream--reasoning", "token-stream--placeholder"}

    DEFAULT_CSS = """
    TokenStream {
        height: 1fr;
        scrollbar-size-vertical: 1;
        scrollbar-gutter: stable;
        overflow-x: hidden;
        & > .token-stream--reasoning { color: $text-muted; text-style: italic; }
        & > .token-stream--placeholder { color: $text-muted; text-style: italic; }
    }
    """

    show_reasoning: reactive[bool] = reactive(True)
    """Whether reasoning text is shown (toggled with a key); hidden reasoning
    leaves a one-line placeholder with its size."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._fragments: list[list[str]] = []  # [channel, text], merged runs
        self._rows: list[Text] = []  # final rows
        self._tail = Text()  # the unfinished last row(s) of the current paragraph
        self._tail_rows: list[Text] = []
        self._tail_channel: str | None = None
        self._cache: dict[int, Strip] = {}
        self._width = 0
        self.reasoning_chars = 0
        self.answer_chars = 0

    # -- public -------------------------------------------------------------------------

    def append(self, channel: str, text: str) -> None:
        """Add a cleaned piece of ``channel`` text."""
        self.extend([(channel, text)])

    def extend(self, pieces: list[tuple[str, str]]) -> None:
        """Append a frame's worth of ``(channel, text)`` pieces; the rows are
        re-wrapped and repainted once for the whole batch."""
        before = self._row_count()
        changed = False
        for channel, text in pieces:
            changed = self._take(channel, text) or changed
        if changed:
            self._publish(before)

    def _take(self, channel: str, text: str) -> bool:
        """Store a piece; True if visible rows changed."""
        if not text:
            return False
        if self._fragments and self._fragments[-1][0] == channel:
            self._fragments[-1][1] += text
        else:
            self._fragments.append([channel, text])
        if channel == REASONING:
            self.reasoning_chars += len(text)
        else:
            self.answer_chars += len(text)
        if channel == REASONING and not self.show_reasoning:
            self._cache.pop(0, None)  # the placeholder's count
            self.refresh_lines(0)
            return False
        self._add(channel, text, wrap=False)
        return True

    def clear(self) -> None:
        self._fragments.clear()
        self.reasoning_chars = self.answer_chars = 0
        self._rebuild()

    @property
    def plain(self) -> str:
        """Everything shown (for tests): the visible rows joined by newlines."""
        return "\n".join(row.plain for row in (*self._rows, *self._tail_rows))

    def tail_lines(self, count: int) -> list[str]:
        """The last ``count`` visible rows (plain), for compact lanes and tests."""
        rows = [row.plain for row in (*self._rows, *self._tail_rows)]
        return rows[-count:]

    # -- building rows ----------------------------------------------------------------

    def _style(self, channel: str) -> Style:
        if channel == REASONING:
            try:
                return self.get_component_rich_style("token-stream--reasoning", partial=True)
            except KeyError:  # text before the widget's styles exist: repainted on layout
                return Style(dim=True, italic=True)
        return Style()

    def _wrap_width(self) -> int:
        width = self.scrollable_content_region.width or self.size.width
        return max(width, 8)

    def _add(self, channel: str, text: str, *, wrap: bool = True) -> None:
        if self._tail_channel is not None and channel != self._tail_channel and self._tail.plain.strip():
            self._finish_paragraph()  # reasoning and answer never share a row
        self._tail_channel = channel
        style = self._style(channel)
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i:
                self._finish_paragraph()
                self._tail_channel = channel
            if part:
                self._tail.append(part, style)
        if wrap:
            self._wrap_tail()

    def _wrap_tail(self) -> None:
        tail = self._tail
        offsets = divide_line(tail.plain, self._width or self._wrap_width(), fold=True)
        if not offsets:
            self._tail_rows = [tail] if tail.plain else []
            return
        rows = list(tail.divide(offsets))
        for row in rows[:-1]:
            row.rstrip()
            self._rows.append(row)
        self._tail = rows[-1]
        self._tail_rows = [self._tail]

    def _finish_paragraph(self) -> None:
        self._wrap_tail()
        self._rows.extend(self._tail_rows or [Text()])
        self._tail = Text()
        self._tail_rows = []
        self._tail_channel = None

    def _row_count(self) -> int:
        return len(self._rows) + len(self._tail_rows) + (1 if self._placeholder() else 0)

    def _placeholder(self) -> bool:
        return not self.show_reasoning and self.reasoning_chars > 0

    def _publish(self, before: int) -> None:
        """Wrap the tail, invalidate the rows that changed, grow the virtual size."""
        self._wrap_tail()
        first = max(0, before - 1)
        for y in [y for y in self._cache if y >= first]:
            del self._cache[y]
        total = self._row_count()
        self.virtual_size = Size(self._width or self._wrap_width(), total)
        self.refresh_lines(first, max(1, total - first))

    def _rebuild(self) -> None:
        self._rows, self._tail, self._tail_rows, self._tail_channel = [], Text(), [], None
        self._cache.clear()
        self._width = self._wrap_width()
        for channel, text in self._fragments:
            if channel == REASONING and not self.show_reasoning:
                continue
            self._add(channel, text)
        self.virtual_size = Size(self._width, self._row_count())
        self.refresh()

    # -- textual hooks -----------------------------------------------------------------

    def on_mount(self) -> None:
        self._width = self._wrap_width()
        self.anchor()

    def on_resize(self) -> None:
        if self._wrap_width() != self._width:
            self._rebuild()

    def watch_show_reasoning(self, show: bool) -> None:
        if self.is_mounted:
            self._rebuild()
            self.scroll_end(animate=False, immediate=True)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        strip = self._cache.get(index)
        if strip is None:
            strip = self._render_row(index)
            self._cache[index] = strip
        return strip.crop_extend(0, width, base).apply_style(base)

    def _render_row(self, index: int) -> Strip:
        if self._placeholder():
            if index == 0:
                label = f"▸ reasoning hidden ({self.reasoning_chars:,} chars) — press t to show"
                try:
                    style = self.get_component_rich_style("token-stream--placeholder", partial=True)
                except KeyError:
                    style = Style(dim=True, italic=True)
                return Strip(Text(label, style=style).render(self.app.console))
            index -= 1
        if index < len(self._rows):
            row = self._rows[index]
        elif index - len(self._rows) < len(self._tail_rows):
            row = self._tail_rows[index - len(self._rows)]
        else:
            return Strip.blank(0)
        return Strip(row.render(self.app.console))
