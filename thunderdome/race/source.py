"""Event sources that run off the UI's thread.

Invariant: a source produces events on its own thread with its own asyncio
loop, so token timestamps are taken where no rendering happens; the consumer
(the TUI) only receives finished events through ``on_event``, which must be
thread-safe and cheap (e.g. ``deque.append``). A live race and a replay are
interchangeable sources.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Callable

from thunderdome.events import Event, RaceFinished
from thunderdome.specs import BackendSpec, TaskSpec

OnEvent = Callable[[Event], None]


class ThreadedSource:
    """Base: runs ``self._main(emit)`` on a private event loop in a thread."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self.error: str | None = None
        self.done = threading.Event()

    def start(self, on_event: OnEvent) -> None:
        self.done.clear()
        self._thread = threading.Thread(target=self._thread_main, args=(on_event,), name=type(self).__name__, daemon=True)
        self._thread.start()

    def _thread_main(self, on_event: OnEvent) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._main(on_event))
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # surfaced to the UI as a one-line message
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self.done.set()

    async def _main(self, on_event: OnEvent) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the source's loop (controls: pause, speed...)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the source (a live race ends its lanes and closes sandboxes)."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)


class LiveRaceSource(ThreadedSource):
    """A live race run by ``run_race`` on its own thread."""

    def __init__(
        self,
        task: TaskSpec,
        specs: list[BackendSpec],
        *,
        extra_sinks: list[Callable[[Event], None]] | None = None,
        record_path: str | Path | None = None,
        **run_kwargs: Any,
    ) -> None:
        super().__init__()
        self.task = task
        self.specs = specs
        self.extra_sinks = list(extra_sinks or [])
        self.record_path = Path(record_path) if record_path is not None else None
        self.record_error: str | None = None
        self.run_kwargs = run_kwargs
        self.standings = None

    async def _main(self, on_event: OnEvent) -> None:
        from thunderdome.race.runner import run_race

        sinks = [*self.extra_sinks]
        recorder = None
        if self.record_path is not None:
            from thunderdome.record import Recorder

            recorder = Recorder(self.record_path)
            try:
                await recorder.start()
                sinks.append(recorder)
            except OSError as exc:  # the race still runs; the UI shows why it isn't recorded
                self.record_error = f"cannot record to {self.record_path}: {exc.strerror or exc}"
                recorder = None
        try:
            self.standings = await run_race(self.task, self.specs, [*sinks, on_event], **self.run_kwargs)
        finally:
            if recorder is not None:
                await recorder.close()
                self.record_error = recorder.error or None


def is_final(event: Event) -> bool:
    return isinstance(event, RaceFinished)
