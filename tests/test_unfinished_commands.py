"""Never run what the model did not finish or did not mean, raced for real:
the emulator over loopback HTTP, commands in the real sandbox / arena. Each
reply, if any part of it ran, would leave a marker file in the lane's work
dir; the work dir is listed the moment the lane ends. Each case has a
control (the same reply, not cut) that does leave the marker, so the
assertion that it is absent could fail."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from thunderdome.backends import make_backend
from thunderdome.core.events import (
    CommandExtracted,
    Event,
    ExecFinished,
    LaneEvent,
    LaneFailed,
    LANE_END_TYPES,
    RaceFinished,
    Verdict,
)
from thunderdome.race.agent import FirstCorrectRace
from thunderdome.race.arena import LastStandingRace
from thunderdome.race.engine import Race, Sink
from thunderdome.race.tasks import load_task
from thunderdome.sandbox import detect_isolation
from thunderdome.sim.replies import tokenize
from thunderdome.core.specs import BackendSpec, TaskSpec

SCALE = 0.05
MARKER = "ran-marker"
BLOCK = f"Cleaning up:\n```bash\ntouch {MARKER} && rm -rf ./build/cache/old && echo cleaned\n```\n"
BARE = f"touch {MARKER} && rm -rf ./build/cache/old && echo cleaned\n"
SETUP = {"build/cache/old/keep.txt": "still here\n"}


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    from thunderdome.sim.launch import start_emulator_thread

    with start_emulator_thread() as handle:
        yield handle


def sim(name: str, **options: Any) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", profile="instant", model="instant", agent="text", options=options)


def tokens_through(text: str, end: str) -> int:
    """How many emulator tokens of ``text`` it takes to have streamed ``end``."""
    toks = tokenize(text)
    for k in range(1, len(toks) + 1):
        if "".join(toks[:k]).endswith(end):
            return k
    raise AssertionError(f"{end!r} does not end a token of {text!r}")


class WorkDirs:
    """A sink that lists a lane's work dir the moment the lane ends (before
    the race removes it)."""

    def __init__(self, workdir_of: Any) -> None:
        self.workdir_of = workdir_of
        self.events: list[Event] = []
        self.files: dict[str, set[str]] = {}

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, LANE_END_TYPES):
            root = Path(self.workdir_of(event.lane))
            self.files[event.lane] = {str(p.relative_to(root)) for p in root.rglob("*")}

    def of(self, lane: str) -> list[LaneEvent]:
        return [e for e in self.events if isinstance(e, LaneEvent) and e.lane == lane]


async def race(url: str, task: TaskSpec, specs: list[BackendSpec], mode: Any, max_tokens: int,
               *sinks: Sink) -> WorkDirs:
    if isinstance(mode, FirstCorrectRace):
        dirs = WorkDirs(lambda lane: mode.sandboxes[lane].workdir)
    else:
        dirs = WorkDirs(lambda lane: mode.arena.workdir)
    lanes = [(spec, make_backend(spec, sim_url=url, sim_directive={"time_scale": SCALE})) for spec in specs]
    await Race(task, lanes, mode, [dirs, *sinks], max_tokens=max_tokens).run()
    return dirs


def first_correct_task(reply: str) -> TaskSpec:
    return dataclasses.replace(load_task("hello-file"), reference=reply, wrong_answer="", max_turns=2,
                               setup_files=dict(SETUP))


@pytest.mark.parametrize("reply", [BLOCK, BARE], ids=["block", "bare line"])
async def test_first_correct_reply_cut_by_max_tokens_runs_nothing(emulator: Any, reply: str) -> None:
    cut = tokens_through(reply, "rm -rf ./")  # the reply as it stands: "... touch ran-marker && rm -rf ./"
    dirs = await race(emulator.url, first_correct_task(reply), [sim("cut")], FirstCorrectRace(), max_tokens=cut)
    mine = dirs.of("cut")
    assert not [e for e in mine if isinstance(e, (CommandExtracted, ExecFinished))]
    verdicts = [e for e in mine if isinstance(e, Verdict)]
    assert [(v.turn, v.passed) for v in verdicts] == [(1, False), (2, False)]
    assert all(v.detail == f"reply cut mid-command (at max_tokens={cut}): nothing ran" for v in verdicts)
    assert MARKER not in dirs.files["cut"]
    assert "build/cache/old/keep.txt" in dirs.files["cut"]

    control = await race(emulator.url, first_correct_task(reply), [sim("whole")], FirstCorrectRace(), max_tokens=200)
    assert MARKER in control.files["whole"] and "build/cache/old" not in control.files["whole"]


async def test_a_command_inside_think_is_not_the_answer(emulator: Any) -> None:
    thought = f"<think>\nI could run:\n```bash\ntouch {MARKER}\n```\nbut I will not.\n</think>\n"
    silent = await race(emulator.url, first_correct_task(thought + "I will not run anything."), [sim("thinker")],
                        FirstCorrectRace(), max_tokens=200)
    mine = silent.of("thinker")
    assert not [e for e in mine if isinstance(e, CommandExtracted)]
    assert [v.detail for v in mine if isinstance(v, Verdict)] == ["no command found", "no command found"]
    assert MARKER not in silent.files["thinker"]

    answer = "```bash\ntouch answer-marker\n```\n"
    acted = await race(emulator.url, first_correct_task(thought + answer), [sim("thinker")],
                       FirstCorrectRace(), max_tokens=200)
    commands = [e.command for e in acted.of("thinker") if isinstance(e, CommandExtracted)]
    assert commands and set(commands) == {"touch answer-marker"}
    assert "answer-marker" in acted.files["thinker"] and MARKER not in acted.files["thinker"]


@pytest.fixture
def arena_is_safe_here() -> None:
    if detect_isolation().level == "rlimits" and os.geteuid() != 0:
        pytest.skip("no bwrap/unshare and not root: an arena's kill -9 could reach your own processes")


async def test_last_standing_reply_cut_by_max_tokens_fires_nothing(emulator: Any, arena_is_safe_here: None) -> None:
    reply = f"```bash\ntouch {MARKER} && kill -9 {{opponents}}\n```"
    task = dataclasses.replace(load_task("sigkill"), reference=reply, wrong_answer="I will wait.", max_turns=1)
    specs = [sim("cut"), sim("idle", wrong_rate=1.0)]
    cut = tokens_through(reply, "&& kill")
    mode = LastStandingRace()
    alive: dict[str, bool] = {}
    dirs = await race(emulator.url, task, specs, mode, cut, _alive_at_finish(mode, alive))
    assert not [e for e in dirs.events if isinstance(e, (CommandExtracted, ExecFinished))]
    verdict = next(e for e in dirs.of("cut") if isinstance(e, Verdict))
    assert verdict.detail == f"reply cut mid-command (at max_tokens={cut}): nothing ran"
    assert MARKER not in dirs.files["cut"]
    assert alive == {"cut": True, "idle": True}
    assert not [e for e in dirs.events if isinstance(e, LaneFailed)]

    control = LastStandingRace()
    whole = await race(emulator.url, task, specs, control, 200, _alive_at_finish(control, alive))
    assert MARKER in whole.files["cut"] and alive == {"cut": True, "idle": False}


def _alive_at_finish(mode: LastStandingRace, alive: dict[str, bool]) -> Sink:
    """A sink that keeps who is alive in the arena when the race finishes (before it closes)."""

    def sink(event: Event) -> None:
        if isinstance(event, RaceFinished):
            alive.update(mode.arena.alive())

    return sink
