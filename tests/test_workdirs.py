"""Stale sandbox work dirs (a failed start, a ``kill -9``) are swept at the
next start; a live owner's dirs are never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

MAKE = "from thunderdome.sandbox.workdirs import make_workdir; import sys, time; d = make_workdir('run'); (d / 'f').write_text('x'); print(d, flush=True); time.sleep(120)"


def _spawn(tmp: Path) -> tuple[subprocess.Popen[str], Path]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-c", MAKE], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_a_killed_races_work_dir_is_swept_at_the_next_start_and_a_live_ones_is_kept(tmp_path):
    killed, stale = _spawn(tmp_path)
    alive, kept = _spawn(tmp_path)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)
        assert stale.is_dir() and stale.parent == tmp_path
        env = {**os.environ, "TMPDIR": str(tmp_path)}
        code = "from thunderdome.sandbox.workdirs import make_workdir; print(make_workdir('run'))"
        fresh = Path(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                    timeout=60, check=True).stdout.strip())
        assert not stale.exists()
        assert kept.is_dir() and (kept / "f").read_text() == "x"
        assert fresh.is_dir() and fresh.name.startswith("thunderdome-run-")
    finally:
        alive.kill()
        alive.wait(timeout=10)


def test_only_thunderdome_dirs_are_swept(tmp_path):
    from thunderdome.sandbox.workdirs import sweep_stale

    other = tmp_path / "thunderdome-notes"
    other.mkdir()
    lookalike = tmp_path / "thunderdome-run-999999999-abc"  # no such PID
    lookalike.mkdir()
    link_target = tmp_path / "target"
    link_target.mkdir()
    link = tmp_path / "thunderdome-run-999999998-lnk"
    link.symlink_to(link_target)
    assert sweep_stale(tmp_path) == [lookalike]
    assert other.is_dir() and link_target.is_dir() and link.is_symlink()
