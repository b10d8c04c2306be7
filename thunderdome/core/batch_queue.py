"""A queue a busy thread fills one item at a time and another thread drains in batches.

Invariant: ``put`` costs the producer (the loop that stamps tokens) one
``deque.append`` and, only when the consumer sleeps with nothing to do, one
wake-up; it never blocks and never raises. The consumer (``batches()``, on
its own thread) takes everything queued at once, after letting a burst
gather for up to ``gather_s``, so it wakes, takes the GIL and does its work
once per burst, not once per item. After ``close()`` it yields what is left
and stops.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class BatchQueue(Generic[T]):
    """Items in, batches out; ``gather_s``: how long a burst may gather."""

    def __init__(self, gather_s: float) -> None:
        self.gather_s = gather_s
        self._queue: deque[T] = deque()
        self._wake = threading.Event()
        self._idle = False
        self.closed = False

    def put(self, item: T) -> None:
        """Queue ``item`` (any thread); wake the consumer if it sleeps."""
        self._queue.append(item)
        if self._idle:
            self._idle = False
            self._wake.set()

    def close(self) -> None:
        """No more items: the consumer drains what is queued, then stops."""
        self.closed = True
        self._wake.set()

    def batches(self) -> Iterator[list[T]]:
        """The consumer's side: every item, in order, in batches, until closed."""
        queue, wake = self._queue, self._wake
        while True:
            if not queue:
                if self.closed:
                    return
                self._idle = True
                if queue or self.closed:  # arrived while announcing: no wake-up will come
                    self._idle = False
                    continue
                wake.wait()
                wake.clear()
                continue
            if not self.closed:
                wake.wait(self.gather_s)  # let a burst gather into one batch
            yield [queue.popleft() for _ in range(len(queue))]
