"""``--big`` and TUI ``--trials`` through the real entry point, in a real
terminal (tmux): ``demo --big`` and ``replay --big`` open in presenter mode,
and ``race --trials 2 --big`` runs both trials on race screens and ends on
the trials summary. Every wait is bounded; nothing asserts a duration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

FIXTURES = Path(__file__).parent / "fixtures"


class Terminal:
    """A command in its own tmux server (a private socket: no session of anyone else is touched)."""

    def __init__(self, tmp_path: Path, args: list[str], size: tuple[int, int] = (80, 24)) -> None:
        self.socket = f"td-big-{os.getpid()}-{tmp_path.name}"
        command = " ".join([sys.executable, "-m", "thunderdome", *args]) + "; sleep 60"
        subprocess.run(["tmux", "-L", self.socket, "new-session", "-d", "-s", "t", "-x", str(size[0]), "-y", str(size[1]),
                        command], check=True, cwd=tmp_path, env={**os.environ, "THUNDERDOME_RECORDINGS": str(tmp_path / "rec")})

    def screen(self) -> str:
        return subprocess.run(["tmux", "-L", self.socket, "capture-pane", "-p", "-t", "t"], capture_output=True, text=True).stdout

    def wait_for(self, *texts: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"never saw {texts} on the terminal:\n{screen}")

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "-L", self.socket, "send-keys", "-t", "t", *keys], check=True)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal(tmp_path):
    opened: list[Terminal] = []

    def open_terminal(*args: str, size: tuple[int, int] = (80, 24)) -> Terminal:
        opened.append(Terminal(tmp_path, list(args), size))
        return opened[-1]

    yield open_terminal
    for term in opened:
        term.close()


PRESENTER = ("◆ TTFT s", "tok/s", "elapsed s")
"""The presenter view's figure labels (the normal view has none of them)."""


def test_demo_big_opens_in_presenter_mode_and_b_leaves_it(terminal):
    term = terminal("demo", "--big", "--task", "long-essay", "--no-record", "--time-scale", "0.3")
    screen = term.wait_for(*PRESENTER, "dgx-spark")
    assert "leaderboard" not in screen
    term.keys("b")
    screen = term.wait_for("leaderboard")
    assert "elapsed s" not in screen
    term.keys("q")


def test_replay_big_opens_in_presenter_mode(terminal):
    term = terminal("replay", str(FIXTURES / "long-sim.jsonl"), "--big", "--speed", "8", size=(160, 48))
    term.wait_for(*PRESENTER)
    term.keys("q")


def test_race_trials_in_the_tui_end_on_the_summary(terminal, tmp_path):
    backends = tmp_path / "b.yaml"
    backends.write_text("backends:\n  - {name: quick, kind: sim, profile: instant}\n"
                        "  - {name: steady, kind: sim, profile: fast-local}\n", encoding="utf-8")
    term = terminal("race", "--backends", str(backends), "--task", "long-essay", "--trials", "2", "--big",
                    "--max-tokens", "10", "--time-scale", "0.1", size=(100, 30))
    screen = term.wait_for("long-essay · 2 trials", "median", "wins")
    assert "quick" in screen and "steady" in screen
    assert "clear: " in screen  # the clarity statement ("clear: …" or "not clear: …")
    term.keys("q")
    term.wait_for("thunderdome: recorded")  # both trials were recorded, and said so on exit
    assert len(list((tmp_path / "rec").glob("*.jsonl"))) == 2
