"""Run a race and record it: the one place a recorder meets a race.

Invariant: a recording never stops a race. A recording that cannot be opened,
or that stops mid-race (disk full), becomes a ``RecordingStatus`` with an
``error``, reported through ``on_recording`` as soon as it is seen, and the
race runs on. Once the recorder is closed the final status (with where the
file ends: ``events`` is then set) is reported, whole or not.
Every way to run a race (headless, a thread of the TUI, a child process)
goes through ``record_race``, so they all report a failed recording alike.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Sequence

from thunderdome.core.events import Event
from thunderdome.core.metrics import Standings
from thunderdome.race.runner import run_race
from thunderdome.recording.record import Recorder
from thunderdome.recording.replay import recording_extent
from thunderdome.sources.base import OnEvent, OnRecording, RecordingStatus
from thunderdome.core.specs import BackendSpec, TaskSpec


class _WatchedRecorder:
    """The recorder as a sink that counts what it was given, notices at the
    next event that the recorder has stopped writing, and says so once (then
    stops feeding it)."""

    def __init__(self, recorder: Recorder, report: OnRecording) -> None:
        self.recorder = recorder
        self.report = report
        self.failed = False
        self.events = 0
        self.last_t: float | None = None

    def __call__(self, event: Event) -> None:
        if self.failed:
            return
        self.recorder(event)
        self.events += 1
        self.last_t = event.t
        if self.recorder.error is not None:
            self.failed = True
            self.report(RecordingStatus(str(self.recorder.path), error=self.recorder.error))


async def record_race(
    task: TaskSpec,
    specs: list[BackendSpec],
    sinks: Sequence[OnEvent] = (),
    *,
    record_path: str | Path | None,
    on_recording: OnRecording | None = None,
    **run_kwargs: Any,
) -> tuple[Standings, RecordingStatus | None]:
    """``run_race`` with its events also recorded to ``record_path`` (None:
    not recorded). Returns the standings and the recording's final status."""
    if record_path is None:
        return await run_race(task, specs, list(sinks), **run_kwargs), None
    path = str(record_path)

    def report(status: RecordingStatus) -> None:
        if on_recording is not None:
            on_recording(status)

    recorder = Recorder(path)
    try:
        await recorder.start()
    except OSError as exc:
        failed = RecordingStatus(path, error=f"cannot record to {path}: {exc.strerror or exc}", events=0)
        report(failed)
        return await run_race(task, specs, list(sinks), **run_kwargs), failed
    watched = _WatchedRecorder(recorder, report)
    try:
        standings = await run_race(task, specs, [watched, *sinks], **run_kwargs)
    finally:
        await recorder.close()
        if recorder.error is None:  # all it was given is on disk
            final = RecordingStatus(path, events=watched.events, last_t=watched.last_t)
        else:
            events, last_t = await asyncio.to_thread(recording_extent, path)
            final = RecordingStatus(path, error=recorder.error, events=events, last_t=last_t)
        report(final)
    return standings, final
