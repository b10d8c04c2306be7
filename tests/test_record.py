"""The recorder: header + one event per line, flushed as the race runs, and a
file that survives ``kill -9`` up to its last complete line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import thunderdome
from thunderdome.core.events import (
    FeedbackSent,
    LaneEliminated,
    LaneFinished,
    LaneStarted,
    Notice,
    RaceFinished,
    RaceStarted,
    RequestSent,
    StreamEnded,
    TokenDelta,
    Usage,
    Verdict,
)
from thunderdome.core.metrics import compute_results
from thunderdome.race.runner import collect, run_race
from thunderdome.recording.record import (
    FORMAT,
    VERSION,
    Recorder,
    default_recording_path,
    default_recordings_dir,
)
from thunderdome.core.redact import SECRET_SUFFIXES
from thunderdome.recording.replay import load_recording
from thunderdome.sources.replay import ReplaySource
from thunderdome.core.specs import BackendSpec, TaskSpec

ROOT = Path(__file__).resolve().parents[1]
LONG = TaskSpec(name="t", title="t", kind="long", user="write", max_tokens=50, timeout=30)


def sim(name: str, profile: str, protocol: str = "openai", **options) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", model=profile, profile=profile, protocol=protocol, options=options)


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def no_secret_env(monkeypatch):
    """No secret-looking variables: the recording must equal the live events byte for byte."""
    for name in list(os.environ):
        if name.upper().endswith(SECRET_SUFFIXES):
            monkeypatch.delenv(name)


def hand_made() -> list:
    lanes = ({"name": "a", "kind": "sim", "model": "instant", "url": ""},)
    return [
        RaceStarted(t=0.0, task="demo", kind="long", title="Demo", lanes=lanes, started_at="2026-01-01T00:00:00+00:00", max_tokens=3),
        LaneStarted(t=0.001, lane="a", skew=0.001),
        RequestSent(t=0.002, lane="a"),
        TokenDelta(t=0.1, lane="a", text="héllo 🚀"),
        TokenDelta(t=0.2, lane="a", text=' "quoted"\n|pipe|'),
        TokenDelta(t=0.3, lane="a", text="why", channel="reasoning"),
        Usage(t=0.31, lane="a", output_tokens=3),
        StreamEnded(t=0.31, lane="a", finish_reason="length"),
        LaneFinished(t=0.32, lane="a", reason="length"),
        RaceFinished(t=0.32, winner="a"),
    ]


async def test_hand_made_events_round_trip(tmp_path, no_secret_env):
    path = tmp_path / "deep" / "folder" / "race.jsonl"  # folders are created
    events = hand_made()
    async with Recorder(path) as rec:
        for event in events:
            rec(event)
    raw = lines_of(path)
    assert raw[0]["format"] == FORMAT and raw[0]["version"] == VERSION
    assert raw[0]["tool_version"] == thunderdome.__version__
    assert raw[0]["task"] == "demo" and raw[0]["kind"] == "long"
    assert raw[0]["backends"] == [{"name": "a", "kind": "sim", "model": "instant", "url": ""}]
    assert {"platform", "python", "recorded_at", "isolation"} <= set(raw[0])
    assert [line["type"] for line in raw[1:]] == [e.type for e in events]
    assert "\n" not in path.read_text(encoding="utf-8").split("\n")[4]  # one event per line
    assert load_recording(path).events == events


def two_turns(feedback: str) -> list:
    """A lane that fails turn 1, is told so, and fails turn 2."""
    lanes = ({"name": "a", "kind": "sim", "model": "instant", "url": ""},)
    return [
        RaceStarted(t=0.0, task="hello-file", kind="thunderdome", title="T", lanes=lanes, win_rule="first_correct"),
        LaneStarted(t=0.001, lane="a"),
        RequestSent(t=0.002, lane="a", turn=1),
        TokenDelta(t=0.1, lane="a", text="```bash\nfalse\n```"),
        Verdict(t=0.2, lane="a", turn=1, detail="wrong"),
        FeedbackSent(t=0.2, lane="a", turn=1, text=feedback, role="tool"),
        RequestSent(t=0.21, lane="a", turn=2),
        TokenDelta(t=0.3, lane="a", text="again", turn=2),
        Verdict(t=0.4, lane="a", turn=2, detail="wrong"),
        LaneEliminated(t=0.4, lane="a", reason="out of turns (2 turns): wrong"),
        RaceFinished(t=0.41),
    ]


async def test_the_feedback_sent_to_a_model_round_trips_and_is_redacted(tmp_path, no_secret_env, monkeypatch):
    path = tmp_path / "turns.jsonl"
    events = two_turns('exit code: 1\n"quoted" ␛ é\n\nThat did not solve the task: wrong.')
    async with Recorder(path) as rec:
        for event in events:
            rec(event)
    assert [line["type"] for line in lines_of(path)[1:]].count("feedback_sent") == 1
    assert load_recording(path).events == events

    monkeypatch.setenv("TURNS_TEST_API_KEY", "sk-turns-secret-42424242")
    secret = tmp_path / "secret.jsonl"
    async with Recorder(secret) as rec:
        for event in two_turns("stdout:\nsk-turns-secret-42424242\n"):
            rec(event)
    raw = secret.read_text(encoding="utf-8")
    assert "sk-turns" not in raw and "42424242" not in raw
    [sent] = [e for e in load_recording(secret).events if isinstance(e, FeedbackSent)]
    assert sent.text == "stdout:\n[redacted]\n" and sent.role == "tool" and sent.turn == 1


async def test_events_before_race_started_follow_the_header(tmp_path, no_secret_env):
    path = tmp_path / "r.jsonl"
    early = Notice(t=0.0, message="sandbox fell back")
    rest = hand_made()
    async with Recorder(path) as rec:
        rec(early)
        await asyncio.sleep(0.05)  # let the writer see the early event alone
        for event in rest:
            rec(event)
    raw = lines_of(path)
    assert raw[0]["format"] == FORMAT and raw[0]["task"] == "demo"
    assert load_recording(path).events == [early, *rest]


async def test_real_race_recorded_loads_back_to_the_live_events(tmp_path, no_secret_env):
    path = tmp_path / "race.jsonl"
    live: list = []
    specs = [sim("quick", "instant"), sim("local", "fast-local", "ollama"), sim("anth", "instant", "anthropic")]
    async with Recorder(path) as rec:
        standings = await run_race(LONG, specs, sinks=[collect(live), rec], emulator="thread")
    recording = load_recording(path)
    assert recording.notices == []
    assert recording.events == live
    assert sum(isinstance(e, TokenDelta) for e in live) >= 3 * 10
    header = recording.header
    assert [b["name"] for b in header["backends"]] == ["quick", "local", "anth"]
    assert header["backends"][1]["protocol"] == "ollama"
    assert compute_results(recording.events) == standings.results()


async def test_events_reach_the_file_while_the_race_runs(tmp_path, no_secret_env):
    path = tmp_path / "race.jsonl"
    five = asyncio.Event()
    seen = 0

    def count(event) -> None:
        nonlocal seen
        if isinstance(event, TokenDelta):
            seen += 1
            if seen >= 5:
                five.set()

    # the lane stalls after 5 tokens, so the race is certainly still running
    specs = [sim("staller", "instant", fault="stall_after", fault_at=5, stall_s=60)]
    rec = Recorder(path)
    await rec.start()
    race = asyncio.create_task(run_race(LONG, specs, sinks=[count, rec], emulator="thread"))
    try:
        async with asyncio.timeout(20):
            await five.wait()
            while True:  # the writer flushes within ~50 ms; poll the file, not a clock
                on_disk = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
                if sum(x.get("type") == "token_delta" for x in on_disk) >= 5:
                    break
                await asyncio.sleep(0.01)
        assert not race.done()
        assert on_disk[0]["format"] == FORMAT
    finally:
        race.cancel()
        with pytest.raises(asyncio.CancelledError):
            await race
        await rec.close()
    events = load_recording(path).events
    assert isinstance(events[-1], RaceFinished) and events[-1].reason == "interrupted"


async def test_a_write_failure_never_raises_through_the_race(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    rec = Recorder("/dev/full")
    await rec.start()
    for event in hand_made():
        rec(event)  # the sink never raises
    await rec.close()
    assert rec.error and "/dev/full" in rec.error


def test_default_recordings_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("THUNDERDOME_RECORDINGS", str(tmp_path / "explicit"))
    assert default_recordings_dir() == tmp_path / "explicit"
    monkeypatch.delenv("THUNDERDOME_RECORDINGS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_recordings_dir() == tmp_path / "xdg" / "thunderdome" / "recordings"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_recordings_dir() == tmp_path / "home" / ".local" / "share" / "thunderdome" / "recordings"


def test_default_recording_path_is_dated_and_never_collides(monkeypatch, tmp_path):
    monkeypatch.setenv("THUNDERDOME_RECORDINGS", str(tmp_path))
    first = default_recording_path("long essay/../x")
    assert first.parent == tmp_path and first.suffix == ".jsonl"
    stamp, rest = first.name[:15], first.name[16:]
    assert stamp[:8].isdigit() and stamp[8] == "-" and stamp[9:].isdigit()
    assert "/" not in rest and rest.endswith(".jsonl") and "long" in rest
    first.write_text("taken")
    second = default_recording_path("long essay/../x")
    if second.name[:15] == stamp:  # same second: a suffix keeps them apart
        assert second != first
    assert first.read_text() == "taken" and second.read_text() == ""  # reserved, never reused


def test_racing_reservations_of_the_same_second_get_distinct_files(monkeypatch, tmp_path):
    """``O_EXCL``: threads reserving at once never share a file."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("THUNDERDOME_RECORDINGS", str(tmp_path))
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: default_recording_path("same"), range(32)))
    assert len(set(paths)) == 32 and all(p.exists() for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


KILL_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from thunderdome.core.specs import BackendSpec, TaskSpec
    from thunderdome.race.runner import run_race
    from thunderdome.recording.record import Recorder

    async def main(path):
        task = TaskSpec(name="t", title="t", kind="long", user="write", max_tokens=50, timeout=120)
        specs = [
            BackendSpec(name="done", kind="sim", model="instant", profile="instant", options={"tokens": 20}),
            BackendSpec(name="stuck", kind="sim", model="instant", profile="instant",
                        options={"fault": "stall_after", "fault_at": 8, "stall_s": 120}),
        ]
        rec = Recorder(path)
        await rec.start()
        await run_race(task, specs, sinks=[rec], emulator="thread")
        await rec.close()

    asyncio.run(main(sys.argv[1]))
    """
)


def test_a_race_killed_with_sigkill_leaves_a_replayable_file(tmp_path, no_secret_env):
    script = tmp_path / "slow_race.py"
    script.write_text(KILL_SCRIPT)
    path = tmp_path / "killed.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), str(path)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:  # wait for the stalled lane's 8 tokens and the other lane's end
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the race never reached the stall"
            text = path.read_text(encoding="utf-8") if path.exists() else ""
            rows = [json.loads(x) for x in text.splitlines()[1:] if x.endswith("}")]
            stuck = sum(r["type"] == "token_delta" and r["lane"] == "stuck" for r in rows)
            if stuck >= 8 and any(r["type"] == "lane_finished" for r in rows):
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    recording = load_recording(path)
    assert any("did not finish" in n for n in recording.notices)
    events = recording.events
    assert not any(isinstance(e, RaceFinished) for e in events)
    assert sum(isinstance(e, TokenDelta) and e.lane == "stuck" for e in events) == 8
    replayed: list = []
    source = ReplaySource(events, speed=1e9, linger=False)
    source.start(replayed.append)
    assert source.done.wait(30) and source.error is None
    assert replayed == events
    results = {lane["name"]: lane for lane in compute_results(replayed)["lanes"]}
    called = any(e.type == "winner_decided" for e in events)  # the win is called when it happens: maybe before the kill
    assert results["done"]["status"] == ("winner" if called else "finished") and results["done"]["tokens"] == 20
    assert results["stuck"]["status"] == "streaming" and results["stuck"]["tokens"] == 8


async def test_the_sink_only_enqueues_serialising_happens_off_the_loop(tmp_path, monkeypatch):
    """Issue 9.9: the loop that stamps tokens never encodes or scrubs an event."""
    import threading

    from thunderdome.recording import record

    threads: set[int] = set()
    encode = record._encode

    def spying(data):
        threads.add(threading.get_ident())
        return encode(data)

    monkeypatch.setattr(record, "_encode", spying)
    path = tmp_path / "r.jsonl"
    async with Recorder(path) as rec:
        for event in hand_made():
            rec(event)
            await asyncio.sleep(0)
    assert threads and threading.get_ident() not in threads
    assert [d["type"] for d in lines_of(path)[1:]] == [e.type for e in hand_made()]
