"""Waiting for processes to end on their pidfds (a plain module, not a conftest).

A pidfd becomes readable the moment its process ends (a zombie has ended: it
only waits to be reaped), so a test waits on that event, bounded, instead of
polling ``/proc`` with sleeps.
"""

from __future__ import annotations

import os
import select
import time
from typing import Iterable


def still_running_after(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` seconds for every process in ``pids`` to end;
    the ones still running then (none if all ended in time)."""
    fds: dict[int, int] = {}
    try:
        for pid in pids:
            try:
                fds[os.pidfd_open(pid)] = pid
            except ProcessLookupError:
                pass  # ended and reaped already
        deadline = time.monotonic() + timeout
        while fds and (left := deadline - time.monotonic()) > 0:
            for fd in select.select(list(fds), [], [], left)[0]:
                os.close(fd)
                del fds[fd]
        return sorted(fds.values())
    finally:
        for fd in fds:
            os.close(fd)
