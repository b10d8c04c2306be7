"""The Thunderdome agent loop, ``first_correct`` rule: stream, extract, run, check.

Invariant: every lane works in its own sandbox work dir (with the task's
setup files) and ends with exactly one ending event: ``LaneFinished`` when a
command passed every check (the first such lane, by its passing ``Verdict``'s
``t``, is the winner), ``LaneEliminated`` when it ran out of turns or time,
``LaneFailed`` when its backend failed. A turn's events come in this order:
request/tokens, ``CommandExtracted``, ``ExecFinished``, ``Verdict``.

Choices (documented for the README):

- **Act early.** The reply is fed to a ``CommandExtractor`` as it streams. The
  moment a shell block closes, the lane stops reading that reply (the HTTP
  stream is closed; the rest of it is neither read nor recorded, and no
  ``StreamEnded`` is emitted for that turn) and runs the command. A fast lane
  thus acts before its reply ends, as in the original race. Token counts for
  such a turn are what arrived before the command.
- **The race goes on after a winner.** Other lanes keep working until they
  pass, run out of turns or out of time, so every lane ends with a
  completion time or a verdict; the leaderboard ranks passes by time.
- **Out of time** (the task's ``timeout``, a little before the engine's own
  backstop) eliminates a lane: ``LaneEliminated("out of time ...")``.
- **No command found** is a failed ``Verdict`` ("no command found"), then a
  feedback turn, or elimination when no turns are left.
- **Sim lanes** get a per-request directive: reply with the task's reference
  (rendered with the lane's fields), or with its wrong answer at the lane's
  ``wrong_rate``, seeded per race seed, lane and turn.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Any

from thunderdome.events import (
    CommandExtracted,
    ExecFinished,
    LaneEliminated,
    LaneFailed,
    LaneFinished,
    Notice,
    StreamEnded,
    TokenDelta,
    Verdict,
)
from thunderdome.backends.base import BackendError, ChatRequest
from thunderdome.race.checks import run_checks
from thunderdome.race.engine import Lane, Race, build_messages, end_reason_for_cut, render_prompt
from thunderdome.race.extract import CommandExtractor
from thunderdome.specs import TaskSpec

EVENT_OUTPUT_LIMIT = 4096
"""Characters of stdout / stderr kept in an ``ExecFinished`` event."""
FEEDBACK_OUTPUT_LIMIT = 1500
"""Characters of stdout / stderr (the tail) shown to the model after a failure."""
NO_COMMAND = "no command found"


# --- shared by both Thunderdome modes ---------------------------------------------------


@dataclass(frozen=True)
class TurnReply:
    """What one streamed reply gave. ``text``: the answer read (up to the
    command when the lane stopped reading early)."""

    text: str
    command: str | None
    ended: StreamEnded | None
    early: bool
    """The lane stopped reading as soon as the command's block closed."""


async def stream_command(
    race: Race, lane: Lane, messages: list[dict[str, str]], turn: int, sim: dict[str, Any] | None
) -> TurnReply:
    """Stream one turn, emitting its events; stop reading the moment a shell
    block closes. The backend stream is always closed before returning."""
    request = ChatRequest(messages=messages, max_tokens=race.max_tokens, lane=lane.name, turn=turn, sim=sim)
    extractor = CommandExtractor()
    parts: list[str] = []
    ended: StreamEnded | None = None
    command: str | None = None
    stream = lane.backend.stream(request, race.clock)
    try:
        async for event in stream:
            if lane.ended:
                break
            race.emit(event)
            if isinstance(event, TokenDelta) and event.channel == "answer":
                parts.append(event.text)
                command = extractor.feed(event.text)
                if command is not None:
                    break
            elif isinstance(event, StreamEnded):
                ended = event
    finally:
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:  # closing a stream we stopped reading is not news
                pass
    early = command is not None
    if command is None and not lane.ended:
        # A reply that was cut mid-way may hold half a command: never run it.
        cut = end_reason_for_cut(ended, len(parts))
        if cut:
            raise BackendError(cut)
        command = extractor.finish()
    return TurnReply("".join(parts), command, ended, early)


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


def tail(text: str, limit: int = FEEDBACK_OUTPUT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"…[{len(text) - limit} earlier characters]\n" + text[-limit:]


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


def describe_exit(res: Any) -> str:
    """One line on how a command ended."""
    if res.timed_out:
        return f"It timed out after {res.duration:.1f} s and was killed."
    if res.exit_code is None:
        why = res.reason or "it was killed"
        return f"It did not exit normally ({why})."
    return f"It exited with code {res.exit_code} after {res.duration:.2f} s."


def feedback_message(command: str | None, res: Any, detail: str, turns_left: int) -> str:
    """The next user message after a failed turn: what ran, what it printed,
    what was wrong, how many turns are left."""
    more = f"You have {turns_left} more {'turn' if turns_left == 1 else 'turns'}."
    if command is None:
        return (
            "I could not find a shell command in your reply. Reply with the command in one "
            f"```bash code block. {more}"
        )
    parts = [f"Your command ran:\n```bash\n{command}\n```", describe_exit(res)]
    for name, text in (("stdout", res.stdout), ("stderr", res.stderr)):
        if text.strip():
            parts.append(f"{name}:\n```\n{tail(text).rstrip()}\n```")
    parts.append(f"That did not solve the task: {detail}.")
    parts.append(f"{more} Reply with a corrected command in one ```bash code block.")
    return "\n\n".join(parts)


def time_budget(race: Race) -> float:
    """Seconds this lane may still work: the task's timeout, a little before
    the engine's own backstop so an over-time lane is eliminated, not errored."""
    timeout = race.task.timeout
    margin = min(0.25, timeout * 0.05)
    return max(0.0, timeout - margin - race.clock())


async def within_time(race: Race, lane: Lane, work: Any) -> None:
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


def no_command_verdict(race: Race, lane: Lane, turn: int, reply: TurnReply) -> bool:
    """Handle a reply without a command. False when the lane has ended (its
    stream was cut: an error, not a model failure)."""
    tokens = race.standings.lanes[lane.name].live_tokens if lane.name in race.standings.lanes else 0
    cut = end_reason_for_cut(reply.ended, tokens)
    if cut:
        race.end_lane(lane, LaneFailed(t=race.clock(), lane=lane.name, reason=cut))
        return False
    detail = NO_COMMAND
    if reply.ended is not None and reply.ended.finish_reason == "length":
        detail = f"{NO_COMMAND} (reply cut at max_tokens={race.max_tokens})"
    race.emit(Verdict(t=race.clock(), lane=lane.name, turn=turn, passed=False, detail=detail))
    return True


# --- the first_correct mode -------------------------------------------------------------


class FirstCorrectRace:
    """RaceMode for ``win_rule: first_correct``. ``isolation``: force a sandbox
    level (else the best that works); ``seed``: varies sim lanes' draws."""

    def __init__(self, isolation: str | None = None, seed: int | None = None) -> None:
        self.isolation = "none"
        self.force = isolation
        self.seed = seed
        self.sandboxes: dict[str, Any] = {}
        self.warning: str | None = None
        self._announced = False

    async def prepare(self, race: Race) -> None:
        from thunderdome.sandbox import Sandbox, SandboxLimits, detect_isolation
        from thunderdome.sandbox.isolation import SANDBOX_WORK

        iso = await asyncio.to_thread(detect_isolation, self.force)
        self.isolation, self.warning = iso.level, iso.warning
        limits = SandboxLimits(timeout=race.task.exec_timeout)
        for lane in race.lanes:
            box = Sandbox(limits=limits, isolation=iso, setup_files=dict(race.task.setup_files))
            self.sandboxes[lane.name] = box
            workdir = SANDBOX_WORK if iso.level == "bwrap" else str(box.workdir)
            lane.vars = {"lane": lane.name, "task": race.task.name, "workdir": workdir}

    def _announce(self, race: Race) -> None:
        if not self._announced:
            self._announced = True
            if self.warning:
                race.emit(Notice(t=race.clock(), message=self.warning, level="warning"))

    async def run_lane(self, race: Race, lane: Lane) -> None:
        self._announce(race)
        await within_time(race, lane, self._turns(race, lane))

    async def _turns(self, race: Race, lane: Lane) -> None:
        task = race.task
        box = self.sandboxes[lane.name]
        messages = build_messages(task, lane.vars)
        detail = ""

        async def run_check(command: str) -> Any:
            return await box.run(command, timeout=task.exec_timeout)

        for turn in range(1, task.max_turns + 1):
            reply = await stream_command(race, lane, messages, turn, sim_directive(task, lane, turn, self.seed))
            if lane.ended:
                return
            res = None
            if reply.command is None:
                if not no_command_verdict(race, lane, turn, reply):
                    return
                detail = NO_COMMAND
            else:
                race.emit(CommandExtracted(t=race.clock(), lane=lane.name, turn=turn, command=reply.command))
                res = await box.run(reply.command, timeout=task.exec_timeout)
                race.emit(exec_event(race, lane, turn, res))
                outcome = await run_checks(task.checks, workdir=box.workdir, result=res, run=run_check)
                race.emit(Verdict(t=race.clock(), lane=lane.name, turn=turn, passed=outcome.passed, detail=outcome.detail))
                if outcome.passed:
                    race.end_lane(lane, LaneFinished(t=race.clock(), lane=lane.name, reason=f"solved on turn {turn}"))
                    return
                detail = outcome.detail
            if turn < task.max_turns:
                messages = messages + [
                    {"role": "assistant", "content": reply.text},
                    {"role": "user", "content": feedback_message(reply.command, res, detail, task.max_turns - turn)},
                ]
        turns = f"{task.max_turns} {'turn' if task.max_turns == 1 else 'turns'}"
        eliminate(race, lane, f"out of turns ({turns}): {detail}")

    def winner(self, race: Race) -> str | None:
        """The lane whose passing Verdict came first (by ``t``)."""
        passed = [(s.completion_t, s.index, s.name) for s in race.standings.lanes.values() if s.completion_t is not None]
        return min(passed)[2] if passed else None

    async def close(self, race: Race) -> None:
        boxes, self.sandboxes = list(self.sandboxes.values()), {}
        await asyncio.gather(*(box.close() for box in boxes), return_exceptions=True)


__all__ = [
    "FirstCorrectRace",
    "TurnReply",
    "clip",
    "derive_seed",
    "feedback_message",
    "sim_directive",
    "stream_command",
]
