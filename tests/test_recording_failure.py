"""A recording that fails never stops the race and is never passed off as
recorded: on a real full disk (``/dev/full``, a tiny tmpfs) or a path that
cannot be opened, the race runs to its end with the same figures, the screen
and the summary say the recording is incomplete and where it stops, and the
process exits ``EXIT_FAILED`` — headless and in the TUI alike."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from _pilot import results_shown, wait_for  # type: ignore[import-not-found]

from thunderdome.core import events as ev
from thunderdome.core.errors import EXIT_FAILED, EXIT_OK
from thunderdome.core.metrics import compute_results
from thunderdome.recording.replay import load_recording
from thunderdome.sources.base import RecordingStatus
from thunderdome.sources.recorded_race import record_race
from thunderdome.core.specs import BackendSpec, TaskSpec
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen

ROOT = Path(__file__).resolve().parents[1]
TOKENS = 60
BACKENDS = "backends:\n  - {name: quick, kind: sim, profile: instant}\n  - {name: steady, kind: sim, profile: fast-local}\n"
TASK = TaskSpec(name="essay", title="essay", kind="long", user="write", max_tokens=TOKENS, timeout=60)
SPECS = [BackendSpec(name="quick", kind="sim", profile="instant"), BackendSpec(name="steady", kind="sim", profile="fast-local")]

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")


async def race_recorded_to(path: Path | str) -> tuple[dict, list[ev.Event], list[RecordingStatus], RecordingStatus | None]:
    events: list[ev.Event] = []
    statuses: list[RecordingStatus] = []
    standings, final = await record_race(
        TASK, SPECS, [events.append], record_path=path, on_recording=statuses.append, emulator="thread", time_scale=0.2
    )
    return standings.results(), events, statuses, final


def lanes_of(results: dict) -> dict[str, tuple[str, int]]:
    return {lane["name"]: (lane["status"], lane["tokens"]) for lane in results["lanes"]}


def assert_whole_race(results: dict, events: list[ev.Event]) -> None:
    """Every lane ran to its end, and the figures are those of the events."""
    assert isinstance(events[-1], ev.RaceFinished)
    assert lanes_of(results) == {"quick": ("winner", TOKENS), "steady": ("finished", TOKENS)}
    assert results == compute_results(events)


# -- record_race: the one policy ----------------------------------------------------------------


@needs_dev_full
async def test_a_race_recorded_to_a_full_disk_runs_on_and_says_nothing_was_recorded():
    results, events, statuses, final = await race_recorded_to("/dev/full")
    assert_whole_race(results, events)
    assert final is not None and not final.complete and final.final
    assert "No space left on device" in (final.error or "")
    assert (final.events, final.where()) == (0, "nothing recorded")
    assert statuses[-1] == final
    assert all(not s.complete for s in statuses)  # never once reported as recorded


async def test_a_recording_that_cannot_be_opened_leaves_the_race_running(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the recording's folder should be\n")
    results, events, statuses, final = await race_recorded_to(blocker / "race.jsonl")
    assert_whole_race(results, events)
    assert final is not None and statuses == [final]
    assert (final.error or "").startswith(f"cannot record to {blocker / 'race.jsonl'}: ")
    assert final.describe().startswith("recording incomplete (nothing recorded): cannot record to")


async def test_a_whole_recording_reports_what_it_holds(tmp_path):
    path = tmp_path / "race.jsonl"
    results, events, statuses, final = await race_recorded_to(path)
    assert_whole_race(results, events)
    recorded = load_recording(path).events
    assert final == RecordingStatus(str(path), events=len(recorded), last_t=recorded[-1].t)
    assert [e.to_dict() for e in recorded] == [e.to_dict() for e in events]
    assert statuses == [final]


# -- headless, through the command line ----------------------------------------------------


def thunderdome(tmp_path: Path, *args: str, wrap: list[str] = ()) -> subprocess.CompletedProcess[str]:
    backends = tmp_path / "backends.yaml"
    backends.write_text(BACKENDS, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    command = [*wrap, sys.executable, "-m", "thunderdome", "race", "--backends", str(backends), "--task", "long-essay",
               "--headless", "--max-tokens", str(TOKENS), "--time-scale", "0.2", "--seed", "7", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120)


def lanes(results: dict) -> dict[str, tuple]:
    return {lane["name"]: (lane["status"], lane["tokens"], lane["tokens_source"]) for lane in results["lanes"]}


@needs_dev_full
def test_headless_race_recorded_to_dev_full_says_so_and_exits_failed(tmp_path):
    failed = thunderdome(tmp_path, "--record", "/dev/full", "--json", str(tmp_path / "failed.json"))
    whole = thunderdome(tmp_path, "--record", str(tmp_path / "ok.jsonl"), "--json", str(tmp_path / "ok.json"))
    assert (failed.returncode, whole.returncode) == (EXIT_FAILED, EXIT_OK), failed.stderr
    said = " ".join(failed.stderr.split())  # rich wraps long lines
    assert "recording incomplete (nothing recorded): recording stopped: cannot write /dev/full: No space left on device" in said
    assert said.rstrip().endswith("No space left on device")  # the last thing said
    assert "recording incomplete" not in whole.stderr
    got, expected = json.loads((tmp_path / "failed.json").read_text()), json.loads((tmp_path / "ok.json").read_text())
    assert "No space left on device" in got["recording_incomplete"] and "recording_incomplete" not in expected
    assert lanes(got) == lanes(expected) == {"quick": ("winner", TOKENS, "usage"), "steady": ("finished", TOKENS, "usage")}
    assert got["winner"] == expected["winner"] == "quick"


def test_headless_race_on_a_full_tmpfs_says_where_the_recording_stops(tmp_path):
    if shutil.which("bwrap") is None:
        pytest.skip("no bubblewrap to mount a tiny tmpfs")
    disk, kept = tmp_path / "disk", tmp_path / "kept.jsonl"
    disk.mkdir()
    # 32 KiB: the header and a few hundred events fit, the race does not
    script = (f'"$@" --record {disk}/race.jsonl --json {tmp_path}/out.json; rc=$?; '
              f'cp {disk}/race.jsonl {kept}; exit $rc')
    wrap = ["bwrap", "--dev-bind", "/", "/", "--size", "32768", "--tmpfs", str(disk), "sh", "-c", script, "sh"]
    probe = subprocess.run([*wrap[:-4], "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"bwrap cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    done = thunderdome(tmp_path, "--max-tokens", "800", wrap=wrap)
    assert done.returncode == EXIT_FAILED, done.stderr
    recording = load_recording(kept)
    assert not recording.finished and recording.events, "the disk was not full before the race ended"
    where = f"stops at t={recording.events[-1].t:.2f} s after {len(recording.events)} events"
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["recording_incomplete"].startswith(f"recording incomplete ({where}): ")
    assert where in " ".join(done.stderr.split())
    assert lanes_of(out) == {"quick": ("winner", 800), "steady": ("finished", 800)}


# -- the TUI ---------------------------------------------------------------------------------




@needs_dev_full
@pytest.mark.parametrize("race_process", [True, False], ids=["child-process", "thread"])
async def test_tui_race_recorded_to_dev_full_shows_the_recording_failed(race_process):
    app = make_app(mode="race", task=TASK, specs=SPECS, recording_path="/dev/full", emulator="thread",
                   time_scale=0.2, race_process=race_process, results_delay=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        race = app.screen
        assert isinstance(race, RaceScreen)
        await wait_for(pilot, lambda: results_shown(app), "the results")
        assert any(w.startswith("recording incomplete") and "No space left on device" in w for w in race.warnings)
        note = " ".join(app.screen.query_one("#recording-note").render().plain.split())
        assert "recording /dev/full" in note
        assert "recording incomplete (nothing recorded): recording stopped: cannot write /dev/full" in note
        assert "thunderdome replay" not in note
        assert app.output_dir() == Path.cwd()  # exports and screenshots never go next to /dev/full
        assert lanes_of(app.screen.standings.results()) == {"quick": ("winner", TOKENS), "steady": ("finished", TOKENS)}
        await pilot.press("q")
    status = app.sources[0].recording
    assert status is not None and status.final and not status.complete


@needs_dev_full
def test_the_tui_ends_with_the_recording_failure_and_exits_failed(tmp_path):
    """The real command in a real terminal (tmux): the line left after the
    TUI closes says the recording is incomplete, and the exit code is
    EXIT_FAILED (what the screens say is checked through Pilot above)."""
    if shutil.which("tmux") is None:
        pytest.skip("no tmux")
    (tmp_path / "backends.yaml").write_text(BACKENDS, encoding="utf-8")
    session = f"td-rec-{uuid.uuid4().hex[:8]}"
    rc = tmp_path / "rc.txt"
    # the TUI draws on the terminal (stderr too): what it prints after closing is read off the pane
    command = (f"cd {tmp_path} && PYTHONPATH={ROOT} {sys.executable} -m thunderdome race --backends backends.yaml "
               f"--task long-essay --max-tokens {TOKENS} --time-scale 0.2 --record /dev/full; echo $? >{rc}; sleep 60")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", command], check=True)

    def pane() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

    try:
        deadline = time.monotonic() + 90
        while "RESULTS" not in pane():
            assert time.monotonic() < deadline, f"no results screen:\n{pane()}"
            time.sleep(0.3)
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        while not rc.exists() or not rc.read_text().strip():
            assert time.monotonic() < deadline, "the TUI did not exit"
            time.sleep(0.2)
        lines = [line for line in pane().splitlines() if line.strip()]
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert int(rc.read_text()) == EXIT_FAILED
    said = " ".join(" ".join(lines).split())
    assert said.startswith("thunderdome: recording incomplete (nothing recorded): ")
    assert said.endswith("cannot write /dev/full: No space left on device")
    assert "recorded /dev/full" not in said

