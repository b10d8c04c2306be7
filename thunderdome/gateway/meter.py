"""The gateways' measuring work, done after the bytes it measures and never long enough to hold others up.

Invariant: one ``Meter`` per event loop, shared by every gateway on it, runs
what it is given (parsing relayed bytes into events, emitting them) in the
order it was given, after the relaying that produced it, and out of its
way: it waits until the gateways' sockets have been quiet for ``QUIET_S``
(each of their callbacks calls ``touch()``), or until its oldest item has
waited ``MAX_WAIT_S``, so a burst of requests and first bytes across the
lanes is relayed before any of its measuring runs. It then runs in slices
of at most ``SLICE_S`` of work, and between two slices the loop polls and
runs the callbacks of any bytes that came in; on a race's loop a slice
also ends after the item during which bytes came in
(``PollStampSelector.pending``), so they wait behind one item at most.
Events are stamped when their bytes arrive, never when this runs: the wait
moves no figure. ``flush()`` does everything queued at once (a lane that
ends first takes in all of its events). Work that raises is logged and
dropped; the rest goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from typing import Any, Callable

log = logging.getLogger(__name__)
SLICE_S = 0.0002
"""The longest stretch of measuring between two polls (a slice ends after the item that crosses it)."""
QUIET_S = 0.0005
"""Measuring waits for the gateways' sockets to have been quiet this long..."""
MAX_WAIT_S = 0.005
"""...but no item waits longer than this (a busy race's events still flow)."""


class Meter:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: deque[tuple[Callable[..., Any], tuple[Any, ...], float]] = deque()
        self._scheduled = False
        self._last_io = 0.0
        selector = getattr(loop, "poll_stamps", None)
        self._pending: Callable[[], bool] = selector.pending if selector is not None else lambda: False
        """Whether the loop has bytes waiting (never, off a race's loop)."""

    def touch(self) -> None:
        """A gateway socket's bytes came in (its callback is running)."""
        self._last_io = time.monotonic()

    def later(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` after what was queued before it, once the gateways' sockets are quiet."""
        now = time.monotonic()
        self._items.append((fn, args, now))
        if not self._scheduled:
            self._scheduled = True
            self._wait(now)

    def flush(self) -> None:
        """Run everything queued, now."""
        while self._items:
            self._one()

    def _one(self) -> None:
        fn, args, _ = self._items.popleft()
        try:
            fn(*args)
        except Exception:
            log.exception("gateway: measuring failed")

    def _wait(self, now: float) -> None:
        """Run a slice once the sockets are quiet (or the oldest item is due)."""
        due = min(self._last_io + QUIET_S, self._items[0][2] + MAX_WAIT_S)
        if due > now:
            self.loop.call_later(due - now, self._slice)
        else:
            self.loop.call_soon(self._slice)

    def _slice(self) -> None:
        if not self._items:
            self._scheduled = False
            return
        now = time.monotonic()
        if now < self._last_io + QUIET_S and now < self._items[0][2] + MAX_WAIT_S:
            self._wait(now)  # bytes came in since this was scheduled
            return
        end = time.perf_counter() + SLICE_S
        pending = self._pending
        while self._items:
            self._one()  # one at least, so the measuring keeps up however busy the sockets are
            if not self._items:
                break
            if pending():
                # Bytes are waiting: the next poll queues their callbacks behind the
                # first hop, so the slice after the second runs after them.
                self.loop.call_soon(self.loop.call_soon, self._slice)
                return
            if time.perf_counter() >= end:
                self.loop.call_soon(self._slice)  # behind the callbacks of the next poll
                return
        self._scheduled = False


_METERS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Meter]" = weakref.WeakKeyDictionary()


def loop_meter() -> Meter:
    """The running loop's ``Meter``."""
    loop = asyncio.get_running_loop()
    meter = _METERS.get(loop)
    if meter is None:
        meter = _METERS[loop] = Meter(loop)
    return meter


__all__ = ["MAX_WAIT_S", "Meter", "QUIET_S", "SLICE_S", "loop_meter"]
