"""Headless output as a shell user meets it: in a pipe, a plain line per lane
moment (first token, finish, error) while the race runs; on a terminal, the
live table really draws (checked in tmux)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

BACKENDS = (
    "backends:\n"
    "  - {name: quick, kind: sim, profile: instant}\n"
    "  - {name: broken, kind: sim, profile: instant, options: {fault: http_500}}\n"
)


def test_a_piped_headless_race_prints_each_lane_moment(tmp_path):
    backends = tmp_path / "b.yaml"
    backends.write_text(BACKENDS, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends), "--task", "long-essay",
         "--headless", "--no-record", "--max-tokens", "30"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if "quick  first token (TTFT" in line)
    done = next(i for i, line in enumerate(lines) if "quick  finished: length (30 tokens)" in line)
    failed = next(i for i, line in enumerate(lines) if "broken  error: HTTP 500" in line)
    summary = next(i for i, line in enumerate(lines) if "winner: quick" in line)
    assert first < done < summary and failed < summary


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_on_a_terminal_the_live_table_draws_while_racing(tmp_path):
    backends = tmp_path / "b.yaml"
    backends.write_text("backends:\n  - {name: slowpoke, kind: sim, profile: rtx4090-offload}\n", encoding="utf-8")
    session = f"td-live-{os.getpid()}"
    command = (f"{sys.executable} -m thunderdome race --backends {backends} --task long-essay --headless "
               f"--no-record --max-tokens 400; sleep 30")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30", command], check=True,
                   cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        screen = ""
        while time.monotonic() < deadline:  # bounded wait for the table to appear mid-race
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
            if "slowpoke" in screen and "STREAMING" in screen:
                break
            time.sleep(0.2)
        assert "slowpoke" in screen and "STREAMING" in screen, screen
        assert "winner" not in screen  # still racing: the table drew before the end
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_a_natural_finish_carries_no_note_in_any_protocol(tmp_path):
    backends = tmp_path / "b.yaml"
    backends.write_text(
        "backends:\n" + "".join(f"  - {{name: on-{p}, kind: sim, profile: instant, protocol: {p}}}\n"
                                for p in ("openai", "ollama", "anthropic")),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends), "--task", "hello-file",
         "--headless", "--no-record"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "160"},
    )
    assert result.returncode == 0, result.stderr
    assert "end_turn" not in result.stderr and "finish:" not in result.stderr
    assert all(f"on-{p}" in result.stderr for p in ("openai", "ollama", "anthropic"))
