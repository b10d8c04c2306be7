"""The demo's "next race" note on the results screen, and its countdown.

Invariant: the note owns its countdown; when it runs out the note posts
``NextRaceNote.CountdownEnded`` once and the screen decides what follows.
Once held (``hold()``) or run out, it never counts again.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static

from thunderdome.core.specs import TaskSpec
from thunderdome.tui.palette import DIM, LABEL
from thunderdome.tui.safe_text import one_line


def next_text(task: TaskSpec, left: float | None) -> Text:
    """``next  TASK`` with the seconds left, or ``press n`` when not counting."""
    text = Text.assemble(("next  ", LABEL), (one_line(task.name, 40), Style(bold=True, color="#ff9f1c")))
    if left is not None:
        text.append(f"  starts in {max(0, round(left))} s", Style(bold=True))
        text.append(" · n now · esc to stay", DIM)
    else:
        text.append("  press n", DIM)
    return text


class NextRaceNote(Static):
    """The next task, counting down ``delay`` seconds (None: wait for ``n``)."""

    @dataclass
    class CountdownEnded(Message):
        """The countdown reached zero: the next race is due."""

        note: NextRaceNote

    def __init__(self, task: TaskSpec, delay: float | None) -> None:
        super().__init__(next_text(task, delay), id="next-race")
        self.next_task = task
        self.left = delay
        """Seconds before the next race starts by itself; None: not counting."""
        self._timer: Timer | None = None

    def on_mount(self) -> None:
        if self.left is not None:
            self._timer = self.set_interval(1.0, self._tick)

    @property
    def counting(self) -> bool:
        """The countdown is running (or starts as the note mounts): neither held nor run out."""
        return self.left is not None

    def _tick(self) -> None:
        if self.left is None:
            return
        self.left -= 1
        if self.left <= 0:
            self.stop()
            self.left = None
            self.post_message(self.CountdownEnded(self))
            return
        self.update(next_text(self.next_task, self.left))

    def stop(self) -> None:
        """Stop counting (the text stays as it is)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def hold(self) -> None:
        """Stop counting and wait for ``n``."""
        self.stop()
        self.left = None
        self.update(next_text(self.next_task, None))
