"""The one agent turn loop with a win rule's act plugged in: a rule of the
test's own (no sandbox) races a sim lane over loopback HTTP, so what the loop
does — ask, read, hand the command to the act, emit its verdict, feed the
model back, end the lane — is seen apart from either Thunderdome rule."""

from __future__ import annotations

import dataclasses
from thunderdome.backends import make_backend
from thunderdome.core.events import (
    CommandExtracted,
    Event,
    FeedbackSent,
    LaneEliminated,
    LaneFinished,
    RequestSent,
    Verdict,
)
from thunderdome.race.engine import Lane, Race
from thunderdome.race.tasks import load_task
from thunderdome.race.text_mode import TextMode
from thunderdome.race.turns import EVENT_OUTPUT_LIMIT, Judgement, feedback_event, run_turns
from thunderdome.sim import EmulatorServer
from thunderdome.core.specs import BackendSpec


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


async def test_the_feedback_sent_between_turns_is_an_event_between_verdict_and_next_request() -> None:
    rule = PassOnTurn(passing=0)
    events = await _race(3, rule)
    feedback = [e for e in events if isinstance(e, FeedbackSent)]
    assert [e.turn for e in feedback] == [1, 2]  # none after the last turn: nothing is sent
    for sent in feedback:
        at = events.index(sent)
        verdict = next(e for e in events if isinstance(e, Verdict) and e.turn == sent.turn)
        request = next(e for e in events if isinstance(e, RequestSent) and e.turn == sent.turn + 1)
        assert events.index(verdict) < at < events.index(request)
        assert sent.role == "user" and sent.lane == "lane"
        # what the model was told: the emulator answered turn 2 from this very text
        assert f"judged on turn {sent.turn}" in sent.text and "Your command ran" in sent.text
    assert rule.acted[1] == (2, "echo second")


class _Clocked:
    """The one thing ``feedback_event`` reads of a race: its clock."""

    def clock(self) -> float:
        return 1.5


def test_a_long_feedback_keeps_its_tail() -> None:
    lane = type("L", (), {"name": "a"})()
    message = {"role": "tool", "content": "head " + "x" * (2 * EVENT_OUTPUT_LIMIT) + " the verdict"}
    event = feedback_event(_Clocked(), lane, 2, message)  # type: ignore[arg-type]
    assert event.role == "tool" and event.turn == 2 and event.t == 1.5
    assert event.text.endswith(" the verdict") and "head" not in event.text
    assert event.text.startswith("…[") and len(event.text) < EVENT_OUTPUT_LIMIT + 64


async def test_the_heap_the_race_started_with_is_out_of_the_collectors_scans_until_it_finishes() -> None:
    import gc

    class Watching(PassOnTurn):
        async def act(self, race: Race, lane: Lane, turn: int, command: str) -> Judgement:
            frozen.append(gc.get_freeze_count())
            return await super().act(race, lane, turn, command)

    frozen: list[int] = []
    gc.unfreeze()
    await _race(1, Watching(passing=1))
    assert frozen and frozen[0] > 1000  # the modules, the backends, the emulator: frozen while it ran
    assert gc.get_freeze_count() == 0  # and the collector's again once it finished
