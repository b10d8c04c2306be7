"""A recording played back as an event source, with its controls.

Invariant: a replay emits exactly the recorded events, in recorded order, each
with its recorded ``t``; only *when* they are emitted depends on the speed and
the controls. Replay is just another event source, so every figure computed
from a replay equals the live race's. An event is due at
``anchor_wall + (t - anchor_t) / speed`` on the monotonic clock: sleeps are
never summed, so drift does not accumulate; pause and speed changes re-anchor.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from thunderdome.events import Event
from thunderdome.replay import Recording, load_recording
from thunderdome.sources.base import OnEvent, RecordingStatus
from thunderdome.sources.threaded import ThreadedSource


def _check_speed(speed: float, *, allow_inf: bool = False) -> float:
    speed = float(speed)
    if not speed > 0 or math.isnan(speed) or (math.isinf(speed) and not allow_inf):
        raise ValueError(f"replay speed must be a positive number, not {speed!r}")
    return speed


class PlayClock:
    """Maps race time to wall time: ``due(t) = anchor_wall + (t - anchor_t) / speed``.
    Pure arithmetic over an injected ``now`` (monotonic seconds)."""

    def __init__(self, speed: float = 1.0, *, paused: bool = False, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.speed = _check_speed(speed)
        self.paused = paused
        self.anchor_t = 0.0
        self.anchor_wall = now()

    def time(self) -> float:
        """The race time being played now."""
        if self.paused:
            return self.anchor_t
        return self.anchor_t + (self._now() - self.anchor_wall) * self.speed

    def due(self, t: float) -> float:
        """Wall time at which race time ``t`` is due (inf while paused)."""
        if self.paused:
            return math.inf
        return self.anchor_wall + (t - self.anchor_t) / self.speed

    def jump(self, t: float) -> None:
        """Re-anchor so that race time ``t`` is now."""
        self.anchor_t, self.anchor_wall = t, self._now()

    def pause(self) -> None:
        if not self.paused:
            self.jump(self.time())
            self.paused = True

    def resume(self) -> None:
        if self.paused:
            self.anchor_wall = self._now()
            self.paused = False

    def set_speed(self, speed: float) -> None:
        speed = _check_speed(speed)
        self.jump(self.time())
        self.speed = speed


async def replay_events(events: Sequence[Event], emit: Callable[[Event], None], speed: float = 1.0) -> None:
    """Emit ``events`` with their recorded timing at ``speed`` (``math.inf``:
    as fast as possible). Each event is due at start + t / speed."""
    speed = _check_speed(speed, allow_inf=True)
    start = time.monotonic()
    for i, event in enumerate(events):
        delay = 0.0 if math.isinf(speed) else start + event.t / speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif i % 256 == 255:
            await asyncio.sleep(0)  # let the loop breathe during a burst
        emit(event)


class ReplaySource(ThreadedSource):
    """A recording played on its own thread, with controls callable from any
    thread. Events go to ``on_event`` on the source's thread, like a live race.

    After the last event it waits (``at_end`` is set) for ``restart()`` or
    ``stop()``, unless ``linger=False``, in which case it ends. ``restart()``
    plays again from the first event (a ``RaceStarted``: consumers reset on it);
    the paused state is kept."""

    BURST = 512
    """Most events emitted in one go before the loop yields."""

    def __init__(self, events: Sequence[Event] | Recording, *, speed: float = 1.0, paused: bool = False, linger: bool = True) -> None:
        super().__init__()
        self.events: list[Event] = list(events.events if isinstance(events, Recording) else events)
        self.linger = linger
        self.at_end = threading.Event()
        self.restarts = 0
        self._lock = threading.RLock()  # on_event may call a control
        self._clock = PlayClock(speed, paused=paused)
        self._position = 0
        self._steps = 0
        self._wake: asyncio.Event | None = None
        self.controls = self

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ReplaySource:
        return cls(load_recording(path), **kwargs)

    # -- state, readable from any thread -------------------------------------------------

    @property
    def speed(self) -> float:
        return self._clock.speed

    @property
    def paused(self) -> bool:
        return self._clock.paused

    @property
    def position(self) -> int:
        """How many events have been emitted (the index of the next one)."""
        return self._position

    @property
    def total(self) -> int:
        return len(self.events)

    def play_time(self) -> float:
        """The race time being shown, clamped to the recording's end."""
        with self._lock:
            t = self._clock.time()
        end = self.events[-1].t if self.events else 0.0
        return min(t, end) if self._position >= len(self.events) else t

    # -- controls, callable from any thread ----------------------------------------------

    def pause(self) -> None:
        with self._lock:
            self._clock.pause()
        self._poke()

    def resume(self) -> None:
        with self._lock:
            self._clock.resume()
        self._poke()

    def toggle_pause(self) -> None:
        with self._lock:
            if self._clock.paused:
                self._clock.resume()
            else:
                self._clock.pause()
        self._poke()

    def set_speed(self, speed: float) -> None:
        with self._lock:
            self._clock.set_speed(speed)
        self._poke()

    def step(self) -> None:
        """Pause (if playing) and emit the next event now."""
        with self._lock:
            self._clock.pause()
            self._steps += 1
        self._poke()

    def restart(self) -> None:
        with self._lock:
            self._position = 0
            self._steps = 0
            self._clock.jump(0.0)
            self.restarts += 1
            self.at_end.clear()
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # loop closed meanwhile
                pass

    # -- the playing loop (on the source's thread) ---------------------------------------

    async def _main(self, on_event: OnEvent) -> None:
        self._wake = asyncio.Event()
        with self._lock:
            self._clock.jump(self._clock.anchor_t)  # playback starts now
        while True:
            self._wake.clear()
            timeout: float | None = None
            with self._lock:  # emit under the lock: a restart never interleaves
                emitted = 0
                while emitted < self.BURST:
                    if self._position >= len(self.events):
                        self.at_end.set()
                        break
                    event = self.events[self._position]
                    if self._steps:
                        self._steps -= 1
                        self._clock.jump(event.t)
                    else:
                        delay = self._clock.due(event.t) - time.monotonic()
                        if delay > 0:
                            timeout = None if math.isinf(delay) else delay
                            break
                    self._position += 1
                    emitted += 1
                    on_event(event)
                at_end = self._position >= len(self.events)
            if emitted >= self.BURST:
                await asyncio.sleep(0)
                continue
            if at_end and not self.linger:
                return
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass


def replay_source(path: str | Path, speed: float = 1.0) -> ReplaySource:
    """A ``ReplaySource`` for a recording file (raises the loader's ``RecordingError``)."""
    recording = load_recording(path)
    source = ReplaySource(recording, speed=speed)
    source.recording = RecordingStatus(str(path), events=len(recording.events), last_t=recording.duration)
    return source


__all__ = ["PlayClock", "ReplaySource", "replay_events", "replay_source"]
