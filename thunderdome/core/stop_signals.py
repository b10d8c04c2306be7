"""Ctrl-C, SIGTERM and SIGHUP as one clean stop for a process on an asyncio loop.

The first of them calls the stop (a race cancels its task, the emulator ends
its serving); every later one is ignored, so an impatient second Ctrl-C
cannot cut the clean-up short. ``StopSignals`` owns
its wake-up socket pair and puts every handler back (later signals ignored,
once stopped) *before* the loop closes. asyncio's ``loop.add_signal_handler``
cannot promise that: ``loop.close()`` closes its self-pipe first and removes
the handlers after, so a signal landing in between makes Python print
"Exception ignored when trying to write to the signal wakeup fd" with a
traceback on the user's terminal.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any


class StopSignals:
    """``install()`` on the running loop, ``uninstall()`` before it closes
    (``try``/``finally`` in the loop's main task). ``on_stop`` runs on the
    loop, once."""

    def __init__(self, signals: Iterable[signal.Signals], on_stop: Callable[[], object]) -> None:
        self.stopped = False
        """True once a signal has asked to stop."""
        self._on_stop = on_stop
        self._signals = list(signals)
        self._previous: dict[signal.Signals, Any] = {}
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._old_wakeup_fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> bool:
        """Handle the signals on the running loop. False, with
        nothing changed, where signals cannot be handled here (not the main
        thread, or a platform without ``set_wakeup_fd`` on sockets)."""
        loop = asyncio.get_running_loop()
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        try:
            self._old_wakeup_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError):
            reader.close()
            writer.close()
            return False
        self._wake, self._loop = (reader, writer), loop
        # The wake-up byte only ends the loop's poll, so Python runs the handler below.
        loop.add_reader(reader.fileno(), self._drain)
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return True

    def _drain(self) -> None:
        assert self._wake is not None
        try:
            while self._wake[0].recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between bytecodes, the loop still open
        # (``uninstall`` replaces it before the loop closes).
        if self.stopped or self._loop is None:
            return
        self.stopped = True
        self._loop.call_soon_threadsafe(self._on_stop)

    def uninstall(self) -> None:
        """Put the handlers back (ignore the signals if one stopped the race:
        the process is leaving), then the wake-up fd, then close the pair."""
        for sig, previous in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if self.stopped else previous)
        self._previous.clear()
        if self._wake is None:
            return
        signal.set_wakeup_fd(self._old_wakeup_fd)
        assert self._loop is not None
        self._loop.remove_reader(self._wake[0].fileno())
        for sock in self._wake:
            sock.close()
        self._wake = None


__all__ = ["StopSignals"]
