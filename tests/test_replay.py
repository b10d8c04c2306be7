"""Replay: a recording loads strictly (but forgives a cut-off last line), and
replaying it gives exactly the live race's results; the threaded source obeys
pause / step / speed / restart."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
import time
from pathlib import Path

import pytest

from thunderdome.core.events import (
    FighterSpawned,
    LaneFailed,
    LaneFinished,
    Notice,
    RaceFinished,
    RaceStarted,
    RequestSent,
    TokenDelta,
)
from thunderdome.core.metrics import Standings, compute_results
from thunderdome.race.runner import collect, run_race
from thunderdome.recording.record import FORMAT, Recorder
from thunderdome.core.redact import SECRET_SUFFIXES
from thunderdome.recording.replay import Recording, RecordingError, load_recording, replay_results
from thunderdome.sources.replay import PlayClock, ReplaySource
from thunderdome.core.specs import BackendSpec, TaskSpec

LONG = TaskSpec(name="t", title="t", kind="long", user="write", max_tokens=50, timeout=30)
WAIT = 20.0  # generous bound against hangs; never a timing assertion


def sim(name: str, profile: str, protocol: str = "openai", **options) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", model=profile, profile=profile, protocol=protocol, options=options)


async def record_race(path: Path, task: TaskSpec, specs: list[BackendSpec]) -> tuple[list, dict]:
    live: list = []
    async with Recorder(path) as rec:
        standings = await run_race(task, specs, sinks=[collect(live), rec], emulator="thread")
    return live, standings.results()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, list, dict]:
    """One real sim race with a reasoning lane, an error lane and three protocols."""
    path = tmp_path_factory.mktemp("replay") / "long.jsonl"
    specs = [
        sim("quick", "instant"),
        sim("thinker", "thinker", "ollama", tokens=30),
        sim("broken", "instant", "anthropic", fault="drop_mid", fault_at=6),
    ]
    with pytest.MonkeyPatch.context() as mp:  # no secret-looking variables: file == live events
        for name in list(os.environ):
            if name.upper().endswith(SECRET_SUFFIXES):
                mp.delenv(name)
        live, results = asyncio.run(record_race(path, LONG, specs))
    return path, live, results


# --- live == replay ---------------------------------------------------------------------


def test_replayed_long_race_results_equal_the_live_results(recorded):
    path, live, results = recorded
    replayed = replay_results(path)
    assert replayed == results  # every metric field, exactly
    lanes = {lane["name"]: lane for lane in replayed["lanes"]}
    assert lanes["broken"]["status"] == "error" and lanes["quick"]["tokens"] > 10
    assert lanes["thinker"]["ttfa_s"] > lanes["thinker"]["ttft_s"]  # reasoning first
    assert replayed["winner"] == "quick"


def test_a_timed_replay_emits_the_recorded_events(recorded):
    path, live, results = recorded
    out: list = []
    source = ReplaySource.from_file(path, speed=50.0, linger=False)
    source.start(out.append)
    assert source.done.wait(WAIT) and source.error is None
    assert out == live
    assert compute_results(out) == results


async def test_thunderdome_race_replays_to_the_same_results(tmp_path):
    from thunderdome.race.tasks import load_task

    task = dataclasses.replace(load_task("hello-file"), race_on=True)  # the loser races on to its elimination
    specs = [sim("right", "instant"), sim("wrong", "instant", "ollama", wrong_rate=1.0)]
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.upper().endswith(SECRET_SUFFIXES):
                mp.delenv(name)
        live, results = await record_race(tmp_path / "td.jsonl", task, specs)
    assert replay_results(tmp_path / "td.jsonl") == results  # every metric field, exactly
    assert load_recording(tmp_path / "td.jsonl").events == live
    lanes = {lane["name"]: lane for lane in results["lanes"]}
    assert results["winner"] == "right" and lanes["right"]["completion_s"] is not None
    assert lanes["wrong"]["status"] == "eliminated"
    assert {"command_extracted", "exec_finished", "verdict"} <= {e.type for e in live}


# --- loading: strict, except for a cut-off last line ---------------------------------------


def write_lines(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


def test_a_truncated_last_line_is_skipped_with_a_notice(recorded, tmp_path):
    path, live, _ = recorded
    text = path.read_text(encoding="utf-8")
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: len(text) - 1 - 7], encoding="utf-8")  # drop the newline and 7 chars
    recording = load_recording(cut)
    assert recording.events == live[:-1]
    n = len(text.splitlines())
    assert any(f"{cut}:{n}:" in note and "incomplete" in note for note in recording.notices)
    assert any("did not finish" in note for note in recording.notices)


def test_a_complete_last_line_without_newline_is_kept(recorded, tmp_path):
    path, live, _ = recorded
    bare = tmp_path / "bare.jsonl"
    bare.write_text(path.read_text(encoding="utf-8").rstrip("\n"), encoding="utf-8")
    recording = load_recording(bare)
    assert recording.events == live and recording.notices == []


def test_a_corrupt_middle_line_names_file_and_line(recorded, tmp_path):
    path, _, _ = recorded
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5][:-3]
    bad = write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(RecordingError) as err:
        load_recording(bad)
    message = str(err.value)
    assert message.startswith(f"{bad}:6: corrupt line") and "\n" not in message


def test_a_bad_event_in_the_middle_names_its_line(recorded, tmp_path):
    path, _, _ = recorded
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = json.dumps({"type": "token_delta", "text": "no time"})
    with pytest.raises(RecordingError, match=r"bad\.jsonl:4: bad event"):
        load_recording(write_lines(tmp_path / "bad.jsonl", lines))


def test_unknown_event_types_are_skipped_with_a_notice(recorded, tmp_path):
    path, live, _ = recorded
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(3, json.dumps({"type": "from_the_future", "t": 0.5}))
    recording = load_recording(write_lines(tmp_path / "newer.jsonl", lines))
    assert recording.events == live
    assert any("from_the_future" in note for note in recording.notices)


def test_an_unknown_format_version_is_refused(tmp_path):
    header = {"format": FORMAT, "version": 99}
    path = write_lines(tmp_path / "v99.jsonl", [json.dumps(header)])
    with pytest.raises(RecordingError, match=r"v99\.jsonl:1: recording format version 99 is not supported"):
        load_recording(path)


@pytest.mark.parametrize(
    "content",
    [
        "import os\nprint('hello')\n",
        '{"some": "json"}\n{"type": "token_delta", "t": 1, "lane": "a"}\n',
        "\x00\x01\x02binary\xff",
        "[1, 2, 3]\n",
    ],
    ids=["python", "other-jsonl", "binary", "json-array"],
)
def test_an_unrelated_file_is_refused(tmp_path, content):
    path = tmp_path / "other.txt"
    path.write_text(content, encoding="utf-8", errors="surrogateescape")
    with pytest.raises(RecordingError, match=r"other\.txt:1: not a Thunderdome recording"):
        load_recording(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank"])
def test_an_empty_file_is_refused(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(RecordingError, match=r"empty\.jsonl:1: empty file"):
        load_recording(path)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(RecordingError, match="file not found"):
        load_recording(tmp_path / "nope.jsonl")
    with pytest.raises(RecordingError, match="is a directory"):
        load_recording(tmp_path)


# --- timing --------------------------------------------------------------------------------


def test_play_clock_anchors_instead_of_summing():
    now = [100.0]
    clock = PlayClock(2.0, now=lambda: now[0])
    assert clock.due(4.0) == 102.0
    now[0] = 101.0
    assert clock.time() == 2.0
    clock.pause()
    now[0] = 150.0
    assert clock.time() == 2.0 and clock.due(3.0) == float("inf")
    clock.resume()
    assert clock.due(4.0) == 151.0  # two race seconds left at speed 2
    now[0] = 151.0
    clock.set_speed(0.5)
    assert clock.time() == 4.0 and clock.due(5.0) == 153.0
    with pytest.raises(ValueError):
        clock.set_speed(0)


def test_a_replay_keeps_the_recorded_pace():
    events = [RaceStarted(t=0.0), RequestSent(t=0.1, lane="a"), LaneFinished(t=0.3, lane="a")]
    stamps: list[float] = []
    source = ReplaySource(events, speed=2.0, linger=False)
    start = time.monotonic()
    source.start(lambda e: stamps.append(time.monotonic() - start))
    assert source.done.wait(WAIT) and len(stamps) == 3
    # an event is never early (lower bounds only: a loaded machine may be late)
    assert stamps[1] >= 0.05 - 1e-3 and stamps[2] >= 0.15 - 1e-3
    with pytest.raises(ValueError):
        ReplaySource(events, speed=0)


# --- the threaded source -------------------------------------------------------------------


class Sink:
    """Collects events from the source's thread; tests wait on counts."""

    def __init__(self, on_each=None) -> None:
        self.events: list = []
        self.cond = threading.Condition()
        self.on_each = on_each

    def __call__(self, event) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()
        if self.on_each:
            self.on_each(event, len(self.events))

    def wait_for(self, n: int) -> list:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.events) >= n, WAIT), f"only {len(self.events)} of {n} events"
            return list(self.events)


def test_replay_source_at_high_speed_emits_everything_in_order(recorded):
    path, live, _ = recorded
    source = ReplaySource.from_file(path, speed=1000.0, linger=False)
    sink = Sink()
    source.start(sink)
    assert source.done.wait(WAIT) and source.error is None
    assert sink.events == live and source.position == len(live)
    assert source.at_end.is_set()


def test_paused_source_steps_one_event_at_a_time(recorded):
    path, live, _ = recorded
    source = ReplaySource(load_recording(path), speed=1000.0, paused=True)
    sink = Sink()
    source.start(sink)
    try:
        time.sleep(0.1)
        assert sink.events == [] and source.paused  # paused from the start: nothing plays
        source.step()
        assert sink.wait_for(1) == live[:1]
        source.step()
        source.step()
        assert sink.wait_for(3) == live[:3]
        time.sleep(0.1)
        assert len(sink.events) == 3 and source.position == 3
        source.resume()
        assert sink.wait_for(len(live)) == live
        assert source.at_end.wait(WAIT)
    finally:
        source.stop()


def test_pause_holds_and_resume_continues(recorded):
    path, live, _ = recorded
    holder: dict = {}

    def pause_at_ten(event, count) -> None:
        if count == 10:
            holder["source"].pause()  # from the source's own thread, mid-burst

    source = ReplaySource(live, speed=1000.0)
    holder["source"] = source
    sink = Sink(pause_at_ten)
    source.start(sink)
    try:
        sink.wait_for(10)
        time.sleep(0.1)
        assert len(sink.events) == 10 and source.paused
        source.resume()
        assert not source.paused
        assert sink.wait_for(len(live)) == live
    finally:
        source.stop()


def test_speed_change_and_restart(recorded):
    path, live, _ = recorded
    source = ReplaySource(live, speed=0.001)  # far too slow to finish on its own
    sink = Sink()
    source.start(sink)
    try:
        sink.wait_for(1)  # RaceStarted at t=0 is due at once
        time.sleep(0.05)
        assert len(sink.events) < len(live)
        source.set_speed(1000.0)
        assert source.speed == 1000.0
        assert sink.wait_for(len(live)) == live
        assert source.at_end.wait(WAIT)
        assert abs(source.play_time() - live[-1].t) < 1e-9
        source.restart()
        events = sink.wait_for(2 * len(live))
        assert events[len(live)] == live[0] and isinstance(live[0], RaceStarted)
        assert events[len(live) :] == live and source.restarts == 1
    finally:
        source.stop()
    assert source.done.is_set()


def test_recording_helpers(recorded):
    path, live, _ = recorded
    recording = load_recording(path)
    assert isinstance(recording, Recording) and recording.finished
    assert recording.duration == max(e.t for e in live)
    assert isinstance(live[-1], RaceFinished)
    assert any(isinstance(e, TokenDelta) and e.channel == "reasoning" for e in live)


# --- the committed fixtures (made by tests/fixtures/make_fixtures.py) -----------------------

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_the_long_fixture_is_a_complete_real_race():
    recording = load_recording(FIXTURES / "long-sim.jsonl")
    assert recording.notices == [] and recording.finished
    results = compute_results(recording.events)
    lanes = {lane["name"]: lane for lane in results["lanes"]}
    assert results["winner"] == "fast" and lanes["fast"]["status"] == "winner"
    assert lanes["thinker"]["ttfa_s"] > lanes["thinker"]["ttft_s"]  # a reasoning lane
    assert lanes["flaky"]["status"] == "error" and lanes["flaky"]["tokens"] > 0  # an error lane
    assert compute_results(recording.events) == results  # stable: a fixed input for snapshots


def test_the_cut_fixture_loads_with_a_notice():
    full = load_recording(FIXTURES / "long-sim.jsonl")
    cut = load_recording(FIXTURES / "long-cut.jsonl")
    assert cut.events == full.events[:-1]
    assert any("incomplete" in note for note in cut.notices)


def test_the_thunderdome_fixture_is_a_complete_agent_race():
    recording = load_recording(FIXTURES / "thunderdome-sim.jsonl")
    assert recording.notices == [] and recording.header["kind"] == "thunderdome"
    results = compute_results(recording.events)
    lanes = {lane["name"]: lane for lane in results["lanes"]}
    assert results["winner"] == "right" and lanes["right"]["completion_s"] is not None
    assert lanes["wrong"]["status"] == "eliminated"
    assert {"command_extracted", "exec_finished", "verdict"} <= {e.type for e in recording.events}


def test_the_sigkill_fixture_is_a_complete_arena_race():
    recording = load_recording(FIXTURES / "sigkill-sim.jsonl")
    assert recording.notices == [] and recording.header["task"] == "sigkill"
    results = compute_results(recording.events)
    assert results["winner"] and results["race"]["win_rule"] == "last_standing"
    assert sum(lane["status"] == "eliminated" for lane in results["lanes"]) == len(results["lanes"]) - 1


def test_a_format_1_recording_is_upgraded_on_load(tmp_path):
    """Format 1 wrote failures as ``lane_error`` and the fighter PID as notice
    text; both load as the format-2 events."""
    header = {"format": FORMAT, "version": 1, "task": "sigkill"}
    lines = [
        json.dumps(header),
        json.dumps({"type": "notice", "t": 0.01, "lane": "a", "message": "fighter PID 7", "level": "info"}),
        json.dumps({"type": "notice", "t": 0.02, "lane": "a", "message": "fighter PID 7 and more", "level": "info"}),
        json.dumps({"type": "lane_error", "t": 0.5, "lane": "a", "reason": "HTTP 500"}),
    ]
    events = load_recording(write_lines(tmp_path / "v1.jsonl", lines)).events
    assert events[0] == FighterSpawned(t=0.01, lane="a", pid=7)
    assert isinstance(events[1], Notice) and events[1].message == "fighter PID 7 and more"
    assert events[2] == LaneFailed(t=0.5, lane="a", reason="HTTP 500")
    assert Standings().apply_all(events).lanes["a"].pid == 7
