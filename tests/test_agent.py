"""The first_correct agent loop, raced for real: emulator over loopback HTTP,
commands in the real sandbox, checks on the real work dirs."""

from __future__ import annotations

import dataclasses

import pytest

from thunderdome.core.events import (
    CommandExtracted,
    Event,
    ExecFinished,
    LaneEliminated,
    LaneFailed,
    LaneEvent,
    LaneFinished,
    LaneStarted,
    LANE_END_TYPES,
    RaceFinished,
    RequestSent,
    TokenDelta,
    Verdict,
)
from thunderdome.race.text_mode import feedback_message
from thunderdome.race.turns import derive_seed, sim_directive
from thunderdome.race.engine import Lane
from thunderdome.race.runner import run_race
from thunderdome.race.tasks import load_task
from thunderdome.sandbox.runner import ExecResult
from thunderdome.sim import EmulatorServer
from thunderdome.core.specs import BackendSpec

SCALE = 0.05


def sim(name: str, profile: str, protocol: str = "openai", **options) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", profile=profile, model=profile, protocol=protocol, agent="text", options=options)


def of_lane(events: list[Event], name: str) -> list[LaneEvent]:
    return [e for e in events if isinstance(e, LaneEvent) and e.lane == name]


def assert_lane_order(events: list[Event], name: str) -> None:
    """LaneStarted first, one ending event last; per turn: request, tokens,
    command, exec, verdict."""
    mine = of_lane(events, name)
    assert isinstance(mine[0], LaneStarted), mine[0]
    ends = [i for i, e in enumerate(mine) if isinstance(e, LANE_END_TYPES)]
    assert ends == [len(mine) - 1], f"{name}: ending events at {ends} of {len(mine)}"
    stamps = [e.t for e in mine]
    assert stamps == sorted(stamps), f"{name}: times go backwards"
    order = (RequestSent, TokenDelta, CommandExtracted, ExecFinished, Verdict)
    turns = sorted({e.turn for e in mine if isinstance(e, RequestSent)})
    assert turns == list(range(1, len(turns) + 1))
    for turn in turns:
        kinds = [type(e) for e in mine if getattr(e, "turn", None) == turn and type(e) in order]
        ranks = [order.index(k) for k in kinds]
        assert ranks == sorted(ranks), f"{name} turn {turn}: {[k.__name__ for k in kinds]}"
        assert kinds.count(Verdict) <= 1 and kinds.count(CommandExtracted) <= 1


async def test_first_correct_race_against_the_emulator() -> None:
    task = dataclasses.replace(load_task("backup-docs"), race_on=True)  # every lane races on for places
    assert task.max_turns == 3
    specs = [
        sim("fast", "fast-local"),
        sim("cloud", "cloud", protocol="anthropic"),
        sim("wrong", "instant", wrong_rate=1.0),
        sim("broken", "fast-local", fault="http_500"),
    ]
    events: list[Event] = []
    standings = await run_race(task, specs, sinks=[events.append], time_scale=SCALE, emulator="thread")
    assert isinstance(events[-1], RaceFinished)
    results = standings.results()
    lanes = {lane["name"]: lane for lane in results["lanes"]}

    passes = [e for e in events if isinstance(e, Verdict) and e.passed]
    assert {e.lane for e in passes} == {"fast", "cloud"}
    first = min(passes, key=lambda e: e.t)
    assert results["winner"] == first.lane == events[-1].winner
    assert lanes[first.lane]["status"] == "winner"
    other = ({"fast", "cloud"} - {first.lane}).pop()
    assert lanes[other]["status"] == "finished"
    assert lanes[other]["completion_s"] >= lanes[first.lane]["completion_s"]
    for name in ("fast", "cloud"):
        finished = [e for e in of_lane(events, name) if isinstance(e, LaneFinished)]
        assert finished and finished[0].reason == "solved on turn 1"

    # wrong_rate 1.0: three failed turns with feedback in between, then out
    wrong = of_lane(events, "wrong")
    assert [e.turn for e in wrong if isinstance(e, RequestSent)] == [1, 2, 3]
    verdicts = [e for e in wrong if isinstance(e, Verdict)]
    assert [v.passed for v in verdicts] == [False, False, False]
    assert all("check" in v.detail for v in verdicts)
    execs = [e for e in wrong if isinstance(e, ExecFinished)]
    assert execs and all(e.exit_code != 0 and "backup" in e.stderr for e in execs)
    assert isinstance(wrong[-1], LaneEliminated) and "out of turns (3 turns)" in wrong[-1].reason
    assert lanes["wrong"]["status"] == "eliminated"

    # a backend that fails errors alone; the others finished regardless
    broken = of_lane(events, "broken")
    assert isinstance(broken[-1], LaneFailed) and "500" in broken[-1].reason
    assert not any(isinstance(e, CommandExtracted) for e in broken)

    for name in ("fast", "cloud", "wrong", "broken"):
        assert_lane_order(events, name)
    assert results["race"]["isolation"] in ("bwrap", "unshare", "rlimits")


async def test_feedback_reaches_the_model_and_a_second_turn_can_win() -> None:
    """A scripted server (answers by the last user message): the first reply
    forgets mkdir; the feedback carries cp's error; the second reply fixes it."""
    task = load_task("backup-docs")
    server = EmulatorServer(time_scale=SCALE, replies={
        "Make a directory named backup": task.wrong_answer,
        "No such file or directory": task.reference,
    })
    await server.start()
    try:
        spec = BackendSpec(name="scripted", kind="openai", url=f"{server.url}/v1", model="instant", agent="text")
        events: list[Event] = []
        standings = await run_race(task, [spec], sinks=[events.append])
    finally:
        await server.stop()
    mine = of_lane(events, "scripted")
    verdicts = [e for e in mine if isinstance(e, Verdict)]
    assert [(v.turn, v.passed) for v in verdicts] == [(1, False), (2, True)]
    assert isinstance(mine[-1], LaneFinished) and mine[-1].reason == "solved on turn 2"
    assert standings.winner == "scripted"
    assert_lane_order(events, "scripted")


async def test_no_command_found_is_a_verdict_then_elimination() -> None:
    task = dataclasses.replace(load_task("hello-file"), reference="I would rather not do that.", wrong_answer="", max_turns=2)
    events: list[Event] = []
    await run_race(task, [sim("shy", "instant")], sinks=[events.append], time_scale=SCALE, emulator="thread")
    mine = of_lane(events, "shy")
    verdicts = [e for e in mine if isinstance(e, Verdict)]
    assert [(v.turn, v.passed, v.detail) for v in verdicts] == [(1, False, "no command found"), (2, False, "no command found")]
    assert not any(isinstance(e, (CommandExtracted, ExecFinished)) for e in mine)
    assert isinstance(mine[-1], LaneEliminated) and "no command found" in mine[-1].reason
    assert events[-1].winner is None
    assert_lane_order(events, "shy")


async def test_a_lane_over_time_is_eliminated_not_errored() -> None:
    task = dataclasses.replace(load_task("hello-file"), timeout=0.5)
    events: list[Event] = []
    # slow-start: first token after 3.0 s * 0.2 = 0.6 s, past the 0.5 s race
    await run_race(task, [sim("late", "slow-start")], sinks=[events.append], time_scale=0.2, emulator="thread")
    end = of_lane(events, "late")[-1]
    assert isinstance(end, LaneEliminated), end
    assert end.reason.startswith("out of time")
    assert end.t < 0.5


async def test_the_command_runs_before_the_reply_ends() -> None:
    """A reply with a long tail after its block: the lane acts at the block's
    close and stops reading, so it never waits for the tail."""
    tail = " Afterwards, every word here is just talk." * 40
    task = dataclasses.replace(load_task("hello-file"), reference=load_task("hello-file").reference + "\n\n" + tail)
    events: list[Event] = []
    await run_race(task, [sim("eager", "dgx-spark")], sinks=[events.append], time_scale=SCALE, emulator="thread")
    mine = of_lane(events, "eager")
    deltas = [e for e in mine if isinstance(e, TokenDelta)]
    text = "".join(d.text for d in deltas)
    assert text.rstrip().endswith("```") and "Afterwards" not in text
    assert any(isinstance(e, Verdict) and e.passed for e in mine)


def _result(**kw) -> ExecResult:
    base = dict(exit_code=1, stdout="", stderr="", timed_out=False, duration=0.02, isolation="bwrap",
                truncated=False, killed_by_signal=None, started=0.0, ended=0.02)
    base.update(kw)
    return ExecResult(**base)


def test_feedback_message_says_what_happened() -> None:
    res = _result(stdout="x" * 5000 + "LAST", stderr="cp: target 'backup/': No such file or directory\n")
    text = feedback_message("cp docs/*.txt backup/", res, "check 1/2 failed: no backup directory", 2)
    assert "cp docs/*.txt backup/" in text
    assert "exited with code 1" in text
    assert "No such file or directory" in text
    assert "LAST" in text and "x" * 2000 not in text  # the tail, not all of it
    assert "no backup directory" in text and "2 more turns" in text

    timed = feedback_message("sleep 99", _result(exit_code=None, timed_out=True, duration=5.0), "output wrong", 1)
    assert "timed out" in timed and "1 more turn." in timed
    none = feedback_message(None, None, "no command found", 1)
    assert "could not find a shell command" in none


def test_sim_directive_renders_and_seeds_per_lane_and_turn() -> None:
    task = load_task("sigkill")

    class _Backend:
        async def aclose(self) -> None: ...

    lane = Lane(sim("a", "cloud", wrong_rate=0.25), _Backend(), 0, vars={"pid": 2, "opponents": "3 4"})
    d1 = sim_directive(task, lane, 1, seed=7)
    assert d1["reply"] == "```bash\nkill -9 3 4\n```"
    assert d1["wrong_reply"] == "```bash\nkill 2\n```"
    assert d1["wrong_rate"] == 0.25
    assert d1["seed"] == derive_seed(7, "a", 1) == sim_directive(task, lane, 1, seed=7)["seed"]
    assert sim_directive(task, lane, 2, seed=7)["seed"] != d1["seed"]
    assert sim_directive(task, lane, 1, seed=8)["seed"] != d1["seed"]
    real = Lane(BackendSpec(name="r", kind="openai", url="http://127.0.0.1:1/v1", model="m"), _Backend(), 1)
    assert sim_directive(task, real, 1, seed=7) is None


@pytest.mark.parametrize("name", ["csv-count", "word-count", "fix-script"])
async def test_builtin_tasks_are_won_by_sim_lanes(name: str) -> None:
    events: list[Event] = []
    standings = await run_race(load_task(name), [sim("solver", "instant")], sinks=[events.append],
                               time_scale=SCALE, emulator="thread")
    assert standings.winner == "solver", [e for e in events if isinstance(e, (Verdict, LaneFailed))]
