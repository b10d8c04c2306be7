"""The original Thunderdome, ``last_standing`` rule: one arena, a fighter per lane.

Invariant: a lane whose fighter dies is eliminated at once (``LaneEliminated``
with ``by`` = the lane whose command was running when it died, if any) and
its work is cancelled; the race has at most one winner: the lane whose
fighter is the last one alive. Every lane ends with exactly one ending event.

How it runs:

- ``prepare`` starts one shared ``Arena`` (one PID namespace under bwrap or
  unshare) with a fighter process per lane; each lane's prompt fields are
  ``{pid}`` (its fighter), ``{opponents}`` (the others' PIDs, space-separated)
  and ``{opponent_count}``.
- Each lane runs the one agent turn loop (``race/turns.py``); this rule's act
  fires the lane's command into the arena as that lane (``Arena.run``) the
  moment the lane mode hands it over (a shell block closed), and judges it
  by the deaths it caused. A reply cut by ``max_tokens`` fires nothing.
- Deaths are seen the moment they happen: a watcher task waits on the
  arena's pidfd-based ``wait_death`` (no polling), and every lane re-checks
  ``arena.alive()`` right after its own command. The killer is the lane whose
  command was running when the death was seen (if several: another lane's
  before the victim's own, then the one that started first). A victim killed
  by its own command: "killed by its own command"; none running: "fighter
  died".
- A lane whose command leaves it alive and every other fighter dead gets
  ``Verdict(passed=True)`` and wins. When one fighter is left while its lane
  is between commands (the others killed each other), it wins as "last
  fighter standing" ("killed every opponent" when the last death was put on
  its own command: a kill that landed after the command ended). A command
  that leaves opponents alive is a failed verdict and, with turns left, a
  feedback turn; out of turns or time: the
  lane is eliminated (its fighter stays in the arena, a target for the rest).
- Sim lanes reply with the task's reference rendered with their own PIDs.
- A lane may also fight through its own program (an agent lane,
  ``agents/fight.py``): the program's process is its fighter, adopted into
  the arena, and each shell command its gateway sees counts as running from
  its tool call to the program's next request (``tool_started`` /
  ``tools_done``) for killer attribution; the program being left alone wins
  at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Callable

from thunderdome.core.events import FighterSpawned, LaneFinished, Notice, Verdict
from thunderdome.race.engine import Lane, Race
from thunderdome.race.tools_mode import mode_for
from thunderdome.race.turns import Judgement, eliminate, exec_event, run_turns, within_time

if TYPE_CHECKING:
    from thunderdome.sandbox import SandboxLimits

SETTLE_S = 0.1
"""After a command, how long to wait for the fighters it signalled to die."""
SETTLE_POLL_S = 0.002
KILL_GRACE_S = 0.05
"""A death seen this long after a command (and its settle wait) ended is
still put on that command."""


class LastStandingRace:
    """RaceMode for ``win_rule: last_standing``."""

    def __init__(self, isolation: str | None = None, seed: int | None = None) -> None:
        self.isolation = "none"
        self.force = isolation
        self.seed = seed
        self.arena: Any = None
        self.warning: str | None = None
        self._winner: str | None = None
        self._execs: dict[str, list[list[float | None]]] = {}
        """lane -> [start, end] of each of its commands (monotonic; end None while running)."""
        self._executing: set[str] = set()
        self._handled: set[str] = set()
        self._watcher: asyncio.Task | None = None
        self._started = False
        self._last_killer: str | None = None
        """Whose command the latest death was put on."""
        self.own_death: dict[str, Callable[[], str]] = {}
        """lane -> what its fighter's death is called when no command was running
        (default "fighter died"; an agent lane's fighter is its program)."""

    # -- set-up ------------------------------------------------------------------------

    async def prepare(self, race: Race) -> None:
        await self.open_arena(race, [lane.name for lane in race.lanes])
        self.assign(race)

    async def open_arena(self, race: Race, fighters: list[str], limits: SandboxLimits | None = None) -> None:
        """Start the arena with a supervisor's fighter for each of ``fighters``
        (other lanes' fighters join it later: ``Arena.adopt``)."""
        from thunderdome.sandbox import Arena, SandboxLimits, detect_isolation

        iso = await asyncio.to_thread(detect_isolation, self.force)
        self.isolation = iso.level
        self.arena = Arena(limits=limits or SandboxLimits(timeout=race.task.exec_timeout), isolation=iso)
        await self.arena.start(fighters)
        self.warning = self.arena.warning

    def assign(self, race: Race) -> None:
        """Every lane's prompt fields, once every lane has its fighter."""
        pids = self.arena.pids
        for lane in race.lanes:
            others = [str(pids[other.name]) for other in race.lanes if other is not lane]
            lane.vars = {
                "lane": lane.name,
                "task": race.task.name,
                "pid": pids[lane.name],
                "opponents": " ".join(others),
                "opponent_count": len(others),
            }

    def begin(self, race: Race) -> None:
        """First lane past the barrier: announce the sandbox, start watching."""
        if self._started:
            return
        self._started = True
        if self.warning:
            race.emit(Notice(t=race.clock(), message=self.warning, level="warning"))
        for lane in race.lanes:  # who is who in the arena, for the viewer and the recording
            race.emit(FighterSpawned(t=race.clock(), lane=lane.name, pid=int(lane.vars["pid"])))
        self._watcher = asyncio.create_task(self._watch(race), name="arena-watcher")

    async def _watch(self, race: Race) -> None:
        while True:
            await self.arena.wait_death()
            try:
                self._reap(race)
            except Exception as exc:  # keep watching; the lanes re-check after each command
                race.emit(Notice(t=race.clock(), message=f"arena watcher: {type(exc).__name__}: {exc}", level="error"))

    # -- deaths ------------------------------------------------------------------------

    def _killer(self, victim: str, died: float) -> str | None:
        """The lane whose command was running when ``victim``'s fighter died."""
        candidates = []
        for lane, spans in self._execs.items():
            for start, end in spans:
                assert start is not None
                if start <= died <= (end if end is not None else died) + KILL_GRACE_S:
                    candidates.append((lane == victim, start, lane))
        return min(candidates)[2] if candidates else None

    def _reap(self, race: Race, actor: str | None = None) -> None:
        """Eliminate every lane whose fighter died, then see if one is left.
        Synchronous: runs between awaits, so lanes never see half a reaping."""
        alive = self.arena.alive()
        died_at = self.arena.death_times
        now = time.monotonic()
        for name, is_alive in alive.items():
            if is_alive or name in self._handled:
                continue
            self._handled.add(name)
            killer = self._killer(name, died_at.get(name, now))
            self._last_killer = killer
            lane = race.lane(name)
            if lane.ended:
                continue
            if killer is None:
                reason, by = self.own_death[name]() if name in self.own_death else "fighter died", None
            elif killer == name:
                reason, by = "killed by its own command", None
            else:
                reason, by = f"killed by {killer}", killer
            eliminate(race, lane, reason, by=by)
            race.cancel_lane(lane)
        self._settle(race, alive, actor)

    def _settle(self, race: Race, alive: dict[str, bool], actor: str | None) -> None:
        """One fighter left and its lane between commands: it wins."""
        living = [name for name, ok in alive.items() if ok]
        if self._winner is not None or len(living) != 1 or not self._handled:
            return
        lane = race.lane(living[0])
        if lane.ended or lane.name in self._executing:
            return  # a lane mid-command decides for itself when its command ends
        acting = lane.name in (actor, self._last_killer)  # its command (or its agent's tool) did the last kill
        self._win(race, lane, "killed every opponent" if acting else "last fighter standing")

    def _win(self, race: Race, lane: Lane, detail: str) -> None:
        self._winner = lane.name
        race.emit(Verdict(t=race.clock(), lane=lane.name, turn=max(lane.turn, 1), passed=True, detail=detail))
        race.end_lane(lane, LaneFinished(t=race.clock(), lane=lane.name, reason=detail))
        race.cancel_lane(lane)

    # -- lanes -------------------------------------------------------------------------

    async def run_lane(self, race: Race, lane: Lane) -> None:
        self.begin(race)
        await within_time(race, lane, run_turns(race, lane, self._act, mode_for(lane.spec, race.task), self.seed))

    async def _fire(self, race: Race, lane: Lane, turn: int, command: str) -> Any:
        """Run the lane's command in the arena, emit ExecFinished, then give
        its kills up to ``SETTLE_S`` to land (a signalled process dies when it
        is next scheduled, which can be a few ms after ``kill`` returns).
        The lane counts as mid-command (for killer attribution and for
        ``_settle``) until then. None if the lane ended meanwhile."""
        span: list[float | None] = [time.monotonic(), None]
        self._execs.setdefault(lane.name, []).append(span)
        self._executing.add(lane.name)
        try:
            res = await self.arena.run(lane.name, command, timeout=race.task.exec_timeout)
            if lane.ended:
                return None
            race.emit(exec_event(race, lane, turn, res))
            deadline = time.monotonic() + SETTLE_S
            while time.monotonic() < deadline and self._opponents_alive(lane.name):
                await asyncio.sleep(SETTLE_POLL_S)
            return res
        finally:
            span[1] = time.monotonic()
            self._executing.discard(lane.name)

    def _opponents_alive(self, name: str) -> list[str]:
        return [other for other, ok in self.arena.alive().items() if ok and other != name]

    async def _act(self, race: Race, lane: Lane, turn: int, command: str) -> Judgement | None:
        """Fire the command, reap the deaths it caused; it passes when every
        opponent is dead and the lane still stands."""
        res = await self._fire(race, lane, turn, command)
        if res is None or lane.ended:
            return None
        self._reap(race, actor=lane.name)
        if lane.ended:
            return None
        standing = self._opponents_alive(lane.name)
        if not standing and self._winner is None:
            self._winner = lane.name
            return Judgement(True, "killed every opponent", res, finished="killed every opponent")
        return Judgement(False, self._still_alive(race, standing), res)

    def _still_alive(self, race: Race, standing: list[str]) -> str:
        pids = " ".join(str(self.arena.pids[name]) for name in standing)
        return f"{len(standing)} of {len(race.lanes) - 1} opponents still alive (PIDs {pids})"

    # -- commands run outside Arena.run (an agent's tools, as its gateway sees them) ----

    def tool_started(self, lane: str, at: float) -> None:
        """A command of ``lane`` runs from ``at`` (monotonic) on, by the lane's
        own program: a death meanwhile is put on it. It does not hold back the
        lane's win (``_settle``): an agent left alone has won."""
        self._execs.setdefault(lane, []).append([at, None])

    def tools_done(self, race: Race, lane: Lane, turn: int) -> None:
        """``lane``'s program asks again: its tools of ``turn`` have run. Their
        spans end now; the deaths they caused are reaped, and while opponents
        still stand the turn gets a failed ``Verdict``."""
        now = time.monotonic()
        for span in self._execs.get(lane.name, []):
            if span[1] is None:
                span[1] = now
        self._reap(race, actor=lane.name)
        if lane.ended:
            return
        standing = self._opponents_alive(lane.name)
        if standing:
            race.emit(Verdict(t=race.clock(), lane=lane.name, turn=turn, passed=False,
                              detail=self._still_alive(race, standing)))

    # -- end ---------------------------------------------------------------------------

    def winner(self, race: Race) -> str | None:
        return self._winner

    async def close(self, race: Race) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self.arena is not None:
            arena, self.arena = self.arena, None
            await arena.close()


__all__ = ["LastStandingRace", "KILL_GRACE_S", "SETTLE_S"]
