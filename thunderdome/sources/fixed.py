"""Sources that play no race: a fixed list of events, or a reason it could not start.

Invariant: both hand over everything synchronously in ``start`` (no thread, no
loop), so a test or a snapshot built on them is deterministic.
"""

from __future__ import annotations

import threading
from typing import Iterable

from thunderdome.core.events import Event
from thunderdome.sources.base import OnEvent, RecordingStatus, ReplayControls


class ListSource:
    """A fixed list of events handed over at once (tests, snapshots).
    ``live=True`` keeps the source open after the list (a race caught
    mid-way); otherwise it is done once the list is handed over.
    ``recording``: what the screens say of its recording (a final status:
    the race screen waits for one before the results)."""

    def __init__(self, events: Iterable[Event], recording: RecordingStatus | None = None, *, live: bool = False) -> None:
        self.events = list(events)
        self.done = threading.Event()
        self.error: str | None = None
        self.recording = recording
        self.controls: ReplayControls | None = None
        self.live = live

    def start(self, on_event: OnEvent) -> None:
        for event in self.events:
            on_event(event)
        if not self.live:
            self.done.set()

    def stop(self, timeout: float = 10.0) -> None:
        self.done.set()


class BrokenSource:
    """A source that could not be made (e.g. an unreadable recording): starting
    it fails with ``reason``, which the race screen shows as one line."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.done = threading.Event()
        self.error: str | None = reason
        self.recording: RecordingStatus | None = None
        self.controls: ReplayControls | None = None

    def start(self, on_event: OnEvent) -> None:
        self.done.set()
        raise RuntimeError(self.reason)

    def stop(self, timeout: float = 10.0) -> None:
        self.done.set()
