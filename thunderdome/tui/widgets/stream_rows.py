"""A lane's text as rows of one width, wrapped as it grows.

Invariant: appending text costs O(new text + one row), never O(whole
text): the rows of a paragraph are final once a later row exists (greedy
word wrap only ever moves the *last* word), so only the paragraph's
unfinished last row is wrapped again. The rows are exactly rich's word wrap
(``divide_line(text, width, fold=True)``) of each paragraph; reasoning and
answer never share a row; a turn after the first starts under a rule row
(``── turn 2 ──``) and, where a turn's answer (or tool call) follows its
reasoning, an ``── answer ──`` rule marks the boundary, once per turn. Rows
hold a key style per secondary channel (``KEY_STYLES``), never a concrete
colour, so a restyle repaints them without re-wrapping. No UI here: the
widget (``stream.py``) decides the width and paints the rows.
"""

from __future__ import annotations

import re

from rich._wrap import divide_line
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from thunderdome.tui.feed import FEEDBACK, TOOL, TURN

ANSWER, REASONING = "answer", "reasoning"
OUTPUT = (ANSWER, TOOL)
"""What a model gives after its reasoning: answer text, or a tool call."""
MARKS = (FEEDBACK, TURN)
"""Channels that are marks: never merged with the piece before them."""
PLACEHOLDER = "placeholder"
SECONDARY_CHANNELS = (REASONING, FEEDBACK, TURN, PLACEHOLDER)
"""Text painted dimmer than the answer (the widget picks the colour)."""
KEY_STYLES = {channel: Style(meta={"token-stream": channel}) for channel in SECONDARY_CHANNELS}
"""The styles rows are built with for secondary text (never painted as such)."""
PLAIN = Style()

_WORD = re.compile(r"\s*\S+\s*")
"""A word and the blanks around it, as rich's word wrap reads them."""


def _breaks(text: str, width: int) -> list[int]:
    """Where the rows of a paragraph start: ``rich._wrap.divide_line(text,
    width, fold=True)``, the same offsets. Printable ASCII (one cell a
    character, the common case) is measured with ``len`` instead of rich's
    per-word cell count, about half the cost of appending text."""
    if not (text.isascii() and text.isprintable()):
        return divide_line(text, width, fold=True)
    breaks: list[int] = []
    offset = 0
    for match in _WORD.finditer(text):
        start, end = match.span()
        length = len(match.group().rstrip())
        if width - offset >= length:
            offset += end - start
        elif length > width:  # a word wider than a row: cut every `width` characters
            cuts = range(start, end, width)
            breaks.extend(cut for cut in cuts if cut)
            offset = end - cuts[-1]
        elif offset and start:
            breaks.append(start)
            offset = end - start
    return breaks


def _runs(pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Consecutive pieces of one channel joined: ``[(channel, text), ...]``."""
    runs: list[tuple[str, str]] = []
    run: list[str] = []
    run_channel = ""
    for channel, text in pieces:
        if (channel != run_channel or channel in MARKS) and run:
            runs.append((run_channel, "".join(run)))
            run = []
        run_channel = channel
        run.append(text)
    if run:
        runs.append((run_channel, "".join(run)))
    return runs


def key_style(channel: str) -> Style:
    """The style ``channel``'s text is built with (a key, for secondary text)."""
    return KEY_STYLES.get(channel, PLAIN)


class PaintedRow:
    """A row's strip, and the line last painted from it (for ``key``: width,
    scrollbar cell, base style): the same row in the same window costs a
    lookup, not a new strip."""

    __slots__ = ("strip", "key", "line")

    def __init__(self, strip: Strip) -> None:
        self.strip = strip
        self.key: tuple[int, Strip | None, Style] | None = None
        self.line = strip


class WrappedRows:
    """The rows of a lane's text at ``width`` cells: final rows, then the
    current paragraph's unfinished tail."""

    def __init__(self, width: int = 8) -> None:
        self.width = width
        """Cells a row may take (set by the widget before text is added)."""
        self.rows: list[Text] = []  # final rows
        self.tail = Text()  # the unfinished last row(s) of the current paragraph
        self.tail_rows: list[Text] = []
        self.tail_channel: str | None = None
        self.turn_reasoned = False
        """Reasoning of the current turn is shown and its answer has not begun."""
        self.turn_answered = False
        """The current turn's answer or tool call has begun (its marker is drawn, if any)."""

    def __len__(self) -> int:
        return len(self.rows) + len(self.tail_rows)

    def row(self, index: int) -> Text | None:
        """Row ``index`` (0: the oldest), or None past the last."""
        rows = self.rows
        if index < len(rows):
            return rows[index]
        index -= len(rows)
        return self.tail_rows[index] if index < len(self.tail_rows) else None

    def plain_rows(self) -> list[str]:
        return [row.plain for row in (*self.rows, *self.tail_rows)]

    def add(self, channel: str, text: str, *, wrap: bool = True) -> None:
        """Append ``channel`` text; with ``wrap=False`` the tail is wrapped by
        the next ``wrap_tail()`` (once for a frame's pieces)."""
        if channel == TURN:
            self.rule(f"turn {text}")
            self.turn_reasoned = self.turn_answered = False
            return
        if channel == REASONING:
            self.turn_reasoned = not self.turn_answered
        elif channel in OUTPUT and not self.turn_answered:
            if self.turn_reasoned:
                text = text.lstrip("\n")  # the rule stands for the blank lines after the reasoning
                if not text:
                    return
                self.rule("answer")
            self.turn_reasoned, self.turn_answered = False, True
        if self.tail_channel is not None and channel != self.tail_channel and self.tail.plain.strip():
            self.finish_paragraph()  # reasoning and answer never share a row
        self.tail_channel = channel
        style = key_style(channel)
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i:
                self.finish_paragraph()
                self.tail_channel = channel
            if part:
                self.tail.append(part, style)
        if wrap:
            self.wrap_tail()

    def wrap_tail(self) -> None:
        tail = self.tail
        offsets = _breaks(tail.plain, self.width)
        if not offsets:
            self.tail_rows = [tail] if tail.plain else []
            return
        rows = list(tail.divide(offsets))
        for row in rows[:-1]:
            row.rstrip()
            self.rows.append(row)
        self.tail = rows[-1]
        self.tail_rows = [self.tail]

    def rule(self, label: str) -> None:
        """A row of its own: ``── label ───…`` across the text's width, dim."""
        if self.tail.plain.strip():
            self.finish_paragraph()
        else:
            self.tail, self.tail_rows, self.tail_channel = Text(), [], None
        head = f"── {label} "
        rule = Text(end="")
        rule.append(head + "─" * max(self.width - len(head), 2), key_style(TURN))
        self.rows.append(rule)

    def finish_paragraph(self) -> None:
        self.wrap_tail()
        self.rows.extend(self.tail_rows or [Text()])
        self.tail = Text()
        self.tail_rows = []
        self.tail_channel = None
