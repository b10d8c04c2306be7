"""The original Thunderdome, raced for real: the emulator over loopback HTTP,
one shared arena, real kill -9. The first test is the acceptance criterion of
the demo: the cloud lane wins in about 1.04 s and eliminates the others."""

from __future__ import annotations

import dataclasses
import os

import pytest

from thunderdome.config import demo_backends
from thunderdome.core.events import (
    CommandExtracted,
    Event,
    ExecFinished,
    LaneEliminated,
    LaneEvent,
    LaneFinished,
    LANE_END_TYPES,
    RaceFinished,
    RequestSent,
    Verdict,
)
from thunderdome.race.runner import run_race
from thunderdome.race.tasks import load_task
from thunderdome.sandbox import detect_isolation
from thunderdome.core.specs import BackendSpec

PUBLIC_COMPLETION_S = 1.04
"""The public benchmark: the cloud backend won the sigkill race in 1.04 s."""


@pytest.fixture(autouse=True, scope="module")
def _arena_is_safe_here():
    iso = detect_isolation()
    if iso.level == "rlimits" and os.geteuid() != 0:
        pytest.skip("no bwrap/unshare and not root: an arena's kill -9 could reach your own processes")


def sim(name: str, profile: str, **options) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", profile=profile, model=profile, agent="text", options=options)


def of_lane(events: list[Event], name: str) -> list[LaneEvent]:
    return [e for e in events if isinstance(e, LaneEvent) and e.lane == name]


def ending(events: list[Event], name: str) -> LaneEvent:
    ends = [e for e in of_lane(events, name) if isinstance(e, LANE_END_TYPES)]
    assert len(ends) == 1, ends
    return ends[0]


async def test_demo_sigkill_cloud_wins_in_public_time() -> None:
    """`thunderdome demo --task sigkill`: real time (the emulator paces TTFT
    0.90 s and 208 tok/s), three sim profiles, default emulator process."""
    events: list[Event] = []
    standings = await run_race(load_task("sigkill"), demo_backends(), sinks=[events.append])
    assert isinstance(events[-1], RaceFinished) and events[-1].winner == "cloud"
    for loser in ("dgx-spark", "rtx4090-offload"):
        end = ending(events, loser)
        assert isinstance(end, LaneEliminated), end
        assert end.by == "cloud" and end.reason == "killed by cloud"
    win = [e for e in of_lane(events, "cloud") if isinstance(e, Verdict)]
    assert len(win) == 1 and win[0].passed
    completion = standings.results()["lanes"][0]
    assert completion["name"] == "cloud" and completion["status"] == "winner"
    assert completion["completion_s"] == pytest.approx(win[0].t, abs=1e-3)
    assert win[0].t == pytest.approx(PUBLIC_COMPLETION_S, rel=0.10), f"cloud completed in {win[0].t:.3f} s"

    # order: the command, then the deaths it caused, then the verdict
    cmd = next(e for e in events if isinstance(e, CommandExtracted))
    kills = [e for e in events if isinstance(e, LaneEliminated)]
    assert cmd.lane == "cloud" and cmd.command.startswith("kill -9 ")
    assert all(cmd.t <= k.t <= win[0].t for k in kills)
    ex = next(e for e in of_lane(events, "cloud") if isinstance(e, ExecFinished))
    assert ex.exit_code == 0
    assert isinstance(ending(events, "cloud"), LaneFinished)


async def test_self_kill_and_the_killer_is_named() -> None:
    """The fastest lane sends its wrong answer (`kill <own pid>`) and dies by
    its own hand; the next lane kills the last one and wins."""
    # at half speed: hasty acts at ~0.01 s, steady at ~0.48 s, slow would at ~0.7 s
    specs = [sim("hasty", "instant", wrong_rate=1.0), sim("steady", "cloud"), sim("slow", "dgx-spark")]
    events: list[Event] = []
    await run_race(load_task("sigkill"), specs, sinks=[events.append], time_scale=0.5, emulator="thread")
    hasty = ending(events, "hasty")
    assert isinstance(hasty, LaneEliminated) and hasty.reason == "killed by its own command" and hasty.by is None
    slow = ending(events, "slow")
    assert isinstance(slow, LaneEliminated) and slow.by == "steady" and slow.reason == "killed by steady"
    assert events[-1].winner == "steady"
    steady = [e for e in of_lane(events, "steady") if isinstance(e, Verdict)]
    assert [v.passed for v in steady] == [True]


async def test_a_harmless_command_gets_feedback_then_runs_out_of_turns() -> None:
    task = dataclasses.replace(load_task("sigkill"), reference="```bash\necho peace\n```", wrong_answer="", max_turns=2)
    events: list[Event] = []
    await run_race(task, [sim("a", "instant"), sim("b", "instant")], sinks=[events.append],
                   time_scale=0.05, emulator="thread")
    for name in ("a", "b"):
        mine = of_lane(events, name)
        assert [e.turn for e in mine if isinstance(e, RequestSent)] == [1, 2]
        verdicts = [e for e in mine if isinstance(e, Verdict)]
        assert [v.passed for v in verdicts] == [False, False]
        assert "1 of 1 opponents still alive" in verdicts[0].detail
        end = ending(events, name)
        assert isinstance(end, LaneEliminated) and end.reason.startswith("out of turns (2 turns)")
    assert events[-1].winner is None
