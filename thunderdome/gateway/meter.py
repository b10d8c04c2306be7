"""The gateways' measuring work, done after the bytes it measures and never long enough to hold others up.

Invariant: one ``Meter`` per event loop, shared by every gateway on it, runs
what it is given (parsing relayed bytes into events, emitting them) in the
order it was given, after the relaying that produced it; it runs in slices
of at most ``SLICE_S`` of work, and between two slices the loop polls and
runs the callbacks of any bytes that came in; on a race's loop a slice
also ends after the item during which bytes came in
(``PollStampSelector.pending``), and the next one runs after their
callbacks, so an agent's request or a reply's first bytes wait behind at
most one item of another lane's measuring, however much of it is queued.
``flush()`` does everything queued at once (a lane that ends first takes
in all of its events). Work that raises is logged and dropped; the rest goes on.
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


class Meter:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._scheduled = False
        selector = getattr(loop, "poll_stamps", None)
        self._pending: Callable[[], bool] = selector.pending if selector is not None else lambda: False
        """Whether the loop has bytes waiting (never, off a race's loop)."""

    def later(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` after what was queued before it, once the bytes in hand are relayed."""
        self._items.append((fn, args))
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._slice)

    def flush(self) -> None:
        """Run everything queued, now."""
        while self._items:
            self._one()

    def _one(self) -> None:
        fn, args = self._items.popleft()
        try:
            fn(*args)
        except Exception:
            log.exception("gateway: measuring failed")

    def _slice(self) -> None:
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


__all__ = ["Meter", "SLICE_S", "loop_meter"]
