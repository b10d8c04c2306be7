"""A live race on a thread of this process, recorded as it runs.

Invariant: the race runs through ``record_race`` on the source's own loop
(``ThreadedSource``); ``recording`` is replaced, never mutated, each time the
recording's status changes, so another thread always reads a whole status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thunderdome.core.metrics import Standings
from thunderdome.sources.base import OnEvent, RecordingStatus
from thunderdome.sources.recorded_race import record_race
from thunderdome.sources.threaded import ThreadedSource
from thunderdome.core.specs import BackendSpec, TaskSpec


class LiveSource(ThreadedSource):
    """A live race (``run_race``) on its own thread, recorded to ``record_path`` (None: not recorded)."""

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
        self.specs = list(specs)
        self.record_path = str(record_path) if record_path else None
        self.recording = RecordingStatus(self.record_path) if self.record_path else None
        self.run_kwargs = {k: v for k, v in run_kwargs.items() if v is not None}
        self.standings: Standings | None = None

    def _set_recording(self, status: RecordingStatus) -> None:
        self.recording = status

    async def _main(self, on_event: OnEvent) -> None:
        self.standings, _ = await record_race(
            self.task, self.specs, [on_event], record_path=self.record_path, on_recording=self._set_recording, **self.run_kwargs
        )
