"""An asyncio event loop whose timers fire on time, for the emulator.

Invariant: on Linux, a loop from ``new_precise_loop()`` wakes for a timer
within the kernel's timer slack of its due time (tens of microseconds),
where asyncio's default loop can wake up to 1 ms late: ``epoll_wait`` takes
whole milliseconds and ``selectors`` rounds the timeout up. The selector
waits on the epoll descriptor itself with ``select()`` (microsecond
timeouts; an epoll descriptor is readable when any of its descriptors has
an event), then collects the events with a zero-timeout ``epoll_wait``. It
watches the same descriptors and returns the same events as the default
selector; elsewhere (no epoll, or a descriptor number ``select()`` cannot
take) it is the default selector. It also notes when each poll returned
(``last_poll()``, per thread): bytes a poll reported were there by then, so
that time is an arrival stamp that is never early and does not wait for the
callbacks queued ahead of the reader's.
"""

from __future__ import annotations

import asyncio
import ctypes
import select
import selectors
import sys
import threading
import time
from typing import Any

PR_SET_TIMERSLACK = 29

_EPOLL = hasattr(selectors, "EpollSelector")
_Base: Any = selectors.EpollSelector if _EPOLL else selectors.DefaultSelector


_polled = threading.local()


def last_poll() -> float | None:
    """When this thread's precise loop last returned from polling for I/O
    (``time.monotonic()``); None when no precise loop runs on this thread."""
    return getattr(_polled, "t", None)


class PreciseSelector(_Base):  # type: ignore[misc, valid-type]
    """``EpollSelector`` with microsecond timeouts; notes each poll's return."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if _EPOLL and timeout is not None and timeout > 0:
            try:
                select.select([self.fileno()], [], [], timeout)
                timeout = 0
            except ValueError:  # descriptor >= FD_SETSIZE: whole-millisecond waits
                pass
        events = super().select(timeout)
        _polled.t = time.monotonic()
        return events

    def close(self) -> None:
        _polled.t = None
        super().close()


def precise_timers_available() -> bool:
    """True where ``new_precise_loop`` beats the default loop (Linux epoll)."""
    return _EPOLL and sys.platform.startswith("linux")


def new_precise_loop() -> asyncio.AbstractEventLoop:
    """A fresh event loop with precise timers where available, else the default."""
    if not precise_timers_available():
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(PreciseSelector())


def tighten_timer_slack() -> bool:
    """Ask Linux to fire this thread's timers with 1 ns of slack instead of the
    default 50 us (``prctl(PR_SET_TIMERSLACK)``). True when it worked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


__all__ = ["PreciseSelector", "last_poll", "new_precise_loop", "precise_timers_available", "tighten_timer_slack"]
