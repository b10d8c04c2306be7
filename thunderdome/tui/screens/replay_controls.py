"""The race screen's replay keys: pause, speed, step and restart.

Invariant: these actions act only in a replay (``check_action`` hides and
disables them in a live race, and the live race's presenter key in a
replay); each one goes through the source's typed ``controls``
(``sources.base.ReplayControls``) and moves the screen's race clock with
it, so what is shown and what is played never disagree. The screen redraws
at once after a change, not at the next frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from textual.binding import Binding

if TYPE_CHECKING:
    from thunderdome.sources.base import Source
    from thunderdome.tui.feed import EventFeed

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
SPEED_KEYS = Binding.Group("speed", compact=True)
"""``+`` and ``-`` share one footer entry (the replay's keys fit 80 columns)."""
REPLAY_ACTIONS = ("pause", "speed", "step", "restart", "presenter_unlisted")
"""Actions that exist only in a replay (``presenter_unlisted``: the ``b`` key
kept off a replay's full footer)."""


class ReplayKeys:
    """Mixed into ``RaceScreen``: the replay's key actions."""

    source: Source
    feed: EventFeed
    replay: bool
    over: bool
    speed: float

    # the screen's own, declared for the reader (no values: nothing is shadowed)
    now: Callable[[], float]
    _update_widgets: Callable[[float], None]
    action_rerun: Callable[[], None]

    def action_restart(self) -> None:
        if self.replay:
            self.action_rerun()

    def action_pause(self) -> None:
        controls = self.source.controls
        if not self.replay or self.over or controls is None:
            return
        paused = not self.feed.time.paused
        if paused:
            controls.pause()
        else:
            controls.resume()
        self.feed.time.pause(paused)
        self._update_widgets(self.now())

    def action_speed(self, direction: int) -> None:
        controls = self.source.controls
        if not self.replay or controls is None:
            return
        i = min(range(len(SPEEDS)), key=lambda k: abs(SPEEDS[k] - self.speed))
        self.speed = SPEEDS[min(max(i + direction, 0), len(SPEEDS) - 1)]
        controls.set_speed(self.speed)
        self.feed.time.set_rate(self.speed)
        self._update_widgets(self.now())

    def action_step(self) -> None:
        controls = self.source.controls
        if self.replay and not self.over and controls is not None:
            if not self.feed.time.paused:
                self.action_pause()
            controls.step()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in REPLAY_ACTIONS:
            return self.replay  # replay controls: hidden (and off) in a live race
        if action == "presenter":
            return not self.replay
        return True
