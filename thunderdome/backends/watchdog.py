"""The turn's deadlines, kept by one timer per turn instead of one per read.

Invariant: a read is cut exactly when today's budget for it runs out — the
first token must come within ``first_token`` of the turn's start, the whole
turn within ``total``, and once tokens flow every wait for bytes within
``idle`` of that wait's start — and then it ends with the same one-line reason
(``no token within 60 s``, ``no bytes for 30 s after 12 tokens``, ``turn
exceeded 600 s``). Outside a read nothing is ever cut: a deadline that passes
while the stream's consumer holds an event is reported when the next read
begins. A cancellation that did not come from the watchdog passes through
untouched.

Per read the cost is a clock read, the current task and a few attribute
stores (an ``asyncio.timeout`` per read cost ~10x that); the single
``loop.call_at`` timer re-arms itself only when it fires early (bytes arrived
since it was set), i.e. about once per idle period, not once per chunk.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from thunderdome.backends.base import BackendError
from thunderdome.backends.errors import secs
from thunderdome.core.specs import Timeouts


def first_token_reason(timeouts: Timeouts) -> str:
    """The reason a turn ends when its first token is late: ``no token within 60 s``."""
    return f"no token within {secs(timeouts.first_token)} s"


def budget(timeouts: Timeouts, start: float, now: float, tokens: int, wait_start: float) -> tuple[float, str]:
    """Seconds left for the wait that began at ``wait_start``, and the reason if
    it runs out (all times on the loop clock; ``start``: the turn's start)."""
    left, reason = start + timeouts.total - now, f"turn exceeded {secs(timeouts.total)} s"
    if tokens == 0:
        first = start + timeouts.first_token - now
        if first < left:
            left, reason = first, first_token_reason(timeouts)
    else:
        idle = wait_start + timeouts.idle - now
        if idle < left:
            left, reason = idle, f"no bytes for {secs(timeouts.idle)} s after {tokens} tokens"
    return left, reason


class TurnTimer:
    """The watchdog of one turn. Use it around every wait::

        timer.begin(tokens)          # raises BackendError if already over budget
        try:
            chunk = await read()
        except asyncio.CancelledError:
            timer.end()
            reason = timer.expired()  # ours? then a timeout, else re-raise
            ...
        timer.end()

    ``tokens()`` reports the non-empty deltas seen so far (it decides whether
    the first-token or the idle rule applies). ``close()`` when the turn ends.
    """

    __slots__ = ("timeouts", "start", "_loop", "_tokens", "_handle", "_task", "_wait_start", "_stale",
                 "_idle_mode", "_reason", "_cancelling")

    def __init__(self, timeouts: Timeouts, tokens: Callable[[], int], loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.timeouts = timeouts
        self._loop = loop or asyncio.get_running_loop()
        self.start = self._loop.time()
        self._tokens = tokens
        self._task: asyncio.Task | None = None
        self._wait_start = self.start
        self._stale = False
        """The timer fired between reads with the budget spent: the next
        ``begin`` re-checks (a new wait restarts the idle clock)."""
        self._idle_mode = False
        self._reason: str | None = None
        self._cancelling = 0
        left, _ = budget(timeouts, self.start, self.start, 0, self.start)
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(self.start + max(left, 0.0), self._fire)

    def budget(self, now: float, tokens: int) -> tuple[float, str]:
        """Seconds left for a wait starting at ``now``, and its reason."""
        return budget(self.timeouts, self.start, now, tokens, now)

    def begin(self, tokens: int) -> None:
        """A wait starts now. Raises BackendError if its budget is already spent."""
        now = self._loop.time()
        self._wait_start = now
        if self._stale or (tokens and not self._idle_mode):
            self._stale = False
            self._idle_mode = tokens > 0
            left, reason = budget(self.timeouts, self.start, now, tokens, now)
            if left <= 0:
                raise BackendError(reason)
            self._arm(now + left)  # the idle rule can be earlier than the first-token one
        task = self._task = asyncio.current_task()
        if task is not None:
            self._cancelling = task.cancelling()

    def end(self) -> None:
        """The wait is over (got data, or an exception)."""
        self._task = None

    def expired(self) -> str | None:
        """After a CancelledError in a wait: the timeout reason if the watchdog
        cancelled it (and no one else did), else None (re-raise)."""
        reason, self._reason = self._reason, None
        if reason is None:
            return None
        task = asyncio.current_task()
        if task is not None and task.uncancel() > self._cancelling:
            return None  # cancelled from outside as well: that wins
        return reason

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._task = None

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        now = self._loop.time()
        left, reason = budget(self.timeouts, self.start, now, self._tokens(), self._wait_start)
        if left > 0:
            self._handle = self._loop.call_at(now + left, self._fire)
            return
        task = self._task
        if task is None or task.done():
            self._stale = True  # between reads: the next begin() decides
            return
        if task.cancelling() > self._cancelling:
            self._stale = True  # already cancelled from outside during this read: that wins
            return
        self._reason = reason
        task.cancel()


__all__ = ["TurnTimer", "budget", "first_token_reason"]
