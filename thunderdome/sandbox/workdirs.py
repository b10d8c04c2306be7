"""Sandbox work dirs, and sweeping the ones a dead Thunderdome left behind.

Invariant: every work dir is made here, named ``thunderdome-<kind>-<pid>-…``
after the process that owns it, so a dir whose owner is gone (a failed start,
a ``kill -9``) is recognised and removed at the next start; a dir whose owner
still runs is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

_NAME = re.compile(r"thunderdome-(?:[a-z]+-)?(\d+)-[A-Za-z0-9_]+")
_swept = False


def make_workdir(kind: str) -> Path:
    """A fresh private dir for one sandbox (``kind``: run, arena, probe);
    the first call in a process sweeps stale dirs first."""
    global _swept
    if not _swept:
        _swept = True
        sweep_stale()
    return Path(tempfile.mkdtemp(prefix=f"thunderdome-{kind}-{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(root: str | Path | None = None) -> list[Path]:
    """Remove work dirs under ``root`` (the temp dir) whose owning process is
    gone; returns what was removed."""
    folder = Path(root or tempfile.gettempdir())
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.fullmatch(entry.name)
        if not match or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        except OSError:
            continue
    return removed


__all__ = ["make_workdir", "sweep_stale"]
