"""Where the TUI's events come from: a live race, a replay, or a fixed list.

Invariant: every source has the same small surface (``start(on_event)``,
``stop()``, ``done``, ``error``, ``recording_path``) and none of them imports
textual; the live race and the replay run on their own thread and loop
(``ThreadedSource``), so the UI never shares an event loop with a socket.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from thunderdome.events import Event, Notice
from thunderdome.race.source import OnEvent, ThreadedSource
from thunderdome.specs import BackendSpec, TaskSpec


class Source(Protocol):
    """What the race screen needs from an event source."""

    done: threading.Event
    error: str | None

    def start(self, on_event: OnEvent) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


SourceFactory = Callable[[TaskSpec, list[BackendSpec]], Source]
"""``source_factory(task, specs)`` -> a not yet started source."""


class RecordedRaceSource(ThreadedSource):
    """A live race (``run_race``) that also records itself to JSONL."""

    def __init__(
        self,
        task: TaskSpec,
        specs: list[BackendSpec],
        *,
        record_path: str | Path | None = None,
        **run_kwargs: Any,
    ) -> None:
        super().__init__()
        self.task = task
        self.specs = specs
        self.recording_path = str(record_path) if record_path else None
        self.run_kwargs = {k: v for k, v in run_kwargs.items() if v is not None}
        self.standings = None

    async def _main(self, on_event: OnEvent) -> None:
        from thunderdome.race.runner import run_race

        sinks: list[Callable[[Event], None]] = []
        recorder = None
        if self.recording_path:
            try:
                from thunderdome.record import Recorder

                recorder = Recorder(Path(self.recording_path))
                await recorder.start()
                sinks.append(recorder)
            except Exception as exc:  # a race without a recording still runs
                on_event(Notice(t=0.0, message=f"not recording: {exc}", level="warning"))
                self.recording_path, recorder = None, None
        sinks.append(on_event)
        try:
            self.standings = await run_race(self.task, self.specs, sinks, **self.run_kwargs)
        finally:
            if recorder is not None:
                await recorder.close()


class ListSource:
    """A fixed list of events handed over at once (tests, snapshots).
    ``live=True`` keeps the source open after the list (a race caught
    mid-way); otherwise it is done once the list is handed over."""

    def __init__(self, events: Iterable[Event], recording_path: str | None = None, *, live: bool = False) -> None:
        self.events = list(events)
        self.done = threading.Event()
        self.error: str | None = None
        self.recording_path = recording_path
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
        self.recording_path: str | None = None

    def start(self, on_event: OnEvent) -> None:
        self.done.set()
        raise RuntimeError(self.reason)

    def stop(self, timeout: float = 10.0) -> None:
        self.done.set()


def live_source_factory(
    *,
    record: bool | str | Path | None = True,
    time_scale: float = 1.0,
    max_tokens: int | None = None,
    seed: int | None = None,
    race_process: bool = True,
    **run_kwargs: Any,
) -> SourceFactory:
    """The default factory: a recorded live race. ``record``: True for the
    default recordings folder, a path, or None/False for no recording. A
    fixed path is used as is for the first race and numbered after that.
    ``race_process``: run the race in a child process (the default: the UI
    then cannot delay a timestamp, see benchmarks/tui_ttft_fidelity.py), or
    on a thread of this process."""
    count = 0

    def factory(task: TaskSpec, specs: list[BackendSpec]) -> Source:
        nonlocal count
        count += 1
        path: str | Path | None = None
        if record is True:
            from thunderdome.record import default_recording_path

            path = default_recording_path(task.name)
        elif record:
            base = Path(record)
            path = base if count == 1 else base.with_name(f"{base.stem}-{count}{base.suffix or '.jsonl'}")
        if race_process:
            from thunderdome.tui.process_source import process_race_source

            return process_race_source(
                task, specs, record_path=path, time_scale=time_scale, max_tokens=max_tokens, seed=seed, **run_kwargs
            )
        return RecordedRaceSource(
            task, specs, record_path=path, time_scale=time_scale, max_tokens=max_tokens, seed=seed, **run_kwargs
        )

    return factory


def replay_source(path: str | Path, speed: float = 1.0) -> Any:
    """A ``ReplaySource`` for a recording (raises the loader's error)."""
    from thunderdome.replay import ReplaySource, load_recording

    recording = load_recording(path)
    source = ReplaySource(recording, speed=speed)
    source.recording_path = str(path)
    return source
