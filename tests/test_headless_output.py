"""Headless output as a shell user meets it: in a pipe, a plain line per lane
moment (first token, finish, error) while the race runs; on a terminal, the
live table really draws (checked in tmux). Results (the summary, ``--json -``)
go to stdout, the chatter (moments, live table, warnings) to stderr."""

from __future__ import annotations

import json
import os
import re
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
    lines = result.stderr.splitlines()  # the moments are chatter: stderr; the summary is the result: stdout
    first = next(i for i, line in enumerate(lines) if "quick  first token (TTFT" in line)
    done = next(i for i, line in enumerate(lines) if "quick  finished: length (30 tokens)" in line)
    failed = next(i for i, line in enumerate(lines) if "broken  error: HTTP 500" in line)
    assert first < done
    assert "🏆 winner: quick" in result.stdout and "🏆" not in result.stderr and failed >= 0


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_on_a_terminal_the_live_table_draws_while_racing(tmp_path):
    backends = tmp_path / "b.yaml"
    backends.write_text("backends:\n  - {name: slowpoke, kind: sim, profile: rtx4090-offload}\n", encoding="utf-8")
    session = f"td-live-{os.getpid()}"
    command = (f"{sys.executable} -m thunderdome race --backends {backends} --task long-essay --headless "
               f"--no-record --max-tokens 400 --time-scale 0.25; sleep 30")
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
        while time.monotonic() < deadline + 60 and "winner:" not in screen:  # then the summary replaces it
            time.sleep(0.5)
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
        assert "winner: slowpoke" in screen and "STREAMING" not in screen, screen
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
    shown = result.stdout + result.stderr
    assert "end_turn" not in shown and "finish:" not in shown
    assert all(f"on-{p}" in result.stdout for p in ("openai", "ollama", "anthropic"))


MOMENT = re.compile(r"^\s*\d+\.\d{3} s  \S")
"""A moment line (first token, finish, elimination, error) as a pipe gets it."""


def test_demo_results_go_to_the_file_and_only_chatter_to_stderr(tmp_path):
    """``thunderdome demo --headless --task sigkill > out.txt``: the summary
    is in out.txt; stderr holds the race's moment lines and nothing else."""
    out = tmp_path / "out.txt"
    with out.open("w", encoding="utf-8") as stdout:
        result = subprocess.run(
            [sys.executable, "-m", "thunderdome", "demo", "--headless", "--task", "sigkill", "--no-record"],
            stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, env={**os.environ, "COLUMNS": "100"},
        )
    assert result.returncode == 0, result.stderr
    summary = out.read_text(encoding="utf-8")
    assert "🏆 winner:" in summary and "sigkill · thunderdome" in summary
    assert all(name in summary for name in ("cloud", "dgx-spark", "rtx4090-offload"))
    chatter = [line for line in result.stderr.splitlines() if line.strip()]
    assert chatter, "the moments of the race are shown while it runs"
    stray = [line for line in chatter if not (MOMENT.match(line) or line.startswith("⚠ sandbox isolation"))]
    assert stray == [], stray
    assert "🏆" not in result.stderr  # the summary's winner line is a result; "★ winner" is a moment


def test_json_on_stdout_stays_whole_and_the_summary_moves_to_stderr(tmp_path):
    backends = tmp_path / "b.yaml"
    backends.write_text(BACKENDS, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends), "--task", "long-essay",
         "--headless", "--no-record", "--max-tokens", "10", "--json", "-"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["winner"] == "quick"
    assert "🏆 winner: quick" in result.stderr
