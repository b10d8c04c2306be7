"""Agent lanes: a real agent program races in its sandbox, metered by its own gateway.

Invariant: an agent lane's program runs in a bwrap sandbox of its own (the
task's files in its work dir, a throwaway HOME with the config its preset
writes, its own network namespace with only loopback) and reaches the world
through one door: a relay on the sandbox's ``127.0.0.1:RELAY_PORT`` to its
gateway's Unix socket, bound into the sandbox read-only. It holds only the
throwaway key. Every chat request it sends is a turn of its lane (the
gateway's events); each shell command it asks for is a ``CommandExtracted``
as the gateway sees it. When the program stops, the task's checks run on the
work dir and decide the lane: exactly one ``Verdict``, then ``LaneFinished``
(passed) or ``LaneEliminated`` (failed, or out of time); a program that
cannot start (not installed, no bwrap) is a one-line ``LaneFailed``.
Lanes without a program run in the wrapped race mode, unchanged.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any

from thunderdome.agents.presets import PRESETS, Launch, Preset
from thunderdome.agents.binaries import find_agent, mounts_for
from thunderdome.events import CommandExtracted, Event, LaneFailed, LaneFinished, Notice, ToolCallDone, Verdict
from thunderdome.gateway import Gateway, Relayed, Upstream
from thunderdome.race.checks import run_checks
from thunderdome.race.engine import Lane, Race, RaceMode, build_messages
from thunderdome.race.turns import clip, eliminate, sim_directive, time_budget
from thunderdome.sim.tools import COMMAND_FIELDS
from thunderdome.sandbox import Sandbox, SandboxLimits, detect_isolation
from thunderdome.sandbox.isolation import SAFE_PATH, SANDBOX_HOME, SANDBOX_WORK, Bind
from thunderdome.sandbox.limits import MIB, chown_tree

RELAY_PORT = 4010
"""The port the agent's gateway answers on inside its sandbox (its own loopback)."""
DOOR = "/opt/thunderdome"
"""Where the relay script and the gateway's socket appear inside the sandbox."""
AGENT_LIMITS = SandboxLimits(max_procs=512, max_memory=16 * 1024 * MIB, max_file_size=256 * MIB)
"""An agent is a big program (a JS runtime with many threads), not one command."""
_RELAY_SOURCE = Path(__file__).with_name("relay.py")


def shell_command(call: ToolCallDone) -> str | None:
    """The shell command a tool call asks for (its ``command`` or ``cmd`` argument), if any."""
    try:
        args = json.loads(call.arguments)
    except ValueError:
        return None
    fields = [args.get(name) for name in COMMAND_FIELDS] if isinstance(args, dict) else []
    command = next((value for value in fields if value), None)
    if isinstance(command, list) and all(isinstance(part, str) for part in command):
        return shlex.join(command)
    return command if isinstance(command, str) and command else None


def relayed_summary(relayed: list[Relayed]) -> str:
    """What an agent sent, e.g. ``2 x POST /v1/messages (streamed), 1 x GET /v1/models``."""
    counts = Counter((r.method, r.path, r.turn is not None) for r in relayed)
    parts = [f"{n} x {method} {path}" + (" (streamed)" if turn else "") for (method, path, turn), n in counts.items()]
    return ", ".join(parts) or "nothing"


def last_line(text: str, limit: int = 160) -> str:
    """The last non-blank line of an agent's output, cut to ``limit`` characters."""
    lines = [line for line in text.splitlines() if line.strip()]
    return clip(lines[-1].strip(), limit) if lines else ""


class AgentRun:
    """One agent lane's sandbox, throwaway HOME, gateway and door."""

    def __init__(self, race: Race, lane: Lane, preset: Preset, seed: int | None) -> None:
        self.race = race
        self.lane = lane
        self.preset = preset
        self.seed = seed
        self.door = Path(tempfile.mkdtemp(prefix="thunderdome-door-"))
        self.home = Path(tempfile.mkdtemp(prefix="thunderdome-home-"))
        self.box = Sandbox(limits=AGENT_LIMITS, setup_files=dict(race.task.setup_files))
        self.gateway = Gateway(
            lane.name, Upstream.of(lane.backend), self._emit, race.clock,
            directive_for=lambda n: sim_directive(race.task, lane, n, seed), on_turn=self._on_turn,
        )

    async def open(self) -> None:
        """Make the door (the relay script and the gateway's socket) and the HOME."""
        shutil.copyfile(_RELAY_SOURCE, self.door / "relay.py")
        os.chmod(self.door, 0o755)
        os.chmod(self.door / "relay.py", 0o644)
        socket_path = str(self.door / "gateway.sock")
        await self.gateway.listen_unix(socket_path)
        if self.box.uid is not None:
            os.chown(socket_path, self.box.uid, self.box.uid)

    def _on_turn(self, turn: int) -> None:
        self.lane.turn = turn

    def _emit(self, event: Event) -> None:
        if self.lane.ended:
            return
        self.race.emit(event)
        if isinstance(event, ToolCallDone):
            command = shell_command(event)
            if command is not None:
                self.race.emit(CommandExtracted(t=event.t, lane=event.lane, turn=event.turn, command=command))

    def launch(self) -> Launch:
        prompt = "\n\n".join(m["content"] for m in build_messages(self.race.task, self.lane.vars))
        return Launch(prompt=prompt, base_url=f"http://127.0.0.1:{RELAY_PORT}", model=self.lane.backend.model,
                      workdir=SANDBOX_WORK, home=SANDBOX_HOME, command=self.lane.spec.command)

    def command_line(self, binary: str) -> str:
        """The sandbox's shell line: the relay first (it returns once listening), then the agent."""
        launch = self.launch()
        for rel, text in self.preset.files(launch).items():
            target = self.home / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        if self.box.uid is not None:
            chown_tree(self.home, self.box.uid)
        argv = self.preset.argv(launch)
        argv[0] = binary
        env = {"PATH": f"{os.path.dirname(binary)}:{SAFE_PATH}", **self.preset.env(launch)}
        relay = ["python3", "-I", f"{DOOR}/relay.py", "127.0.0.1", str(RELAY_PORT), f"{DOOR}/gateway.sock"]
        assignments = [f"{k}={v}" for k, v in env.items()]
        return f"{shlex.join(relay)} && exec env {shlex.join(assignments)} {shlex.join(argv)}"

    async def run(self) -> None:
        race, lane, preset = self.race, self.lane, self.preset
        level = self.box.isolation.level
        if level != "bwrap":
            reason = f"agent lanes need the bwrap sandbox (this machine gives {level}): install bubblewrap"
            race.end_lane(lane, LaneFailed(t=race.clock(), lane=lane.name, reason=reason))
            return
        binary = find_agent(preset)
        if binary is None:
            reason = f"{preset.binary} not found: install it with `{preset.install_hint()}`"
            race.end_lane(lane, LaneFailed(t=race.clock(), lane=lane.name, reason=reason))
            return
        binds = (Bind(str(self.door), DOOR), Bind(str(self.home), SANDBOX_HOME, writable=True),
                 *mounts_for(binary))
        res = await self.box.run(self.command_line(binary), timeout=time_budget(race), binds=binds)
        if lane.ended:
            return
        if res.timed_out:
            eliminate(race, lane, f"out of time: {preset.name} not done within {race.task.timeout:g} s")
            return

        async def run_check(check_command: str) -> Any:
            return await self.box.run(check_command, timeout=race.task.exec_timeout)

        race.emit(Notice(t=race.clock(), message=f"gateway relayed: {relayed_summary(self.gateway.relayed)}",
                         lane=lane.name))
        outcome = await run_checks(race.task.checks, workdir=self.box.workdir, result=res, run=run_check)
        turn = max(lane.turn, 1)
        race.emit(Verdict(t=race.clock(), lane=lane.name, turn=turn, passed=outcome.passed, detail=outcome.detail))
        exited = f"{preset.name} exited {res.exit_code if res.exit_code is not None else res.reason}"
        turns = f"{self.gateway.turns} {'turn' if self.gateway.turns == 1 else 'turns'}"
        if outcome.passed:
            race.end_lane(lane, LaneFinished(t=race.clock(), lane=lane.name, reason=f"solved: {exited} after {turns}"))
            return
        tail = last_line(res.stdout) or last_line(res.stderr)
        eliminate(race, lane, f"{outcome.detail}; {exited} after {turns}" + (f": {tail}" if tail else ""))

    async def close(self) -> None:
        await self.gateway.aclose()
        await self.box.close()
        shutil.rmtree(self.door, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)


class AgentLanes:
    """A ``RaceMode`` around another: lanes with a ``program`` run it (``AgentRun``),
    the rest run in ``inner``; the winner is the inner mode's call (first pass)."""

    def __init__(self, inner: RaceMode, seed: int | None = None) -> None:
        self.inner = inner
        self.seed = seed
        self.runs: dict[str, AgentRun] = {}

    @property
    def isolation(self) -> str:  # type: ignore[override]
        return self.inner.isolation

    async def prepare(self, race: Race) -> None:
        await self.inner.prepare(race)
        await asyncio.to_thread(detect_isolation)
        for lane in race.lanes:
            if lane.spec.program:
                run = self.runs[lane.name] = AgentRun(race, lane, PRESETS[lane.spec.program], self.seed)
                await run.open()

    async def run_lane(self, race: Race, lane: Lane) -> None:
        run = self.runs.get(lane.name)
        if run is None:
            await self.inner.run_lane(race, lane)
        else:
            await run.run()

    def winner(self, race: Race) -> str | None:
        return self.inner.winner(race)

    async def close(self, race: Race) -> None:
        runs, self.runs = list(self.runs.values()), {}
        try:
            await asyncio.gather(*(run.close() for run in runs), return_exceptions=True)
        finally:
            await self.inner.close(race)


__all__ = ["AGENT_LIMITS", "AgentLanes", "AgentRun", "RELAY_PORT", "shell_command"]
