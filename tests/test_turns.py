"""The one agent turn loop with a win rule's act plugged in: a rule of the
test's own (no sandbox) races a sim lane over loopback HTTP, so what the loop
does — ask, read, hand the command to the act, emit its verdict, feed the
model back, end the lane — is seen apart from either Thunderdome rule."""

from __future__ import annotations

import dataclasses
from thunderdome.backends import make_backend
from thunderdome.events import CommandExtracted, Event, LaneEliminated, LaneFinished, RequestSent, Verdict
from thunderdome.race.engine import Lane, Race
from thunderdome.race.tasks import load_task
from thunderdome.race.text_mode import TextMode
from thunderdome.race.turns import Judgement, run_turns
from thunderdome.sim import EmulatorServer
from thunderdome.specs import BackendSpec


class PassOnTurn:
    """A RaceMode whose act passes the command on turn ``passing`` (never: 0)
    and keeps what it was handed, and the conversation the model was sent."""

    isolation = "none"

    def __init__(self, passing: int) -> None:
        self.passing = passing
        self.acted: list[tuple[int, str]] = []
        self.mode = TextMode()

    async def prepare(self, race: Race) -> None:
        return None

    async def run_lane(self, race: Race, lane: Lane) -> None:
        await run_turns(race, lane, self.act, self.mode)

    async def act(self, race: Race, lane: Lane, turn: int, command: str) -> Judgement:
        self.acted.append((turn, command))
        return Judgement(turn == self.passing, f"judged on turn {turn}", finished="passed by the test's rule")

    def winner(self, race: Race) -> str | None:
        return race.standings.winner

    async def close(self, race: Race) -> None:
        return None


async def _race(max_turns: int, rule: PassOnTurn) -> list[Event]:
    """One lane on a plain ``openai`` backend pointed at the emulator, which
    answers from its reply table by the last user message: the first prompt
    gets one command, the feedback naming turn 1's judgement another."""
    task = dataclasses.replace(load_task("hello-file"), max_turns=max_turns)
    server = EmulatorServer(time_scale=0.05, replies={
        "greeting.txt": "```bash\necho first\n```",
        "judged on turn 1": "```bash\necho second\n```",
        "judged on turn 2": "```bash\necho third\n```",
    })
    await server.start()
    try:
        spec = BackendSpec(name="lane", kind="openai", url=f"{server.url}/v1", model="instant")
        events: list[Event] = []
        await Race(task, [(spec, make_backend(spec))], rule, [events.append]).run()
        return events
    finally:
        await server.stop()


async def test_the_act_gets_each_command_and_its_judgement_is_the_verdict() -> None:
    rule = PassOnTurn(passing=2)
    events = await _race(3, rule)
    # turn 2's command answers the feedback that carried turn 1's judgement
    assert rule.acted == [(1, "echo first"), (2, "echo second")]
    verdicts = [(e.turn, e.passed, e.detail) for e in events if isinstance(e, Verdict)]
    assert verdicts == [(1, False, "judged on turn 1"), (2, True, "judged on turn 2")]
    assert [e.turn for e in events if isinstance(e, RequestSent)] == [1, 2]
    assert [e.turn for e in events if isinstance(e, CommandExtracted)] == [1, 2]
    end = [e for e in events if isinstance(e, (LaneFinished, LaneEliminated))]
    assert len(end) == 1 and isinstance(end[0], LaneFinished) and end[0].reason == "passed by the test's rule"


async def test_out_of_turns_eliminates_with_the_last_judgement() -> None:
    rule = PassOnTurn(passing=0)
    events = await _race(2, rule)
    assert rule.acted == [(1, "echo first"), (2, "echo second")]
    end = [e for e in events if isinstance(e, (LaneFinished, LaneEliminated))]
    assert len(end) == 1 and isinstance(end[0], LaneEliminated)
    assert end[0].reason == "out of turns (2 turns): judged on turn 2"
