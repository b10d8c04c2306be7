"""What every event source offers, and what a recording's state is.

Invariant: a consumer (the TUI, a test) touches a source only through
``Source``: ``start(on_event)``, ``stop()``, ``done``, ``error``,
``recording`` and ``controls``. A replay's controls are typed methods on
``controls`` (``None`` for a live race), so nothing asks a source what it
happens to have. Nothing here imports textual or race code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Protocol

from thunderdome.core.events import Event
from thunderdome.core.specs import BackendSpec, TaskSpec

OnEvent = Callable[[Event], None]
"""Where a source delivers events: called on the source's own thread, so it
must be thread-safe and cheap (e.g. ``deque.append``)."""


@dataclass(frozen=True)
class RecordingStatus:
    """Where a race is recorded and whether the file holds all of it.

    ``error`` is None while the recording is whole; once set, the recording
    is incomplete. ``events`` and ``last_t`` say where the file ends; they
    are None until the recorder is closed (``final``)."""

    path: str
    error: str | None = None
    events: int | None = None
    """Events in the file (the header line not counted)."""
    last_t: float | None = None
    """Race time of the last event in the file."""

    @property
    def complete(self) -> bool:
        return self.error is None

    @property
    def final(self) -> bool:
        """The recorder is closed: this status will not change again."""
        return self.events is not None

    def where(self) -> str:
        """Where an incomplete recording stops, in a few words ("" if not final yet)."""
        if self.events is None:
            return ""
        if self.events == 0 or self.last_t is None:
            return "nothing recorded"
        return f"stops at t={self.last_t:.2f} s after {self.events} events"

    def describe(self) -> str:
        """One line for a person: the path, or why and where the recording is incomplete."""
        if self.error is None:
            return self.path
        where = self.where()
        return f"recording incomplete ({where}): {self.error}" if where else f"recording incomplete: {self.error}"


OnRecording = Callable[[RecordingStatus], None]
"""Told each time a recording's status changes (it failed, the race ended)."""


class ReplayControls(Protocol):
    """The controls of a replay, callable from any thread."""

    at_end: threading.Event
    """Set while the replay waits after its last event."""

    def play_time(self) -> float:
        """The race time being shown."""
        ...

    def read_progress(self) -> float | None:
        """While the replay is held up reading its file, the fraction read so far; else None."""
        ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def set_speed(self, speed: float) -> None: ...

    def step(self) -> None:
        """Pause (if playing) and emit the next event now."""
        ...

    def restart(self) -> None:
        """Play again from the first event."""
        ...


class Source(Protocol):
    """An event source: a live race (here or in a child process), a replay, a fixed list."""

    done: threading.Event
    """Set once the source has delivered its last event."""
    error: str | None
    """Why the source ended early, in one line (None: it did not)."""
    recording: RecordingStatus | None
    """Where its events are (or were) recorded; None: not recorded."""
    controls: ReplayControls | None
    """A replay's controls; None for a live race."""

    def start(self, on_event: OnEvent) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


SourceFactory = Callable[[TaskSpec, list[BackendSpec]], Source]
"""``source_factory(task, specs)`` -> a not yet started source. When the app
runs trials it calls ``source_factory(task, specs, seed_offset=k)`` for the
k-th (0-based) trial."""
