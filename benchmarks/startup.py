"""Start-up: ``thunderdome --help`` wall time and time to the TUI's first frame.

Invariant: both figures are taken on fresh processes, from just before the
process is spawned (the parent's ``time.monotonic()``) to the moment that
matters, on the same system-wide monotonic clock:

- ``--help``: the child exits (``subprocess.run`` returns); median of N.
- first frame: ``thunderdome demo --task long-essay --record <temp file>``
  (the real CLI path: argparse, config, task, app factory, live race source
  and its recording; ``--no-record`` to compare) runs in a
  pseudo-terminal with Textual's real Linux driver; a probe wrapped around
  ``App._display`` stamps the moment the first frame of the race screen has
  been written to the terminal, writes the stamp to a file and quits the
  app. The plain ``python -c pass`` start is shown beside both as the floor.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

from benchmarks.common import REPO_ROOT, Figure, add_common_args, command, log, pct, report
from benchmarks.recording import RECORD_HELP, temp_recording_path

BENCH = "startup"
HELP_GOAL_S = 0.3

_PROBE = r"""
import time
marks = {"t_main": time.monotonic()}
import json, os, sys
from thunderdome.tui import app as tui_app
from thunderdome.tui.screens.race import RaceScreen

out = os.environ["BENCH_STARTUP_OUT"]
marks["t_tui_imported"] = time.monotonic()
original = tui_app.ThunderdomeApp._display

def _display(self, screen, renderable):
    original(self, screen, renderable)
    if renderable is None:
        return
    now = time.monotonic()
    marks.setdefault("t_first_display", now)
    if isinstance(screen, RaceScreen) and "t_race_frame" not in marks:
        marks["t_race_frame"] = now
        with open(out, "w") as fh:
            json.dump(marks, fh)
        self.call_later(self.action_quit)

tui_app.ThunderdomeApp._display = _display
from thunderdome.cli import main
record = os.environ["BENCH_STARTUP_RECORD"]
code = main(["demo", "--task", "long-essay"] + (["--record", record] if record else ["--no-record"]))
marks["t_exit"] = time.monotonic()
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def time_command(argv: list[str], runs: int) -> list[float]:
    """Wall time of ``argv`` from spawn to exit, ``runs`` times."""
    env = _env()
    out = []
    for _ in range(runs):
        start = time.monotonic()
        proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO_ROOT)
        out.append(time.monotonic() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-300:]}")
    return out


def first_frame(record: bool, timeout: float = 60.0, size: tuple[int, int] = (200, 50)) -> dict[str, float]:
    """One run of the demo in a pty; seconds from spawn to its marks."""
    with temp_recording_path(record, prefix="bench-startup-") as recording:
        return _first_frame(str(recording or ""), timeout, size)


def _first_frame(recording: str, timeout: float, size: tuple[int, int]) -> dict[str, float]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    fd, out_path = tempfile.mkstemp(prefix="bench-startup-", suffix=".json")
    os.close(fd)
    env = _env()
    env.update(BENCH_STARTUP_OUT=out_path, BENCH_STARTUP_RECORD=recording, TERM="xterm-256color",
               COLUMNS=str(size[0]), LINES=str(size[1]))
    drained = threading.Event()

    def drain() -> None:  # keep the terminal's buffer empty, as a terminal would
        while True:
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
        drained.set()

    try:
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _PROBE], stdin=slave, stdout=slave, stderr=slave,
                                env=env, cwd=REPO_ROOT, start_new_session=True)
        os.close(slave)
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError("the TUI did not draw its race screen and quit in time") from None
        end = time.monotonic()
        text = Path(out_path).read_text() if os.path.getsize(out_path) else ""
        if not text:
            raise RuntimeError(f"the TUI exited {proc.returncode} without drawing the race screen")
        marks = json.loads(text)
        return {
            "main_s": marks["t_main"] - start,
            "tui_imported_s": marks["t_tui_imported"] - start,
            "first_display_s": marks["t_first_display"] - start,
            "race_frame_s": marks["t_race_frame"] - start,
            "exit_s": end - start,
        }
    finally:
        os.close(master)
        os.unlink(out_path)


def run(*, quick: bool = True, runs: int | None = None, frames: int | None = None, record: bool = True) -> list[Figure]:
    """``record``: the demo records its race to a temp file, as it does by default."""
    runs = runs or (10 if quick else 30)
    frames = frames or (3 if quick else 10)
    python = sys.executable
    log(f"[startup] thunderdome --help x{runs}, python -c pass x{runs}, TUI first frame x{frames}")
    floor = time_command([python, "-c", "pass"], runs)
    helps = time_command([python, "-m", "thunderdome", "--help"], runs)
    ff = [first_frame(record) for _ in range(frames)]
    help_med = pct(helps, 50)
    cmd = command("startup", ["--runs", str(runs), "--frames", str(frames)] + ([] if record else ["--no-record"]))
    figures = [
        Figure(BENCH, "thunderdome --help (median)", f"{help_med:.3f} s (python -c pass: {pct(floor, 50):.3f} s)",
               f"< {HELP_GOAL_S:g} s", help_med < HELP_GOAL_S, cmd,
               {"help_s": helps, "python_floor_s": floor, "median_s": help_med}),
    ]
    race = [f["race_frame_s"] for f in ff]
    figures.append(Figure(
        BENCH, "TUI first race frame (median)",
        f"{pct(race, 50):.3f} s from spawn (interpreter up {pct([f['main_s'] for f in ff], 50):.3f} s, "
        f"textual + app imported {pct([f['tui_imported_s'] for f in ff], 50):.3f} s)",
        "-", None, cmd, {"runs": ff, "median_s": pct(race, 50)},
    ))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, help="--help runs (default 10)")
    p.add_argument("--frames", type=int, help="TUI first-frame runs (default 3)")
    p.add_argument("--long", action="store_true", help="30 and 10 runs")
    p.add_argument("--no-record", dest="record", action="store_false", help=RECORD_HELP)
    add_common_args(p)
    args = p.parse_args(argv)
    report(run(quick=not args.long, runs=args.runs, frames=args.frames, record=args.record), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
