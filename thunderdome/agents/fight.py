"""Agent lanes in a ``last_standing`` race: each agent's own process is its lane's fighter.

Invariant: an agent lane's program runs in the race's one arena, so every
PID is mutually visible and killable: it starts held in a bwrap sandbox of
its own that joins the arena's PID namespace (``sandbox/guest.py``), and the
held process becomes the agent (``exec``), so the PID its opponents are told
(``{opponents}``) is the agent's own process, and killing it is what takes
the agent out. (A separate fighter that the agent's death takes down would
let an agent be "killed" while its program still runs, or survive its own
crash; the agent being the fighter is the original race.) The agent's death
is seen at once by the arena's pidfd watcher, and its whole tree goes with it
(every process of its network namespace, any daemon it left included).

Everything else is an agent lane's as in ``agents/lane.py``: its own gateway
and throwaway key, its own network namespace with only loopback, where its
door to its gateway opens. The arena shares the PID and user namespaces
only, never the network, so what an agent can reach is: its own gateway; no
other loopback (the host's, another agent's); every arena process, to see
and to signal (the fight); and, as all fighters run under the arena's uid,
its opponents' /proc entries, their files through ``/proc/PID/root``
included, but not their gateways: the door hands its socket over and removes
it, so nothing of a gateway is left to find there (``tests/test_agent_sigkill.py``
probes it). The shell commands
its gateway sees (``CommandExtracted`` from its tool calls) are its commands
for killer attribution: each runs from its ``ToolCallDone`` to the agent's
next request (``LastStandingRace.tool_started`` / ``tools_done``). Sim lanes answer the
agent's tool-calling turn with the task's reference rendered with that lane's
PIDs (``sim_directive`` reads the lane's arena fields). An agent that cannot
fight (not installed, no bwrap) is a one-line ``LaneFailed``, and a plain
fighter stands in its place (a target, as an eliminated lane's fighter is).
Lanes without a program fight as plain model lanes, unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

from thunderdome.agents.binaries import find_agent, mounts_for
from thunderdome.agents.lane import AGENT_LIMITS, DOOR, AgentRun, last_line, relayed_summary, shell_command
from thunderdome.agents.presets import PRESETS, Preset
from thunderdome.core.events import Event, LaneFailed, Notice, ToolCallDone
from thunderdome.race.arena import LastStandingRace
from thunderdome.race.engine import Lane, Race
from thunderdome.race.turns import eliminate, time_budget
from thunderdome.sandbox import Sandbox, SandboxLimits, detect_isolation
from thunderdome.sandbox.guest import ArenaGuest
from thunderdome.sandbox.isolation import SANDBOX_HOME, Bind
from thunderdome.sandbox.limits import chown_tree

LAUNCH = f"{DOOR}/launch.sh"
"""The script a held agent runs when its lane starts: the door, then the agent."""


def fight_limits(task_exec_timeout: float, agents: int) -> SandboxLimits:
    """The arena's limits when agents fight in it: room for every agent
    (``AGENT_LIMITS`` each) besides the plain lanes' commands."""
    return dataclasses.replace(AGENT_LIMITS, timeout=task_exec_timeout,
                               max_procs=AGENT_LIMITS.max_procs * (agents + 1))


class AgentFighter(AgentRun):
    """One agent lane in the arena: its gateway and door (``AgentRun``), its guest sandbox."""

    def __init__(self, race: Race, lane: Lane, preset: Preset, seed: int | None, mode: LastStandingRace) -> None:
        self.mode = mode  # before AgentRun's set-up: ``sandbox`` reads it
        super().__init__(race, lane, preset, seed)
        self.guest: ArenaGuest | None = None
        self.binary = find_agent(preset)
        self.cannot = ""
        """Why this agent cannot fight here (then a plain fighter stands in for it)."""
        level = detect_isolation(mode.force).level
        if level != "bwrap":
            self.cannot = f"agent lanes need the bwrap sandbox (this machine gives {level}): install bubblewrap"
        elif self.binary is None:
            self.cannot = f"{preset.binary} not found: install it with `{preset.install_hint()}`"

    def sandbox(self) -> Sandbox:
        """Its work dir only: the agent runs under the arena's uid (``enter``), not one of its own."""
        iso = dataclasses.replace(detect_isolation(self.mode.force), drop_uid=False, cgroup=None)
        return Sandbox(limits=AGENT_LIMITS, isolation=iso, setup_files=dict(self.race.task.setup_files))

    def _owned(self, uid: int | None) -> None:
        """Hand the agent's work dir, HOME and gateway socket to the arena's uid."""
        if uid is None:
            return
        chown_tree(self.box.workdir, uid)
        chown_tree(self.home, uid)
        handover = self.door / "gateway.sock"
        if handover.exists():
            os.chown(handover, uid, uid)

    async def enter(self) -> int:
        """Start the agent's sandbox, held, inside the arena; its arena PID."""
        arena = self.mode.arena
        assert self.binary is not None
        self._owned(arena.uid)
        binds = (Bind(str(self.door), DOOR), Bind(str(self.home), SANDBOX_HOME, writable=True),
                 *mounts_for(self.binary))
        self.guest = ArenaGuest(arena, self.lane.name, self.box.workdir, LAUNCH, binds)
        self.mode.own_death[self.lane.name] = self._exited
        return await self.guest.start()

    def _exited(self) -> str:
        """Its death with no command of its own running: it ended by itself."""
        assert self.guest is not None
        stdout, stderr = self.guest.output
        tail = last_line(stderr) or last_line(stdout)
        return f"{self.preset.name} exited" + (f": {tail}" if tail else "")

    def arm(self) -> None:
        """Write the launch script, now that the prompt's PIDs are known."""
        assert self.binary is not None
        (self.door / "launch.sh").write_text(self.command_line(self.binary) + "\n")
        self._owned(self.mode.arena.uid)  # the config files the preset just wrote

    def _emit(self, event: Event) -> None:
        super()._emit(event)
        if isinstance(event, ToolCallDone) and not self.lane.ended and shell_command(event) is not None:
            assert self.race.t0 is not None
            self.mode.tool_started(self.lane.name, self.race.t0 + event.t)

    def _on_turn(self, turn: int) -> None:
        """Its tools of the turn before have run: judged while the lane is still on that turn."""
        if turn - 1 in self._tool_turns and not self.lane.ended:
            self.mode.tools_done(self.race, self.lane, turn - 1)
        super()._on_turn(turn)

    async def fight(self) -> None:
        """Let the agent go; its lane ends when its process dies (the arena's
        watcher eliminates it), when it wins, or when its time is up."""
        race, lane = self.race, self.lane
        if self.guest is None:
            race.end_lane(lane, LaneFailed(t=race.clock(), lane=lane.name, reason=self.cannot))
            return
        self.guest.release()
        try:
            await asyncio.sleep(time_budget(race))
            eliminate(race, lane, f"out of time: {self.preset.name} not done within {race.task.timeout:g} s")
        finally:
            await self.guest.kill()
            if not race.finished:  # what it sent, as its lane's last word (it has ended: emitted directly)
                summary = relayed_summary(self.gateway.relayed)
                race.emit(Notice(t=race.clock(), message=f"gateway relayed: {summary}", lane=lane.name))

    async def close(self) -> None:
        if self.guest is not None:
            await self.guest.kill()
        await super().close()


class AgentFight:
    """A ``RaceMode`` around ``LastStandingRace``: lanes with a ``program``
    fight through it (``AgentFighter``), the rest as plain model lanes; the
    winner is the arena's call (the last fighter standing)."""

    def __init__(self, inner: LastStandingRace, seed: int | None = None) -> None:
        self.inner = inner
        self.seed = seed
        self.fighters: dict[str, AgentFighter] = {}

    @property
    def isolation(self) -> str:  # type: ignore[override]
        return self.inner.isolation

    async def prepare(self, race: Race) -> None:
        inner = self.inner
        await asyncio.to_thread(detect_isolation, inner.force)
        for lane in race.lanes:
            if lane.spec.program:
                fighter = self.fighters[lane.name] = AgentFighter(race, lane, PRESETS[lane.spec.program],
                                                                  self.seed, inner)
                await fighter.open()
        ready = [f for f in self.fighters.values() if not f.cannot]
        plain = [lane.name for lane in race.lanes if lane.name not in {f.lane.name for f in ready}]
        await inner.open_arena(race, plain, fight_limits(race.task.exec_timeout, len(ready)))
        for fighter in ready:
            await fighter.enter()
        inner.assign(race)
        for fighter in ready:
            fighter.arm()

    async def run_lane(self, race: Race, lane: Lane) -> None:
        fighter = self.fighters.get(lane.name)
        if fighter is None:
            await self.inner.run_lane(race, lane)
            return
        self.inner.begin(race)
        await fighter.fight()

    def winner(self, race: Race) -> str | None:
        return self.inner.winner(race)

    async def close(self, race: Race) -> None:
        fighters, self.fighters = list(self.fighters.values()), {}
        try:
            await asyncio.gather(*(fighter.close() for fighter in fighters), return_exceptions=True)
        finally:
            await self.inner.close(race)


__all__ = ["AgentFight", "AgentFighter", "LAUNCH", "fight_limits"]
