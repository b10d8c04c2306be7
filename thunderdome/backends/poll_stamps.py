"""Arrival stamps taken at the poll: the loop every race runs on.

Invariant: on a loop from ``new_race_loop()``, ``PollStampSelector.arrival(fd)``
is the ``time.monotonic()`` at which a poll first returned with ``fd``
readable in the socket's latest read window — a window opens when the
socket is registered for reading and closes when it is unregistered
(anyio's ``receive`` opens one per read and closes it before returning) —
and None while that window is open or before any poll saw it. asyncio
``recv``s in the iteration of the poll that reported the socket, and under
anyio once per window (the reading task closes the window before a later
poll's callback can run), so what a read returns came off the socket right
after that poll, or in an earlier window: the stamp is never later than the
read, and never earlier than the first of the bytes it found waiting (bytes
that came in between the poll and its ``recv``, in that one loop iteration,
share it). A reader that never closes its window gets no stamp: the clock
decides. All sockets one poll reports get that poll's stamp, however long
the loop then spends on the ones handled before them: the eighth lane of a
same-instant start is stamped like the first.

Why not the loop's last poll, read when the reading task runs: asyncio
``recv``s in the iteration of the poll that reported the socket, but the
task waiting on the bytes resumes one iteration later, after another poll
and after every callback queued ahead of it — that poll can be much later
than the bytes. (The emulator stamps requests with its last poll in
``sim/precise_loop.py`` because it stamps inside ``data_received``, in the
poll's own iteration.)

``new_race_loop()`` is the one place a race's loop is made: headless
(``run_on_race_loop``), the TUI's race child process and a threaded source.
On any other loop (and on Windows, where races keep asyncio's proactor loop)
``race_selector()`` is None and the backends stamp with the clock after each
read, as they did before.
"""

from __future__ import annotations

import asyncio
import functools
import selectors
import sys
import time
from typing import Any, Callable, Coroutine, TypeVar

T = TypeVar("T")
_READ = selectors.EVENT_READ


class PollStampSelector(selectors.DefaultSelector):  # type: ignore[misc, valid-type]
    """The default selector, noting each socket's first readable poll per read window."""

    def __init__(self) -> None:
        super().__init__()
        self._reading: set[int] = set()
        """Descriptors registered for reading now (their read window is open)."""
        self._first: dict[int, float] = {}
        """Descriptor -> the first poll that reported it readable in its latest read window."""

    def _window(self, fd: int, reading: bool) -> None:
        if reading and fd not in self._reading:  # a new read window: forget the last one's stamp
            self._reading.add(fd)
            self._first.pop(fd, None)
        elif not reading:
            self._reading.discard(fd)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        self._window(key.fd, bool(events & _READ))
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().modify(fileobj, events, data)
        self._window(key.fd, bool(events & _READ))
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        self._reading.discard(key.fd)
        return key

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(timeout)
        if ready:
            polled = time.monotonic()
            first = self._first
            for key, events in ready:
                if events & _READ and key.fd not in first:
                    first[key.fd] = polled
        return ready

    def pending(self) -> bool:
        """A poll now would report something (without stamping it: the
        loop's own next poll does): work that can wait asks this to make way."""
        return bool(super().select(0))

    def arrival(self, fd: int) -> float | None:
        """The poll stamp of what a read of ``fd`` just returned (see the
        module's invariant); None when there is none to trust."""
        if fd in self._reading:
            return None
        return self._first.get(fd)

    def close(self) -> None:
        self._reading.clear()
        self._first.clear()
        super().close()


class RaceLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose selector stamps arrivals at the poll."""

    def __init__(self) -> None:
        self.poll_stamps = PollStampSelector()
        super().__init__(self.poll_stamps)


def new_race_loop() -> asyncio.AbstractEventLoop:
    """A fresh loop for a race: a ``RaceLoop``; on Windows asyncio's default
    (its proactor loop runs subprocesses; a selector loop cannot)."""
    if sys.platform == "win32":
        return asyncio.new_event_loop()
    return RaceLoop()


def run_on_race_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a fresh ``RaceLoop``."""
    with asyncio.Runner(loop_factory=new_race_loop) as runner:
        return runner.run(main)


def race_selector() -> PollStampSelector | None:
    """The running loop's poll-stamping selector; None on any other loop."""
    return getattr(asyncio.get_running_loop(), "poll_stamps", None)


def clock_origin(clock: Callable[[], float]) -> float:
    """The ``time.monotonic()`` at which ``clock`` (seconds on the monotonic
    clock since some start, as a race's clock is) reads 0: the middle of the
    narrowest of three brackets, so a poll stamp ``p`` is ``p - origin`` on
    that clock, read once per turn instead of twice per chunk."""
    width, origin = float("inf"), 0.0
    for _ in range(3):
        before = time.monotonic()
        reading = clock()
        after = time.monotonic()
        if after - before < width:
            width, origin = after - before, (before + after) / 2 - reading
    return origin


def arrival_reader(network_stream: Any) -> Callable[[], float | None] | None:
    """``arrival`` of the socket under ``network_stream`` (httpcore's
    ``network_stream`` response extension, found by its ``socket`` extra
    info), to call after each read; None off a race loop or without a socket."""
    selector = race_selector()
    if selector is None or network_stream is None:
        return None
    sock = network_stream.get_extra_info("socket")
    if sock is None:
        return None
    return functools.partial(selector.arrival, sock.fileno())


__all__ = ["PollStampSelector", "RaceLoop", "arrival_reader", "clock_origin", "new_race_loop", "race_selector", "run_on_race_loop"]
