"""The big race clock, readable from the back of the room.

Invariant: the clock shows the value it is given (the viewer's race time,
from ``RaceTime``); it never reads a clock itself, so snapshot tests with a
frozen clock are exact. Updates that would not change the text are dropped.
"""

from __future__ import annotations

from textual.widgets import Digits

from thunderdome.tui import numbers


class RaceClock(Digits):
    """Seconds since the start barrier, in 3-row digits."""

    DEFAULT_CSS = """
    RaceClock { width: auto; min-width: 16; text-align: right; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("0.00", id=id, classes=classes)
        self.seconds = 0.0

    def show(self, seconds: float) -> None:
        self.seconds = seconds
        text = numbers.clock(seconds)
        if text != self.value:
            self.update(text)
