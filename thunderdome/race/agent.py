"""The ``first_correct`` win rule: each lane in its own sandbox, the first to pass the checks wins.

Invariant: every lane works in its own sandbox work dir (with the task's
setup files) and ends with exactly one ending event: ``LaneFinished`` when a
command passed every check (the first such lane, by its passing ``Verdict``'s
``t``, is the winner), ``LaneEliminated`` when it ran out of turns or time,
``LaneFailed`` when its backend failed. The turns themselves are the one
agent loop (``race/turns.py``); this rule's act runs the command in the
lane's sandbox and applies the task's checks.

Choices (documented for the README):

- **Act early.** The moment a shell block closes, the lane stops reading that
  reply (the HTTP stream is closed; the rest of it is neither read nor
  recorded, and no ``StreamEnded`` is emitted for that turn) and runs the
  command. A fast lane thus acts before its reply ends, as in the original
  race. Token counts for such a turn are what arrived before the command.
- **Never run what the model did not finish.** A reply cut by ``max_tokens``
  runs nothing: the verdict "reply cut mid-command", then a feedback turn
  (``race/text_mode.py``).
- **The win is called at the first pass.** The engine calls it at once
  (``WinnerDecided``) and stops the other lanes (``LaneStopped``, "race won
  by X": their commands are killed, their figures kept). A task with
  ``race_on: true`` races on for places instead: the others keep working
  until they pass, run out of turns or out of time, and the leaderboard
  ranks passes by time.
- **Out of time** (the task's ``timeout``, a little before the engine's own
  backstop) eliminates a lane: ``LaneEliminated("out of time ...")``.
- **No command found** is a failed ``Verdict`` ("no command found"), then a
  feedback turn, or elimination when no turns are left.
"""

from __future__ import annotations

import asyncio
from typing import Any

from thunderdome.core.events import Notice
from thunderdome.race.checks import run_checks
from thunderdome.race.engine import Lane, Race
from thunderdome.race.tools_mode import mode_for
from thunderdome.race.turns import Judgement, exec_event, run_turns, within_time


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
        await within_time(race, lane, run_turns(race, lane, self._act, mode_for(lane.spec, race.task), self.seed))

    async def _act(self, race: Race, lane: Lane, turn: int, command: str) -> Judgement:
        """Run the command in the lane's sandbox, then the task's checks."""
        task = race.task
        box = self.sandboxes[lane.name]

        async def run_check(check_command: str) -> Any:
            return await box.run(check_command, timeout=task.exec_timeout)

        res = await box.run(command, timeout=task.exec_timeout)
        race.emit(exec_event(race, lane, turn, res))
        outcome = await run_checks(task.checks, workdir=box.workdir, result=res, run=run_check)
        return Judgement(outcome.passed, outcome.detail, res)

    def winner(self, race: Race) -> str | None:
        """The lane whose passing Verdict came first (by ``t``): certain the
        moment it passes, as verdicts are stamped in the order they are emitted."""
        passed = [(s.completion_t, s.index, s.name) for s in race.standings.lanes.values() if s.completion_t is not None]
        return min(passed)[2] if passed else None

    async def close(self, race: Race) -> None:
        boxes, self.sandboxes = list(self.sandboxes.values()), {}
        await asyncio.gather(*(box.close() for box in boxes), return_exceptions=True)


__all__ = ["FirstCorrectRace"]
