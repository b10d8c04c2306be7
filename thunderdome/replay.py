"""Recordings back into events: the loader and the timed replay sources.

Invariant: a replay emits exactly the recorded events, in recorded order, each
with its recorded ``t``; only *when* they are emitted depends on the speed and
the controls. Replay is just another event source, so every figure computed
from a replay equals the live race's. An event is due at
``anchor_wall + (t - anchor_t) / speed`` on the monotonic clock: sleeps are
never summed, so drift does not accumulate; pause and speed changes re-anchor.

Loading is strict about everything but the last line: an unknown format
version, a corrupt line in the middle or a file that is not a recording raises
``RecordingError`` ("FILE:LINE: problem"); an incomplete last line (a crash
mid-write) is skipped with a notice.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Sequence

from thunderdome.errors import UsageError
from thunderdome.events import EVENT_TYPES, Event, EventFormatError, RaceFinished, event_from_dict
from thunderdome.metrics import compute_results
from thunderdome.race.source import OnEvent, ThreadedSource
from thunderdome.readfile import MIB, FileRefused, open_limited
from thunderdome.record import FORMAT, VERSION

RECORDING_LIMIT = 1024 * MIB
"""The largest recording we open (a long race at 16 lanes is tens of MiB)."""
READABLE_VERSIONS = (1, VERSION)
"""Format 1 (the first release) is upgraded on load, see ``_upgrade_v1``."""


class RecordingError(UsageError):
    """A recording cannot be used. The message is one line: ``FILE:LINE: problem``."""


@dataclass
class Recording:
    """A loaded recording: its header line, its events, and what was odd about it."""

    header: dict[str, Any]
    events: list[Event]
    notices: list[str] = field(default_factory=list)
    path: str = ""

    @property
    def finished(self) -> bool:
        return any(isinstance(e, RaceFinished) for e in self.events)

    @property
    def duration(self) -> float:
        return max((e.t for e in self.events), default=0.0)


MAX_LINE = 64 * MIB
"""The longest recording line we parse (a whole race's reply in one delta is far less)."""


class RecordingStream:
    """A recording read as it is played: its header at once, its events one
    pass at a time (``events()``), so memory stays bounded however long the
    race was. ``notices`` fill up as the pass meets something odd;
    ``progress`` is the fraction of the file read so far."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.notices: list[str] = []
        self.progress = 0.0
        with self._open() as fh:
            first = fh.readline(MAX_LINE)
        if not first.strip():
            with self._open() as fh:
                if not fh.read(MAX_LINE).strip():
                    raise RecordingError(f"{self.path}:1: empty file, not a Thunderdome recording")
            raise RecordingError(f"{self.path}:1: not a Thunderdome recording (the first line is not a recording header)")
        self.header = _header(self.path, first.decode("utf-8", errors="replace"))
        self.size = max(Path(self.path).stat().st_size, 1)

    def _open(self) -> BinaryIO:
        try:
            return open_limited(self.path, RECORDING_LIMIT, "a recording")
        except FileRefused as exc:
            raise RecordingError(str(exc)) from None

    def events(self) -> Iterator[Event]:
        """One pass over the events. Raises RecordingError (``FILE:LINE:
        problem``) at a corrupt line in the middle; stops with a notice at an
        incomplete last line or a lane clock that goes backwards."""
        name, version = self.path, self.header["version"]
        self.notices.clear()
        unknown: dict[str, int] = {}
        lane_t: dict[str, float] = {}
        count, last_t, finished, read = 0, 0.0, False, 0
        with self._open() as fh:
            read += len(fh.readline(MAX_LINE))
            for lineno, raw in enumerate(iter(lambda: fh.readline(MAX_LINE), b""), start=2):
                read += len(raw)
                if count % 4096 == 0:
                    self.progress = min(read / self.size, 1.0)
                complete = raw.endswith(b"\n")
                line = raw.decode("utf-8", errors="replace")
                if not line.strip():
                    continue
                try:
                    obj = parse_json_line(line)
                except ValueError as exc:
                    if not complete and len(raw) < MAX_LINE:  # the last line never got its newline
                        self.notices.append(
                            f"{name}:{lineno}: last line is incomplete (the recording was cut off); "
                            f"replaying the {count} events before it"
                        )
                        break
                    if not complete:
                        exc = ValueError(f"a line longer than {MAX_LINE // MIB} MiB")
                    raise RecordingError(f"{name}:{lineno}: corrupt line: {exc}") from None
                if version == 1 and isinstance(obj, dict):
                    obj = _upgrade_v1(obj)
                if isinstance(obj, dict) and isinstance(obj.get("type"), str) and obj["type"] not in EVENT_TYPES:
                    unknown[obj["type"]] = unknown.get(obj["type"], 0) + 1
                    continue
                try:
                    event = event_from_dict(obj)
                except EventFormatError as exc:
                    raise RecordingError(f"{name}:{lineno}: bad event: {exc}") from None
                backwards = _goes_backwards(event, lane_t)
                if backwards:
                    self.notices.append(f"{name}:{lineno}: {backwards}; replaying the {count} events before it")
                    break
                count += 1
                last_t = max(last_t, event.t)
                finished = finished or isinstance(event, RaceFinished)
                yield event
        self.progress = 1.0
        if unknown:
            kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(unknown.items()))
            self.notices.append(f"{name}: skipped events of types this version does not know: {kinds}")
        if count and not finished:
            self.notices.append(f"{name}: the race did not finish in this recording (it stops at t={last_t:.2f} s)")


def load_recording(path: str | Path) -> Recording:
    """Read a whole recording into memory (small ones: tests, the TUI's
    results). Raises RecordingError with a ``FILE:LINE: problem`` line."""
    stream = RecordingStream(path)
    events = list(stream.events())
    return Recording(header=stream.header, events=events, notices=stream.notices, path=stream.path)


_V1_FIGHTER = re.compile(r"fighter PID (\d{1,9})")


def _upgrade_v1(obj: dict[str, Any]) -> dict[str, Any]:
    """A format-1 event as format 2 writes it: ``lane_error`` is now
    ``lane_failed``; the arena's "fighter PID N" notice is now a
    ``fighter_spawned`` event."""
    kind = obj.get("type")
    if kind == "lane_error":
        return {**obj, "type": "lane_failed"}
    if kind == "notice" and obj.get("lane") and isinstance(obj.get("message"), str):
        match = _V1_FIGHTER.fullmatch(obj["message"])
        if match:
            return {"type": "fighter_spawned", "t": obj.get("t"), "lane": obj["lane"], "pid": int(match.group(1))}
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json_line(line: str) -> Any:
    """One JSON line of a recording. Raises ValueError with a short reason for
    anything ``json.loads`` refuses, nests too deep to parse, holds an integer
    too long to convert, or spells ``NaN``/``Infinity``."""
    try:
        return json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise ValueError("not JSON this reader accepts (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"not JSON this reader accepts ({str(exc).split(':')[0]})") from None


def _goes_backwards(event: Event, lane_t: dict[str, float]) -> str:
    """Why ``event`` cannot follow the events before it (its lane's clock
    went backwards), or ''."""
    lane = getattr(event, "lane", "")
    if not lane:
        return ""
    before = lane_t.get(lane)
    if before is not None and event.t < before:
        return f"lane {lane!r}: t goes backwards ({event.t:g} s after {before:g} s)"
    lane_t[lane] = event.t
    return ""


def _header(name: str, line: str) -> dict[str, Any]:
    not_ours = f"{name}:1: not a Thunderdome recording (the first line is not a recording header)"
    try:
        header = parse_json_line(line)
    except ValueError:
        raise RecordingError(not_ours) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise RecordingError(not_ours)
    version = header.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise RecordingError(
            f"{name}:1: recording format version {version!r} is not supported "
            f"(this thunderdome reads versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    return header


def replay_results(path: str | Path) -> dict[str, Any]:
    """The ``--json`` results dict of a recorded race (computed from its events)."""
    return compute_results(load_recording(path).events)


# --- timing --------------------------------------------------------------------------------


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

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> "ReplaySource":
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


__all__ = [
    "PlayClock",
    "Recording",
    "RecordingError",
    "ReplaySource",
    "load_recording",
    "replay_events",
    "replay_results",
]
