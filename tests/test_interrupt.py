"""Ctrl-C stops a race cleanly: exit 130, no traceback, the recording is kept
and loads (every lane ended with "race interrupted", the race finished with
reason "interrupted"), and nothing the race started is left running: no
emulator process, no arena fighters, no sandboxed command, no bwrap.

The races run as real ``python -m thunderdome race ... --headless``
subprocesses; SIGINT goes either to the process alone (``kill -INT``) or to
its whole process group, as a terminal's Ctrl-C does. The sim lanes are slow
(``rtx4090-offload``: 2 s to the first token, 8.7 tok/s) or the model's
command sleeps, so the race is surely mid-flight when the signal lands; the
tests wait on what the recording shows, never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest

from _processes import still_running_after  # type: ignore[import-not-found]
from thunderdome.core.events import LaneFailed, RaceFinished, RaceStarted, TokenDelta
from thunderdome.core.metrics import compute_results
from thunderdome.recording.replay import load_recording

ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 60.0
"""Generous bound that only protects against hangs."""

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


# --- processes ----------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0], int(fields[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _alive(pid: int) -> bool:
    """Running (a zombie has ended: it only waits to be reaped)."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def live_with(marker: str) -> list[tuple[int, str]]:
    """Live processes (not this one) whose command line holds ``marker``."""
    me = os.getpid()
    return [(pid, cmd) for pid in _pids() if pid != me and marker in (cmd := _cmdline(pid)) and _alive(pid)]


def descendants(root: int) -> dict[int, str]:
    """Live processes whose parent chain leads to ``root``: pid -> command line."""
    parent = {pid: st[1] for pid in _pids() if (st := _stat(pid)) is not None and st[0] not in ("Z", "X")}
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        nxt = [pid for pid, ppid in parent.items() if ppid in frontier and pid not in found]
        for pid in nxt:
            found[pid] = _cmdline(pid)
        frontier = nxt
    return found


def _start_time(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()[19]


# --- running the CLI ------------------------------------------------------------------------


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored; a terminal's
    # foreground race has the default action. Give the child the latter.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_race(
    tmp_path: Path, backends: str, task: str, *extra: str, sigint: Callable[[], None] = _default_sigint,
    record_it: bool = True,
) -> tuple[subprocess.Popen[str], Path]:
    path = tmp_path / "backends.yaml"
    path.write_text(backends, encoding="utf-8")
    record = tmp_path / "race.jsonl"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(path), "--task", task, "--headless",
         *(["--record", str(record)] if record_it else ["--no-record"]), "--json", str(tmp_path / "out.json"),
         *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=str(tmp_path),
        start_new_session=True,  # its own process group: a group SIGINT reaches it and its children only
        preexec_fn=sigint,
    )
    return proc, record


def recorded(record: Path) -> list[dict]:
    """The complete lines of the recording so far (it is flushed as it goes)."""
    try:
        text = record.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.split("\n")[:-1]:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def wait_for(proc: subprocess.Popen[str], what: str, check: Callable[[], bool]) -> None:
    """Poll ``check`` until it holds; fail (and stop the race) on a hang or an early exit."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not check():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"race exited ({proc.returncode}) before {what}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def interrupt(proc: subprocess.Popen[str], *, group: bool, sig: int = signal.SIGINT) -> tuple[int, str, str]:
    if group:
        os.killpg(proc.pid, sig)  # what a terminal's Ctrl-C does
    else:
        os.kill(proc.pid, sig)
    try:
        out, err = proc.communicate(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"race did not stop after SIGINT:\n{err[-3000:]}")
    return proc.returncode, out, err


def types(record: Path, kind: str) -> list[dict]:
    return [e for e in recorded(record) if e.get("type") == kind]


def assert_interrupted_recording(record: Path, lanes: list[str]) -> None:
    """The recording loads, every lane ended with ``race interrupted`` (not,
    say, "connection dropped" because a Ctrl-C also reached the emulator), the
    race finished as interrupted, and the results recompute from it."""
    rec = load_recording(record)
    assert rec.finished, rec.notices
    assert not [n for n in rec.notices if "incomplete" in n], rec.notices
    assert isinstance(rec.events[0], RaceStarted)
    last = rec.events[-1]
    assert isinstance(last, RaceFinished) and last.reason == "interrupted" and last.winner is None
    errors = {e.lane: e.reason for e in rec.events if isinstance(e, LaneFailed)}
    assert sorted(errors) == sorted(lanes)
    assert set(errors.values()) == {"race interrupted"}, errors
    results = compute_results(rec.events)
    assert {lane["name"]: lane["status"] for lane in results["lanes"]} == {name: "error" for name in lanes}
    assert results["winner"] is None


def assert_clean_exit(code: int, err: str, record: Path | None) -> None:
    assert code == 130, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    if record is None:
        assert last == "thunderdome: interrupted", err
    else:  # says where what happened was recorded
        assert last == f"thunderdome: interrupted; the race so far is recorded in {record}", err


# --- long race -----------------------------------------------------------------------------


def _long_backends(marker: str) -> str:
    return (
        "backends:\n"
        f"  - {{name: {marker}-a, kind: sim, profile: rtx4090-offload}}\n"
        f"  - {{name: {marker}-b, kind: sim, profile: dgx-spark, protocol: ollama}}\n"
        f"  - {{name: {marker}-c, kind: sim, profile: rtx4090-offload, protocol: anthropic}}\n"
    )


@pytest.mark.parametrize("group", [False, True], ids=["kill-INT", "ctrl-c-group"])
def test_sigint_mid_long_race_stops_cleanly_and_keeps_the_recording(tmp_path: Path, group: bool) -> None:
    marker = f"li{uuid.uuid4().hex[:8]}"
    lanes = [f"{marker}-a", f"{marker}-b", f"{marker}-c"]
    proc, record = start_race(tmp_path, _long_backends(marker), "long-essay")
    wait_for(proc, "the first tokens", lambda: len(types(record, "token_delta")) >= 3)
    tree = descendants(proc.pid)
    emulators = [pid for pid, cmd in tree.items() if "thunderdome.sim" in cmd]
    assert emulators, tree  # the built-in emulator runs in a child process
    code, out, err = interrupt(proc, group=group)
    assert_clean_exit(code, err, record)
    assert_interrupted_recording(record, lanes)
    rec = load_recording(record)
    assert any(isinstance(e, TokenDelta) for e in rec.events)  # the tokens got so far are kept
    assert not (tmp_path / "out.json").exists() or json.loads((tmp_path / "out.json").read_text())
    assert not still_running_after(emulators, 10), "the emulator process outlived the race"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_as_cleanly_as_ctrl_c(tmp_path: Path, sig: int) -> None:
    marker = f"lt{uuid.uuid4().hex[:8]}"
    lanes = [f"{marker}-a", f"{marker}-b", f"{marker}-c"]
    proc, record = start_race(tmp_path, _long_backends(marker), "long-essay")
    wait_for(proc, "the first tokens", lambda: len(types(record, "token_delta")) >= 3)
    code, out, err = interrupt(proc, group=False, sig=sig)
    assert_clean_exit(code, err, record)
    assert_interrupted_recording(record, lanes)




@pytest.mark.parametrize(
    "group", [False, True], ids=["kill-INT", "ctrl-c-group"]
)
def test_a_background_job_ignoring_sigint_keeps_racing(tmp_path: Path, group: bool) -> None:
    """A shell starts background jobs with SIGINT ignored (``thunderdome race
    ... &``); Thunderdome keeps that: the race runs to its end, exit 0."""
    backends = (
        "backends:\n"
        "  - {name: quick, kind: sim, profile: fast-local}\n"
        "  - {name: other, kind: sim, profile: fast-local, protocol: ollama}\n"
    )
    proc, record = start_race(tmp_path, backends, "long-essay", "--max-tokens", "60", sigint=_ignore_sigint)
    wait_for(proc, "the first tokens", lambda: len(types(record, "token_delta")) >= 3)
    (os.killpg if group else os.kill)(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "interrupted" not in err
    rec = load_recording(record)
    assert {e.lane: e.reason for e in rec.events if isinstance(e, LaneFailed)} == {}
    assert rec.finished and rec.events[-1].reason == "" and rec.events[-1].winner in ("quick", "other")
    assert json.loads((tmp_path / "out.json").read_text())["winner"] == rec.events[-1].winner


# --- Thunderdome races in the sandbox -------------------------------------------------------


@needs_bwrap
@pytest.mark.parametrize("group", [False, True], ids=["kill-INT", "ctrl-c-group"])
def test_sigint_mid_sigkill_race_leaves_no_arena(tmp_path: Path, group: bool) -> None:
    """last_standing: the arena (bwrap, its supervisor and one fighter per lane)
    is up and the slow lanes have not acted yet when Ctrl-C lands."""
    marker = f"ar{uuid.uuid4().hex[:8]}"
    lanes = [f"{marker}-a", f"{marker}-b", f"{marker}-c"]
    proc, record = start_race(tmp_path, _long_backends(marker), "sigkill")
    fighters = lambda: [p for p, cmd in live_with(marker) if cmd.startswith("fighter-")]  # noqa: E731
    wait_for(proc, "the arena's fighters", lambda: len(fighters()) == 3 and len(types(record, "request_sent")) == 3)
    tree = {pid: _start_time(pid) for pid in descendants(proc.pid)}
    assert any("bwrap" in _cmdline(pid) for pid in tree), tree
    code, out, err = interrupt(proc, group=group)
    assert_clean_exit(code, err, record)
    assert_interrupted_recording(record, lanes)
    assert live_with(marker) == [], "arena processes outlived the race"
    survivors = [pid for pid, start in tree.items() if _alive(pid) and _start_time(pid) == start]
    assert survivors == [], {pid: _cmdline(pid) for pid in survivors}


@needs_bwrap
def test_impatient_repeated_ctrl_c_still_stops_cleanly(tmp_path: Path) -> None:
    """Ctrl-C pressed again and again (to the whole group) while the race
    cleans up: the later presses must not cut the clean-up short, lose the
    recording's last events, leave the arena behind or print a traceback."""
    marker = f"rc{uuid.uuid4().hex[:8]}"
    lanes = [f"{marker}-a", f"{marker}-b", f"{marker}-c"]
    proc, record = start_race(tmp_path, _long_backends(marker), "sigkill")
    fighters = lambda: [p for p, cmd in live_with(marker) if cmd.startswith("fighter-")]  # noqa: E731
    wait_for(proc, "the arena's fighters", lambda: len(fighters()) == 3 and len(types(record, "request_sent")) == 3)
    for gap in (0.0, 0.0, 0.01, 0.03, 0.1, 0.3):
        time.sleep(gap)
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGINT)
    code, out, err = interrupt(proc, group=True) if proc.poll() is None else (proc.returncode, *proc.communicate())
    assert_clean_exit(code, err, record)
    assert_interrupted_recording(record, lanes)
    assert live_with(marker) == [], "arena processes outlived the race"


@needs_bwrap
def test_sigint_without_a_recording_says_only_interrupted(tmp_path: Path) -> None:
    marker = f"nr{uuid.uuid4().hex[:8]}"
    proc, _ = start_race(tmp_path, _long_backends(marker), "sigkill", record_it=False)
    fighters = lambda: [p for p, cmd in live_with(marker) if cmd.startswith("fighter-")]  # noqa: E731
    wait_for(proc, "the arena's fighters", lambda: len(fighters()) == 3)
    code, out, err = interrupt(proc, group=False)
    assert_clean_exit(code, err, None)
    assert live_with(marker) == [], "arena processes outlived the race"


SLEEPY_TASK = """\
name: sleepy
title: A command that takes its time
kind: thunderdome
win_rule: first_correct
user: Write done into out.txt, slowly.
checks:
  - kind: file_contains
    path: out.txt
    value: done
max_tokens: 64
timeout: 120
exec_timeout: 90
reference: |-
  ```bash
  sleep 120; echo done-{marker} > out.txt
  ```
"""


@needs_bwrap
def test_sigint_while_a_sandboxed_command_runs_kills_it(tmp_path: Path) -> None:
    """first_correct: Ctrl-C while each lane's command sleeps in its bwrap
    sandbox; the sandboxes' process trees die with the race."""
    marker = f"sb{uuid.uuid4().hex[:8]}"
    task = tmp_path / "sleepy.yaml"
    task.write_text(SLEEPY_TASK.replace("{marker}", marker), encoding="utf-8")
    backends = (
        "backends:\n"
        "  - {name: one, kind: sim, profile: instant}\n"
        "  - {name: two, kind: sim, profile: instant, protocol: anthropic}\n"
    )
    proc, record = start_race(tmp_path, backends, str(task))
    def shells() -> list[int]:  # the shell running each lane's command, inside its bwrap
        return [pid for pid, cmd in live_with(f"done-{marker}") if "bwrap" not in cmd.split(" ", 1)[0]]

    wait_for(proc, "both commands running", lambda: len(shells()) == 2)
    tree = {pid: _start_time(pid) for pid in descendants(proc.pid)}
    assert any("bwrap" in _cmdline(pid) for pid in tree), tree
    code, out, err = interrupt(proc, group=False)
    assert_clean_exit(code, err, record)
    assert_interrupted_recording(record, ["one", "two"])
    assert types(record, "exec_finished") == []  # the commands never got to finish
    assert live_with(f"done-{marker}") == [], "sandboxed commands outlived the race"
    survivors = [pid for pid, start in tree.items() if _alive(pid) and _start_time(pid) == start]
    assert survivors == [], {pid: _cmdline(pid) for pid in survivors}


# --- in process: an interrupt while the arena is still being set up ----------------------------


@needs_bwrap
async def test_cancel_during_prepare_closes_the_arena() -> None:
    """Cancelling the race while its mode is still preparing (the arena and
    its fighters exist, the start barrier has not opened) closes the arena,
    and the event stream still says what happened."""
    from thunderdome.backends import make_backend
    from thunderdome.race.arena import LastStandingRace
    from thunderdome.race.engine import Race
    from thunderdome.race.tasks import load_task
    from thunderdome.core.specs import BackendSpec

    prepared = asyncio.Event()

    class SlowToPrepare(LastStandingRace):
        async def prepare(self, race: Race) -> None:
            await super().prepare(race)
            prepared.set()
            await asyncio.Event().wait()  # still preparing when the interrupt lands

    marker = f"pp{uuid.uuid4().hex[:8]}"
    specs = [BackendSpec(name=f"{marker}-{i}", kind="openai", url="http://127.0.0.1:9/v1", model="m") for i in range(2)]
    events: list = []
    race = Race(load_task("sigkill"), [(s, make_backend(s)) for s in specs], SlowToPrepare(), [events.append])
    task = asyncio.create_task(race.run())
    await asyncio.wait_for(prepared.wait(), HANG_GUARD_S)
    deadline = time.monotonic() + HANG_GUARD_S  # each fighter execs its name a moment after the roster
    while len([cmd for _, cmd in live_with(marker) if cmd.startswith("fighter-")]) < 2:
        assert time.monotonic() < deadline, live_with(marker)
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, HANG_GUARD_S)
    assert live_with(marker) == [], "the arena outlived the cancelled race"
    assert isinstance(events[0], RaceStarted)
    assert sorted(e.lane for e in events if isinstance(e, LaneFailed)) == sorted(s.name for s in specs)
    assert {e.reason for e in events if isinstance(e, LaneFailed)} == {"race interrupted"}
    assert isinstance(events[-1], RaceFinished) and events[-1].reason == "interrupted"
