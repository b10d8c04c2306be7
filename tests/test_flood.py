"""One lane cannot slow the others: a lane that floods (one endless line, the
emulator's ``flood_line`` fault) is cut at 1 MB with a reason, runs nothing,
and the healthy lane beside it races on. Real emulator over loopback HTTP."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import pytest

from thunderdome.core.events import CommandExtracted, Event, LaneEvent, LaneFailed, LaneFinished, TokenDelta
from thunderdome.race.reply import REPLY_LIMIT
from thunderdome.race.runner import run_race
from thunderdome.race.tasks import load_task
from thunderdome.sim.replies import FLOOD_CHARS, FLOOD_PIECE
from thunderdome.core.specs import BackendSpec

from _emulator import collect, request, sim_backend  # type: ignore[import-not-found]

SCALE = 0.05
MAX_TOKENS = 4096
"""Room for more than 1 MB of 1 KiB flood tokens."""


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    from thunderdome.sim.launch import start_emulator_thread

    with start_emulator_thread() as handle:
        yield handle


def sim(name: str, **options: Any) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", profile="instant", model="instant", agent="text", options=options)


def of_lane(events: list[Event], name: str) -> list[LaneEvent]:
    return [e for e in events if isinstance(e, LaneEvent) and e.lane == name]


async def test_the_emulator_floods_one_line_then_ends_normally(emulator: Any) -> None:
    backend = sim_backend(emulator.url, "openai", {"fault": "flood_line", "fault_at": 3, "time_scale": 0.0,
                                                   "reply": "a b\nc d e f"})
    out = await collect(backend, request(max_tokens=20_000))
    assert out.error is None and out.ended is not None and out.ended.finish_reason == "stop"
    assert out.answer == "a b\n" + (FLOOD_PIECE * (FLOOD_CHARS // len(FLOOD_PIECE) + 1))[:FLOOD_CHARS]
    assert "\n" not in out.answer[4:]


def _assert_flood_cut(events: list[Event], name: str) -> None:
    mine = of_lane(events, name)
    end = mine[-1]
    assert isinstance(end, LaneFailed) and end.reason.startswith("reply over 1 MB: cut"), end
    read = sum(len(e.text) for e in mine if isinstance(e, TokenDelta))
    assert REPLY_LIMIT < read <= REPLY_LIMIT + len(FLOOD_PIECE)
    assert not [e for e in mine if isinstance(e, CommandExtracted)]


async def test_a_flooding_lane_is_cut_and_the_healthy_lane_wins(emulator: Any) -> None:
    task = dataclasses.replace(load_task("hello-file"), max_turns=1, race_on=True)  # the flood is cut, not stopped by the win
    events: list[Event] = []
    standings = await run_race(task, [sim("healthy"), sim("flood", fault="flood_line", fault_at=0)],
                               [events.append], sim_url=emulator.url, time_scale=SCALE, max_tokens=MAX_TOKENS)
    _assert_flood_cut(events, "flood")
    assert standings.winner == "healthy"
    assert isinstance(of_lane(events, "healthy")[-1], LaneFinished)


async def test_a_flooding_lane_is_cut_in_the_long_race_too(emulator: Any) -> None:
    task = dataclasses.replace(load_task("long-essay"), max_tokens=MAX_TOKENS)
    events: list[Event] = []
    standings = await run_race(task, [sim("healthy", tokens=300), sim("flood", fault="flood_line", fault_at=0)],
                               [events.append], sim_url=emulator.url, time_scale=SCALE)
    _assert_flood_cut(events, "flood")
    assert standings.winner == "healthy"
