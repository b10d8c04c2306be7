"""A recording played back as an event source, with its controls.

Invariant: a replay emits exactly the recorded events, in recorded order, each
with its recorded ``t``, then one ``Notice`` per thing the loader found odd
(a cut last line, a corrupt line: where the replay stops); only *when* they
are emitted depends on the speed and the controls. Replay is just another
event source, so every figure computed from a replay equals the live race's.
An event is due at ``anchor_wall + (t - anchor_t) / speed`` on the monotonic
clock: sleeps are never summed, so drift does not accumulate; pause and speed
changes re-anchor. A file is played as it is read (``ReadAhead``): the source
never holds more than ``window`` events, however long the race was.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from thunderdome.core.events import Event, Notice
from thunderdome.core.redact import redact
from thunderdome.recording.replay import Recording, RecordingStream
from thunderdome.sources.base import OnEvent, RecordingStatus
from thunderdome.sources.threaded import ThreadedSource
from thunderdome.core.visible import visible_line


def _check_speed(speed: float) -> float:
    speed = float(speed)
    if not speed > 0 or math.isnan(speed) or math.isinf(speed):
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


class ReadAhead:
    """One pass over a recording, read on a thread of its own into a buffer
    that never holds more than ``window`` events. The player ``peek``s and
    ``pop``s without waiting; ``on_ready`` is called (on the reading thread)
    each time events were added or the pass ended; ``close`` abandons it."""

    def __init__(self, events: Iterator[Event], *, window: int, batch: int, on_ready: Callable[[], None]) -> None:
        self.window = max(int(window), 1)
        self.batch = min(max(int(batch), 1), self.window)
        self.read_all = False
        """The pass is read whole (its events may still wait in the buffer)."""
        self.failure: str | None = None
        """Why the pass stopped early (``FILE:LINE: problem``), or None."""
        self.peak = 0
        """The most events the buffer ever held (never more than ``window``)."""
        self._events = events
        self._on_ready = on_ready
        self._buffer: deque[Event] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="ReplayReader", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._buffer)

    @property
    def ended(self) -> bool:
        """Read whole and played whole."""
        return self.read_all and not self._buffer

    def peek(self) -> Event | None:
        buffer = self._buffer
        return buffer[0] if buffer else None

    def pop(self) -> None:
        with self._cond:
            self._buffer.popleft()
            if len(self._buffer) + self.batch <= self.window:
                self._cond.notify()

    def close(self, timeout: float = 1.0) -> None:
        """Abandon the pass; the reader ends after at most one batch (waited for up to ``timeout``)."""
        with self._cond:
            self._closed = True
            self._buffer.clear()
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _read(self) -> None:
        batch: list[Event] = []
        try:
            for event in self._events:
                batch.append(event)
                if len(batch) >= self.batch:
                    if not self._hand_over(batch):
                        return
                    batch = []
        except Exception as exc:  # a corrupt line, a file gone: the replay stops there
            self.failure = str(exc) or type(exc).__name__
        finally:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        self._hand_over(batch, last=True)

    def _hand_over(self, batch: list[Event], *, last: bool = False) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: self._closed or len(self._buffer) + len(batch) <= self.window)
            if self._closed:
                return False
            self._buffer.extend(batch)
            self.peak = max(self.peak, len(self._buffer))
            self.read_all = last
        self._on_ready()
        return True


class ReplaySource(ThreadedSource):
    """A recording played on its own thread, as it is read, with controls
    callable from any thread. Events go to ``on_event`` on the source's
    thread, like a live race.

    After the last event it waits (``at_end`` is set) for ``restart()`` or
    ``stop()``, unless ``linger=False``, in which case it ends. ``restart()``
    plays again from the first event (a new pass over the file; a
    ``RaceStarted``: consumers reset on it); the paused state is kept. A pass
    that stops at a corrupt line emits the events before it, then an error
    ``Notice`` (also in ``error``), and waits at its end like any other."""

    BURST = 512
    """Most events emitted in one go before the loop yields."""
    WINDOW = 8192
    """Most events read ahead of the one being played."""
    BATCH = 256
    """Events read between two hand-overs to the player."""
    HELD_UP = 1.0
    """Seconds after the player last waited for the file during which ``read_progress`` reports."""

    def __init__(
        self,
        recording: RecordingStream | Recording | Sequence[Event],
        *,
        speed: float = 1.0,
        paused: bool = False,
        linger: bool = True,
        window: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(recording, RecordingStream):
            self.stream: RecordingStream | None = recording
            self._passes: Callable[[], Iterator[Event]] = self._stream_pass
        else:
            events = list(recording.events if isinstance(recording, Recording) else recording)
            self.stream = None
            self._passes = lambda: iter(events)
        self.window = window or self.WINDOW
        self.linger = linger
        self.at_end = threading.Event()
        self.restarts = 0
        self._peak = 0
        self._lock = threading.RLock()  # on_event may call a control
        self._clock = PlayClock(speed, paused=paused)
        self._position = 0
        self._last_t = 0.0
        self._steps = 0
        self._held_up_at = -math.inf
        self._pass: ReadAhead | None = None
        self._wake: asyncio.Event | None = None
        self.controls = self

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ReplaySource:
        return cls(RecordingStream(path), **kwargs)

    def _stream_pass(self) -> Iterator[Event]:
        """The file's events, then its notices (as warnings, shown as one line each)."""
        assert self.stream is not None
        last_t = 0.0
        for event in self.stream.events():
            last_t = event.t
            yield event
        for notice in list(self.stream.notices):
            yield Notice(t=last_t, message=visible_line(redact(notice)), level="warning")

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
    def buffered(self) -> int:
        """Events read ahead and not yet played."""
        reader = self._pass
        return len(reader) if reader is not None else 0

    @property
    def peak_buffered(self) -> int:
        """The most events any pass held read ahead (never more than ``window``)."""
        reader = self._pass
        return max(self._peak, reader.peak if reader is not None else 0)

    def play_time(self) -> float:
        """The race time being shown, clamped to the recording's end."""
        with self._lock:
            t = self._clock.time()
        return min(t, self._last_t) if self.at_end.is_set() else t

    def read_progress(self) -> float | None:
        """While the replay is held up reading its file, the fraction read so far; else None."""
        reader, stream = self._pass, self.stream
        if stream is None or reader is None or reader.read_all:
            return None
        return stream.progress if time.monotonic() - self._held_up_at < self.HELD_UP else None

    # -- controls, callable from any thread ----------------------------------------------

    def pause(self) -> None:
        with self._lock:
            self._clock.pause()
        self._poke()

    def resume(self) -> None:
        with self._lock:
            self._clock.resume()
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
            self._last_t = 0.0
            self._steps = 0
            self._clock.jump(0.0)
            self.restarts += 1
            self.error = None
            self.at_end.clear()
            if self._pass is not None:
                self._begin_pass()
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # loop closed meanwhile
                pass

    # -- the playing loop (on the source's thread) ---------------------------------------

    def _begin_pass(self) -> None:
        """A new pass over the recording (the old one, if any, is abandoned first)."""
        if self._pass is not None:
            self._pass.close()
            self._peak = max(self._peak, self._pass.peak)
        self._pass = ReadAhead(self._passes(), window=self.window, batch=self.BATCH, on_ready=self._poke)

    def _reached_end(self, reader: ReadAhead, on_event: OnEvent) -> None:
        """The pass is played whole: say where a broken file stopped, and what the file holds."""
        if reader.failure is not None and self.error is None:
            self.error = visible_line(redact(reader.failure))
            on_event(Notice(t=self._last_t, message=self.error, level="error"))
        if self.stream is not None and (self.recording is None or not self.recording.final):
            self.recording = RecordingStatus(self.stream.path, events=self._position, last_t=self._last_t)
        self.at_end.set()

    async def _main(self, on_event: OnEvent) -> None:
        self._wake = asyncio.Event()
        with self._lock:
            self._clock.jump(self._clock.anchor_t)  # playback starts now
            self._begin_pass()
        try:
            await self._play(on_event)
        finally:
            with self._lock:
                if self._pass is not None:
                    self._pass.close()

    async def _play(self, on_event: OnEvent) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            timeout: float | None = None
            with self._lock:  # emit under the lock: a restart never interleaves
                reader = self._pass
                assert reader is not None
                emitted = 0
                while emitted < self.BURST and not self.at_end.is_set():
                    event = reader.peek()
                    if event is None:
                        if reader.read_all:
                            self._reached_end(reader, on_event)
                        else:
                            self._held_up_at = time.monotonic()  # the file is read slower than played
                        break
                    if self._steps:
                        self._steps -= 1
                        self._clock.jump(event.t)
                    else:
                        delay = self._clock.due(event.t) - time.monotonic()
                        if delay > 0:
                            timeout = None if math.isinf(delay) else delay
                            break
                    reader.pop()
                    self._position += 1
                    self._last_t = event.t
                    emitted += 1
                    on_event(event)
                at_end = self.at_end.is_set()
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
    """A ``ReplaySource`` playing a recording file as it reads it (raises the
    loader's ``RecordingError`` for a bad header; a bad line later is shown
    where the replay meets it). Its ``recording`` is final once the file was
    played through."""
    source = ReplaySource(RecordingStream(path), speed=speed)
    source.recording = RecordingStatus(str(path))
    return source


__all__ = ["PlayClock", "ReadAhead", "ReplaySource", "replay_source"]
