"""``StopSignals``: the first signal cancels the race's task, later ones are
ignored, and a signal landing while the loop closes never reaches a closed
wake-up fd (asyncio's own handlers print "Exception ignored when trying to
write to the signal wakeup fd" then: CI saw it once in the impatient-Ctrl-C
test, and the storm below gives it ~1700 times in 300 loops)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from thunderdome.core.stop_signals import StopSignals

ROOT = Path(__file__).resolve().parents[1]


def test_first_signal_cancels_the_task_and_later_ones_are_ignored() -> None:
    seen: list[str] = []

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        signals = StopSignals([signal.SIGUSR1], task.cancel)
        assert signals.install()
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                seen.append("cancelled")
            os.kill(os.getpid(), signal.SIGUSR1)  # during the clean-up: ignored
            await asyncio.sleep(0.01)
            seen.append("clean-up finished")
        finally:
            signals.uninstall()
        assert signals.stopped
        # Stopped: the process is leaving, so the signal stays ignored.
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN

    previous = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        asyncio.run(main())
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert seen == ["cancelled", "clean-up finished"]


def test_uninstall_without_a_signal_puts_everything_back() -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        signals = StopSignals([signal.SIGUSR1], task.cancel)
        assert signals.install()
        assert signal.getsignal(signal.SIGUSR1) is not mine
        signals.uninstall()
        assert not signals.stopped
        assert signal.getsignal(signal.SIGUSR1) is mine

    previous = signal.signal(signal.SIGUSR1, mine)
    old_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(old_fd)
    try:
        asyncio.run(main())
        # The wake-up fd is the one before (asyncio.run's loop set none of its own).
        assert signal.set_wakeup_fd(old_fd) == old_fd
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_not_the_main_thread_changes_nothing() -> None:
    import threading

    result: list[bool] = []

    def run() -> None:
        async def main() -> None:
            task = asyncio.current_task()
            assert task is not None
            result.append(StopSignals([signal.SIGUSR1], task.cancel).install())

        asyncio.run(main())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert result == [False]


STORM = textwrap.dedent(
    """
    import asyncio, os, signal, threading, time
    from thunderdome.core.stop_signals import StopSignals

    stop = threading.Event()

    def storm():
        while not stop.is_set():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.00005)

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=storm, daemon=True).start()
    stopped = 0
    for _ in range(300):
        async def main():
            signals = StopSignals([signal.SIGTERM], asyncio.current_task().cancel)
            signals.install()
            try:
                await asyncio.sleep(0.002 if _ % 2 else 0)
            finally:
                signals.uninstall()
        try:
            asyncio.run(main())
        except asyncio.CancelledError:
            stopped += 1
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stop.set()
    print("stopped", stopped)
    """
)


def test_a_signal_storm_while_loops_close_prints_nothing() -> None:
    """300 loops opened and closed under a storm of SIGTERMs from another
    thread: every signal lands somewhere in a loop's life, its closing
    included, and none may print to stderr or kill the process."""
    done = subprocess.run([sys.executable, "-c", STORM], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("stopped ")
    assert int(done.stdout.split()[1]) > 0, "the storm never reached a running loop"
