"""The win is called when it happens: ``WinnerDecided`` the moment the winner
is certain, then (Thunderdome, unless the task races on) the other lanes are
stopped with their figures; long races race on for places. Raced for real:
the emulator over loopback HTTP, commands in the real sandbox, and the real
CLI; plus the long-race certainty rule and the task field, unit-tested."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from thunderdome.core.events import (
    LANE_END_TYPES,
    Event,
    LaneEvent,
    LaneFinished,
    LaneStarted,
    LaneStopped,
    RaceFinished,
    RaceStarted,
    RequestSent,
    TokenDelta,
    Verdict,
    WinnerDecided,
)
from thunderdome.core.metrics import Standings
from thunderdome.race.engine import LongRace, Race
from thunderdome.race.runner import run_race
from thunderdome.race.tasks import load_task, parse_task
from thunderdome.recording.replay import load_recording, replay_results
from thunderdome.core.specs import BackendSpec
from thunderdome.core.yamlfile import ConfigError, parse_yaml

SCALE = 0.25
THINK = " ".join(["think"] * 600)
"""The slow lane's reasoning: seconds of tokens before it writes any command."""


def sim(name: str, profile: str, **options) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", profile=profile, model=profile, agent="text", options=options)


def of_lane(events: list[Event], name: str) -> list[LaneEvent]:
    return [e for e in events if isinstance(e, LaneEvent) and e.lane == name]


def index_of(events: list[Event], kind: type | tuple[type, ...], lane: str | None = None) -> int:
    return next(i for i, e in enumerate(events) if isinstance(e, kind) and (lane is None or getattr(e, "lane", None) == lane))


QUICK_AND_SLOW = [sim("quick", "fast-local"), sim("slow", "fast-local", reasoning=THINK)]
"""One pace: the slow lane's first token comes with quick's, long before quick's command has run."""


def hello_file():
    """A first_correct task with room for the slow lane's reasoning."""
    return dataclasses.replace(load_task("hello-file"), max_tokens=4096)


async def test_first_correct_calls_the_win_at_the_pass_and_stops_the_others() -> None:
    task = hello_file()
    assert not task.race_on  # the default: the others are stopped
    events: list[Event] = []
    standings = await run_race(task, QUICK_AND_SLOW, sinks=[events.append], time_scale=SCALE, emulator="thread")

    passed = index_of(events, Verdict, "quick")
    called = index_of(events, WinnerDecided)
    stopped = index_of(events, LaneStopped, "slow")
    assert events[passed].passed and index_of(events, LaneFinished, "quick") < called < stopped
    assert events[called].winner == "quick" and events[-1] == RaceFinished(t=events[-1].t, winner="quick")
    assert events[stopped].reason == "race won by quick"
    assert of_lane(events, "slow")[-1] is events[stopped]  # nothing of the slow lane after its stop
    assert not any(isinstance(e, Verdict) for e in of_lane(events, "slow"))  # stopped while it reasoned

    lanes = {lane["name"]: lane for lane in standings.results()["lanes"]}
    assert lanes["quick"]["status"] == "winner" and lanes["slow"]["status"] == "stopped"
    slow = lanes["slow"]
    tokens = sum(1 for e in of_lane(events, "slow") if isinstance(e, TokenDelta))
    assert 0 < tokens < 600 and slow["tokens"] == tokens  # its figures are kept, as far as it got
    assert slow["ttft_s"] is not None and slow["output_tps"] is not None and slow["error"] is None
    assert standings.lanes["slow"].reason == "race won by quick"


async def test_a_task_that_races_on_calls_the_win_at_once_and_lets_the_others_place() -> None:
    task = dataclasses.replace(hello_file(), race_on=True)
    events: list[Event] = []
    standings = await run_race(task, QUICK_AND_SLOW, sinks=[events.append], time_scale=SCALE, emulator="thread")
    called = index_of(events, WinnerDecided)
    assert events[called].winner == "quick"
    assert called < index_of(events, RequestSent, "slow") or called < index_of(events, LaneFinished, "slow")
    assert called < index_of(events, Verdict, "slow")  # the win was called while the slow lane still worked
    assert not any(isinstance(e, LaneStopped) for e in events)
    results = standings.results()
    assert results["winner"] == "quick"
    assert [(lane["name"], lane["status"]) for lane in results["lanes"]] == [("quick", "winner"), ("slow", "finished")]


async def test_a_long_race_calls_the_first_finisher_and_races_on_for_places() -> None:
    task = dataclasses.replace(load_task("long-essay"), max_tokens=40, expected_tokens=0, timeout=60)
    specs = [sim("quick", "instant"), sim("steady", "fast-local")]
    events: list[Event] = []
    standings = await run_race(task, specs, sinks=[events.append], time_scale=SCALE, emulator="thread")
    called = index_of(events, WinnerDecided)
    assert events[called].winner == "quick" == standings.winner == events[-1].winner
    assert index_of(events, LaneFinished, "quick") < called < index_of(events, LaneFinished, "steady")
    assert not any(isinstance(e, LaneStopped) for e in events)  # throughput is the point: nobody is stopped
    assert standings.lanes["steady"].status == "finished" and standings.lanes["steady"].tokens == 40


async def test_last_standing_calls_the_win_once_one_fighter_stands() -> None:
    specs = [sim("a", "instant"), sim("b", "slow-start"), sim("c", "slow-start")]
    events: list[Event] = []
    standings = await run_race(load_task("sigkill"), specs, sinks=[events.append], time_scale=0.05, emulator="thread")
    called = index_of(events, WinnerDecided)
    assert events[called].winner == "a" == standings.winner == events[-1].winner
    ends = {name: index_of(events, LANE_END_TYPES, name) for name in ("a", "b", "c")}
    assert ends["b"] < ends["a"] < called and ends["c"] < ends["a"]  # the others were out when it stood alone
    assert not any(isinstance(e, LaneStopped) for e in events)  # nobody left to stop


async def test_the_called_win_records_and_replays(tmp_path: Path) -> None:
    from thunderdome.sources.recorded_race import record_race

    recording = tmp_path / "win.jsonl"
    events: list[Event] = []
    await record_race(hello_file(), QUICK_AND_SLOW, [events.append], record_path=recording,
                      time_scale=SCALE, emulator="thread")
    loaded = load_recording(recording)
    assert [e.type for e in loaded.events if e.type in ("winner_decided", "lane_stopped")] == ["winner_decided", "lane_stopped"]
    assert not loaded.notices
    replayed = replay_results(recording)
    assert replayed["winner"] == "quick" and {lane["name"]: lane["status"] for lane in replayed["lanes"]}["slow"] == "stopped"
    assert replayed == Standings().apply_all(events).results()

    # the same format-2 recording as the version before this event wrote it: RaceFinished names the winner
    older = tmp_path / "older.jsonl"
    older.write_text("".join(line for line in recording.read_text().splitlines(True) if '"winner_decided"' not in line))
    assert load_recording(older).header["version"] == 2 and not load_recording(older).notices
    assert replay_results(older) == replayed


def test_a_format_1_recording_without_the_event_still_names_its_winner() -> None:
    path = Path(__file__).parent / "fixtures" / "sigkill-sim.jsonl"
    recording = load_recording(path)
    assert recording.header["version"] == 1
    assert not any(isinstance(e, WinnerDecided) for e in recording.events)
    finished = recording.events[-1]
    assert isinstance(finished, RaceFinished) and finished.winner
    results = replay_results(path)
    assert results["winner"] == finished.winner
    assert {lane["name"]: lane["status"] for lane in results["lanes"]}[finished.winner] == "winner"


def test_the_reducer_crowns_the_winner_the_moment_it_is_called() -> None:
    standings = Standings()
    standings.apply(RaceStarted(t=0.0, kind="thunderdome", lanes=({"name": "a"}, {"name": "b"})))
    standings.apply(LaneFinished(t=1.0, lane="a", reason="solved on turn 1"))
    assert standings.winner is None
    standings.apply(WinnerDecided(t=1.0, winner="a"))
    assert standings.winner == "a" and standings.lanes["a"].status == "winner" and not standings.finished
    standings.apply(LaneStopped(t=1.0, lane="b", reason="race won by a"))
    b = standings.lanes["b"]
    assert (b.status, b.ended, b.reason, b.end_t) == ("stopped", True, "race won by a", 1.0)
    assert [s.name for s in standings.ranked()] == ["a", "b"]


# -- the long race: called only once no running lane can have finished earlier -------------------


def long_race_with(lanes: list[str]) -> Race:
    task = dataclasses.replace(load_task("long-essay"), max_tokens=10)
    race = Race(task, [(BackendSpec(name=n, kind="sim", profile="instant"), None) for n in lanes], LongRace())  # type: ignore[arg-type]
    race.t0 = 0.0
    race.standings.apply(RaceStarted(t=0.0, kind="long", lanes=tuple({"name": n} for n in lanes)))
    for name in lanes:
        race.standings.apply(LaneStarted(t=0.0, lane=name))
        race.standings.apply(RequestSent(t=0.0, lane=name))
    return race


def token(race: Race, lane: str, t: float) -> None:
    race.standings.apply(TokenDelta(t=t, lane=lane, text="w"))


def finish(race: Race, lane: str, t: float) -> None:
    race.lane(lane).ended = True
    race.standings.apply(LaneFinished(t=t, lane=lane, reason="stop"))


def test_a_long_race_waits_for_a_lane_whose_last_token_came_earlier() -> None:
    race = long_race_with(["a", "b", "c"])
    mode = race.mode
    token(race, "a", 1.0)
    token(race, "b", 0.9)  # b's last token so far is earlier than a's: b may be about to end
    finish(race, "a", 1.01)
    assert mode.winner(race) is None
    token(race, "b", 1.2)  # b is still generating after a's last token: it cannot beat a
    assert mode.winner(race) == "a"  # c has no token yet: whatever it sends comes later


def test_a_long_race_lane_that_ends_with_an_earlier_last_token_wins() -> None:
    race = long_race_with(["a", "b"])
    token(race, "a", 1.0)
    token(race, "b", 0.9)
    finish(race, "a", 1.01)
    finish(race, "b", 1.02)  # ended after a, but its last token was first
    assert race.mode.winner(race) == "b"


# -- the task field -------------------------------------------------------------------------------


def task_yaml(extra: str, kind: str = "first_correct") -> str:
    rule = {
        "first_correct": "kind: thunderdome\nwin_rule: first_correct\nchecks:\n  - kind: stdout_equals\n    value: '1'\n",
        "last_standing": "kind: thunderdome\nwin_rule: last_standing\n",
        "long": "kind: long\n",
    }[kind]
    return f"name: t\n{rule}user: go\nreference: |\n  ```bash\n  echo 1\n  ```\n{extra}"


def parse(text: str):
    return parse_task(parse_yaml(text, "t.yaml"), "t.yaml")


def test_race_on_is_parsed_and_validated() -> None:
    assert parse(task_yaml("")).race_on is False
    assert parse(task_yaml("race_on: true\n")).race_on is True
    with pytest.raises(ConfigError, match=r"t.yaml:\d+: 'race_on' must be true or false"):
        parse(task_yaml("race_on: 3\n"))
    with pytest.raises(ConfigError, match="long races always race on"):
        parse(task_yaml("race_on: false\n", kind="long"))
    with pytest.raises(ConfigError, match="does not apply to last_standing"):
        parse(task_yaml("race_on: true\n", kind="last_standing"))


# -- the real command line ------------------------------------------------------------------------


def backends_yaml(path: Path) -> Path:
    path.write_text(
        "backends:\n"
        "  - name: quick\n    kind: sim\n    profile: fast-local\n"
        f"  - name: slow\n    kind: sim\n    profile: fast-local\n    options:\n      reasoning: \"{THINK}\"\n"
    )
    return path


def race_cli(tmp_path: Path, task: str) -> tuple[subprocess.CompletedProcess, dict, list[dict]]:
    out, rec = tmp_path / "out.json", tmp_path / "race.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends_yaml(tmp_path / "b.yaml")),
         "--task", task, "--headless", "--json", str(out), "--record", str(rec), "--time-scale", str(SCALE)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in rec.read_text().splitlines()[1:] if line.strip()]
    return result, json.loads(out.read_text()), lines


def task_file(tmp_path: Path, extra: str = "") -> str:
    """The built-in hello-file task as a file, with room for the slow lane's reasoning."""
    text = Path(load_task("hello-file").source).read_text()
    text = text.replace("name: hello-file", "name: hello-room").replace("max_tokens: 128", "max_tokens: 4096")
    path = tmp_path / "hello-room.yaml"
    path.write_text(text + extra)
    return str(path)


def test_headless_cli_race_stops_the_others_when_the_win_is_called(tmp_path: Path) -> None:
    result, data, lines = race_cli(tmp_path, task_file(tmp_path))
    assert data["winner"] == "quick"
    lanes = {lane["name"]: lane for lane in data["lanes"]}
    streamed = sum(line["type"] == "token_delta" and line["lane"] == "slow" for line in lines)
    # stopped with the figures it had (on a loaded machine it may not have streamed yet)
    assert lanes["slow"]["status"] == "stopped" and lanes["slow"]["tokens"] == streamed
    kinds = [(line["type"], line.get("lane") or line.get("winner")) for line in lines]
    assert kinds.index(("lane_finished", "quick")) < kinds.index(("winner_decided", "quick")) < kinds.index(
        ("lane_stopped", "slow")) < kinds.index(("race_finished", "quick"))
    out = result.stdout + result.stderr  # the summary and the piped moments, wherever the shell sends them
    slow_row = [line for line in out.splitlines() if " slow " in line and "STOPPED" in line]
    assert len(slow_row) == 1 and "race won by quick" in slow_row[0], out
    assert "★ winner: completed the task in" in out  # the piped moment: called before the summary


def test_headless_cli_race_on_task_file_lets_the_others_place(tmp_path: Path) -> None:
    _, data, lines = race_cli(tmp_path, task_file(tmp_path, "race_on: true\n"))
    assert data["winner"] == "quick"
    assert [(lane["name"], lane["status"]) for lane in data["lanes"]] == [("quick", "winner"), ("slow", "finished")]
    kinds = [(line["type"], line.get("lane") or line.get("winner")) for line in lines]
    assert kinds.index(("winner_decided", "quick")) < kinds.index(("lane_finished", "slow"))
    assert ("lane_stopped", "slow") not in kinds
