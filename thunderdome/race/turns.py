"""The one agent turn loop of both Thunderdome win rules: ask, read, act, judge, feed back.

Invariant: a lane's turns run one after another, and each emits, in order:
its request and tokens, then (when the lane mode found a command the model
finished and meant) ``CommandExtracted`` and whatever the act emits
(``ExecFinished``), then exactly one ``Verdict``. A passing verdict ends the
lane with ``LaneFinished``; the last failing one with ``LaneEliminated`` (out
of turns); any other failing one with ``FeedbackSent`` (what the next turn's
request tells the model). Nothing runs that the lane mode did not hand over
as a command.

Two strategies plug in, so the loop is written once:

- the **lane mode** (``LaneMode``): how the model acts and is answered —
  ``text`` (``race/text_mode.py``: a command in a code block); a ``tools``
  mode (a native ``bash`` tool call) fits the same two methods;
- the **act** (``Act``) of the win rule: run a command and judge it —
  ``first_correct`` runs it in the lane's sandbox and applies the checks
  (``race/agent.py``), ``last_standing`` fires it into the arena and counts
  the deaths (``race/arena.py``).

Sim lanes get a per-request directive: reply with the task's reference
(rendered with the lane's fields), or with its wrong answer at the lane's
``wrong_rate``, seeded per race seed, lane and turn.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Any, Awaitable, Protocol

from thunderdome.core.events import CommandExtracted, ExecFinished, FeedbackSent, LaneEliminated, LaneFinished, Verdict
from thunderdome.race.engine import Lane, Race, build_messages, render_prompt
from thunderdome.core.specs import TaskSpec

EVENT_OUTPUT_LIMIT = 4096
"""Characters of stdout / stderr kept in an ``ExecFinished`` event."""

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Attempt:
    """What the model gave in one turn: its answer text and the command to
    run, or (``command`` None) ``miss``, the failed verdict's detail. The
    loop reads only these; it hands the attempt back to the mode's
    ``follow_up``, so a mode may return a subclass carrying what it needs
    there (a tool call's id, say)."""

    text: str
    command: str | None
    miss: str = ""
    stopped: bool = False
    """The model stopped acting (answered without a tool call): the lane ends."""


@dataclass(frozen=True)
class Judgement:
    """How an act judged a command: the verdict, and the command's result
    (an ``ExecResult``, told to the model on the next turn)."""

    passed: bool
    detail: str
    result: Any = None
    finished: str = ""
    """The ``LaneFinished`` reason when passed (default: "solved on turn N")."""


class LaneMode(Protocol):
    """How a lane's model acts (``text``: a command in a code block)."""

    name: str

    async def attempt(self, race: Race, lane: Lane, messages: Messages, turn: int, sim: dict[str, Any] | None) -> Attempt:
        """Ask the model (emitting the turn's events) and say what it gave.
        Raises ``BackendError`` when the lane's backend failed."""

    def follow_up(self, messages: Messages, attempt: Attempt, judged: Judgement, turns_left: int) -> Messages:
        """The conversation for the next turn, after a failed one."""


class Act(Protocol):
    """A win rule's half of a turn: run ``command`` for the lane and judge it;
    None when the lane ended meanwhile (killed, out of time)."""

    def __call__(self, race: Race, lane: Lane, turn: int, command: str) -> Awaitable[Judgement | None]: ...


async def run_turns(race: Race, lane: Lane, act: Act, mode: LaneMode, seed: int | None = None) -> None:
    """Run the lane's turns until it passes, runs out of turns or ends."""
    task = race.task
    messages = build_messages(task, lane.vars)
    detail = ""
    for turn in range(1, task.max_turns + 1):
        lane.turn = turn
        attempt = await mode.attempt(race, lane, messages, turn, sim_directive(task, lane, turn, seed))
        if lane.ended:
            return
        judged: Judgement | None
        if attempt.command is None:
            judged = Judgement(False, attempt.miss)
        else:
            race.emit(CommandExtracted(t=race.clock(), lane=lane.name, turn=turn, command=attempt.command))
            judged = await act(race, lane, turn, attempt.command)
            if judged is None or lane.ended:
                return
        race.emit(Verdict(t=race.clock(), lane=lane.name, turn=turn, passed=judged.passed, detail=judged.detail))
        if judged.passed:
            reason = judged.finished or f"solved on turn {turn}"
            race.end_lane(lane, LaneFinished(t=race.clock(), lane=lane.name, reason=reason))
            return
        detail = judged.detail
        if attempt.stopped:
            eliminate(race, lane, detail)
            return
        if turn < task.max_turns:
            messages = mode.follow_up(messages, attempt, judged, task.max_turns - turn)
            race.emit(feedback_event(race, lane, turn, messages[-1]))
    turns = f"{task.max_turns} {'turn' if task.max_turns == 1 else 'turns'}"
    eliminate(race, lane, f"out of turns ({turns}): {detail}")


# --- shared by both win rules -----------------------------------------------------------


def derive_seed(base: int | None, lane: str, turn: int) -> int:
    """A stable per-lane, per-turn seed for the emulator's wrong-answer draw."""
    return zlib.crc32(f"{base or 0}:{lane}:{turn}".encode()) & 0x7FFFFFFF


def sim_directive(task: TaskSpec, lane: Lane, turn: int, seed: int | None) -> dict[str, Any] | None:
    """The per-request emulator directive of a sim lane (None for real lanes)."""
    spec = lane.spec
    if spec.kind != "sim":
        return None
    directive: dict[str, Any] = {}
    if task.reference:
        directive["reply"] = render_prompt(task.reference, lane.vars)
    if task.wrong_answer:
        directive["wrong_reply"] = render_prompt(task.wrong_answer, lane.vars)
    rate = spec.options.get("wrong_rate", 0) or 0
    directive["wrong_rate"] = float(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else rate
    base = seed if seed is not None else spec.options.get("seed", 0)
    directive["seed"] = derive_seed(base if isinstance(base, int) else 0, lane.name, turn)
    return directive


def clip(text: str, limit: int = EVENT_OUTPUT_LIMIT) -> str:
    """The head of ``text``, with a marker when something was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n…[{len(text) - limit} more characters]"


def tail(text: str, limit: int = EVENT_OUTPUT_LIMIT) -> str:
    """The end of ``text``, with a marker when something was cut."""
    if len(text) <= limit:
        return text
    return f"…[{len(text) - limit} earlier characters]\n" + text[-limit:]


def feedback_event(race: Race, lane: Lane, turn: int, message: dict[str, Any]) -> FeedbackSent:
    """The ``FeedbackSent`` of a follow-up ``message`` (its tail when long)."""
    content = message.get("content")
    text = content if isinstance(content, str) else str(content)
    return FeedbackSent(t=race.clock(), lane=lane.name, turn=turn, text=tail(text), role=str(message.get("role", "user")))


def exec_event(race: Race, lane: Lane, turn: int, res: Any) -> ExecFinished:
    return ExecFinished(
        t=race.clock(),
        lane=lane.name,
        turn=turn,
        exit_code=res.exit_code,
        stdout=clip(res.stdout),
        stderr=clip(res.stderr),
        timed_out=res.timed_out,
        duration=round(res.duration, 6),
    )


def time_budget(race: Race) -> float:
    """Seconds this lane may still work: the task's timeout, a little before
    the engine's own backstop so an over-time lane is eliminated, not errored."""
    timeout = race.task.timeout
    margin = min(0.25, timeout * 0.05)
    return max(0.0, timeout - margin - race.clock())


async def within_time(race: Race, lane: Lane, work: Awaitable[None]) -> None:
    """Await ``work`` (a lane's turns) within the task's time; a lane over time
    is eliminated ("out of time")."""
    deadline = asyncio.timeout(time_budget(race))
    try:
        async with deadline:
            await work
    except TimeoutError:
        if not deadline.expired():
            raise
        if not lane.ended:
            eliminate(race, lane, f"out of time: not done within {race.task.timeout:g} s")


def eliminate(race: Race, lane: Lane, reason: str, by: str | None = None) -> None:
    race.end_lane(lane, LaneEliminated(t=race.clock(), lane=lane.name, reason=reason, by=by))


__all__ = [
    "Act",
    "Attempt",
    "Judgement",
    "LaneMode",
    "clip",
    "derive_seed",
    "eliminate",
    "exec_event",
    "feedback_event",
    "run_turns",
    "sim_directive",
    "tail",
    "within_time",
]
