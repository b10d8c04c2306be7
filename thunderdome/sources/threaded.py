"""A source that runs on its own thread with its own asyncio loop.

Invariant: everything a threaded source does (sockets, sleeps, timestamps)
happens on its private loop (a race loop: ``backends/poll_stamps.py``), so
token timestamps are taken where no rendering happens; the consumer only receives finished events through ``on_event``.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod

from thunderdome.backends.poll_stamps import new_race_loop
from thunderdome.sources.base import OnEvent, RecordingStatus, ReplayControls


class ThreadedSource(ABC):
    """Base: runs ``self._main(on_event)`` on a private event loop in a thread."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.error: str | None = None
        self.done = threading.Event()
        self.recording: RecordingStatus | None = None
        self.controls: ReplayControls | None = None

    def start(self, on_event: OnEvent) -> None:
        self.done.clear()
        self._thread = threading.Thread(target=self._thread_main, args=(on_event,), name=type(self).__name__, daemon=True)
        self._thread.start()

    def _thread_main(self, on_event: OnEvent) -> None:
        loop = new_race_loop()
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

    @abstractmethod
    async def _main(self, on_event: OnEvent) -> None:
        """What the source does on its loop."""

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
