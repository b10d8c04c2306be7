"""Garbage collection while a race is on screen.

Invariant: while at least one race is running (``racing()`` entered and not
yet left), the objects that were alive when it started are frozen out of the
collector (``gc.freeze``) and full (generation-2) passes only come after
``RACING_GEN2_THRESHOLD`` generation-1 passes instead of 10, so the UI thread
pauses for young-generation passes (a few ms), not full ones. When the last
race ends, the thresholds come back and the frozen objects are handed back to
the collector, so nothing frozen can leak past the race.

Measured without it (benchmarks/render_capacity.py, 16 lanes x 1000 tok/s at
200x60): a full pass of 70-290 ms every ~0.7 s, each a frozen screen.
"""

from __future__ import annotations

import gc

RACING_GEN2_THRESHOLD = 100
"""Generation-1 passes between full passes while racing (default 10): with
the start-up objects frozen a full pass only scans the race's own objects."""

_racing = 0
_saved: tuple[int, int, int] | None = None


def race_started() -> None:
    """A race came on screen (calls nest: one ``race_ended`` each)."""
    global _racing, _saved
    _racing += 1
    if _racing == 1:
        _saved = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(_saved[0], _saved[1], max(_saved[2], RACING_GEN2_THRESHOLD))


def race_ended() -> None:
    """The race left the screen (or finished): undo ``race_started``."""
    global _racing, _saved
    if _racing <= 0:
        return
    _racing -= 1
    if _racing == 0:
        if _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None
        gc.unfreeze()


def release_all() -> None:
    """The app is leaving: whatever is still held is given back."""
    while _racing > 0:
        race_ended()


def racing() -> bool:
    return _racing > 0
