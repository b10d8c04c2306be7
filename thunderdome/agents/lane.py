"""Agent lanes: a real agent program races in its sandbox, metered by its own gateway.

Invariant: an agent lane's program runs in a bwrap sandbox of its own (the
task's files in its work dir, a throwaway HOME with the config its preset
writes, its own network namespace with only loopback) and reaches the world
through one door: its own ``127.0.0.1:DOOR_PORT``, a listening socket
that ``gateway/door.py`` makes in the sandbox's network namespace before
the agent starts and hands to its gateway over a Unix socket (bound into
the sandbox read-only, gone once used); the gateway accepts and answers the
agent's connections itself, no relay between. It holds only the
throwaway key. Every streamed chat request it sends is a turn of its lane
(the gateway's events; any other request, a chat request that asked for no
stream included, is a ``RequestRelayed``); each shell command it asks for is a ``CommandExtracted``
as the gateway sees it. The task's checks decide the lane, with exactly one
``Verdict``: when the checks only read files, they run each time the agent
asks again after a tool call (its tools have run: the gateway sees it), and
a pass ends the lane there (``LaneFinished``; the agent is stopped, as a
plain lane stops when its command passes). Otherwise, and when no such
check passed, they run on the work dir when the program stops:
``LaneFinished`` (passed) or ``LaneEliminated`` (failed, or out of time). A program that cannot start
(not installed, no bwrap) is a one-line ``LaneFailed``.
Lanes without a program run in the wrapped race mode, unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
from thunderdome.core.events import CommandExtracted, Event, LaneFailed, LaneFinished, Notice, ToolCallDone, Verdict
from thunderdome.gateway import Gateway, Relayed, Upstream
from thunderdome.gateway.door import __file__ as door_script
from thunderdome.race.checks import run_checks
from thunderdome.race.engine import Lane, Race, RaceMode, build_messages
from thunderdome.race.turns import clip, eliminate, sim_directive, time_budget
from thunderdome.sim.tools import COMMAND_FIELDS
from thunderdome.sandbox import ExecResult, Sandbox, SandboxLimits, detect_isolation
from thunderdome.sandbox.isolation import SAFE_PATH, SANDBOX_HOME, SANDBOX_WORK, Bind
from thunderdome.sandbox.limits import MIB, chown_tree

DOOR_PORT = 4010
"""The port the agent's gateway answers on inside its sandbox (its own loopback)."""
DOOR = "/opt/thunderdome"
"""Where the door script and the gateway's hand-over socket appear inside the sandbox."""
AGENT_LIMITS = SandboxLimits(max_procs=512, max_memory=16 * 1024 * MIB, max_file_size=256 * MIB)
"""An agent is a big program (a JS runtime with many threads), not one command."""
FILE_CHECKS = ("file_equals", "file_contains")
"""Checks that only read the work dir: they may run while the agent works."""
_NO_OUTPUT = ExecResult(None, "", "", False, 0.0, "", False, None, 0.0, 0.0)
"""What a check sees as output before the agent has stopped (file checks read none)."""


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
    """What an agent sent, e.g. ``2 x POST /v1/messages (streamed), 1 x GET /v1/models``
    (a chat request that asked for no stream: ``(not streamed)``)."""
    counts = Counter((r.method, r.path, " (streamed)" if r.turn is not None else " (not streamed)" if r.chat else "")
                     for r in relayed)
    parts = [f"{n} x {method} {path}{how}" for (method, path, how), n in counts.items()]
    return ", ".join(parts) or "nothing"


def door_command() -> str:
    """The sandbox's shell words that open its door (``AgentRun.open`` made the
    socket they hand it to); they return once the gateway answers on it."""
    return shlex.join(["python3", "-I", f"{DOOR}/door.py", "127.0.0.1", str(DOOR_PORT), f"{DOOR}/gateway.sock"])


def open_door(door: Path, gateway: Gateway, uid: int | None) -> None:
    """Put the door script in ``door`` (bound read-only at ``DOOR`` in the
    sandbox) and have ``gateway`` wait there for the sandbox's port; the
    hand-over socket belongs to the sandbox's ``uid`` (when it has one)."""
    shutil.copyfile(door_script, door / "door.py")
    os.chmod(door, 0o755)
    os.chmod(door / "door.py", 0o644)
    socket_path = gateway.listen_door(str(door / "gateway.sock"), "127.0.0.1", DOOR_PORT)
    if uid is not None:
        os.chown(socket_path, uid, uid)


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
        self.box = self.sandbox()
        self._tool_turns: set[int] = set()
        """Turns whose reply called a tool (the agent runs it before its next request)."""
        self._checks_on_disk = bool(race.task.checks) and all(c.kind in FILE_CHECKS for c in race.task.checks)
        """Every check reads the work dir only, so it can run while the agent does."""
        self._pending: set[asyncio.Task[None]] = set()
        self._last_t = 0.0
        self.gateway = Gateway(
            lane.name, Upstream.of(lane.backend), self._emit, race.clock,
            directive_for=lambda n: sim_directive(race.task, lane, n, seed), on_turn=self._on_turn,
        )

    def sandbox(self) -> Sandbox:
        """The lane's sandbox: its work dir with the task's files, and its uid."""
        return Sandbox(limits=AGENT_LIMITS, setup_files=dict(self.race.task.setup_files))

    async def open(self) -> None:
        """Make the door (the door script and the gateway's hand-over socket)."""
        open_door(self.door, self.gateway, self.box.uid)

    def _on_turn(self, turn: int) -> None:
        self.lane.turn = turn
        if turn - 1 in self._tool_turns and self._checks_on_disk:
            self._pending.add(asyncio.get_running_loop().create_task(self._check_after_tools(turn - 1)))

    async def _check_after_tools(self, turn: int) -> None:
        """The agent's tools of ``turn`` have run (its next request is out): if
        the work dir passes now, the lane is done at this moment, as a plain
        lane is when its command passes; the agent is stopped."""
        race, lane = self.race, self.lane
        outcome = await run_checks(race.task.checks, workdir=self.box.workdir, result=_NO_OUTPUT)
        if not outcome.passed or lane.ended:
            return
        self.gateway.flush()
        self._emit(Verdict(t=race.clock(), lane=lane.name, turn=turn, passed=True, detail=outcome.detail))
        self._emit_relayed()
        reason = f"solved after the tools of turn {turn}: {self.preset.name} stopped"
        race.end_lane(lane, LaneFinished(t=race.clock(), lane=lane.name, reason=reason))
        race.cancel_lane(lane)  # the sandbox kills the agent's whole tree

    def _emit_relayed(self) -> None:
        summary = relayed_summary(self.gateway.relayed)
        self._emit(Notice(t=self.race.clock(), message=f"gateway relayed: {summary}", lane=self.lane.name))

    def _emit(self, event: Event) -> None:
        """Every event of this lane goes out here, its ``t`` never below the
        lane's last one: a chunk stamped just before the agent's socket made
        the gateway wait must not go out after a later event of the lane (a
        parallel request's, a verdict's) with an earlier time."""
        if self.lane.ended:
            return
        if event.t < self._last_t:
            event = dataclasses.replace(event, t=self._last_t)
        self._last_t = event.t
        self.race.emit(event)
        if isinstance(event, ToolCallDone):
            self._tool_turns.add(event.turn)
            command = shell_command(event)
            if command is not None:
                self.race.emit(CommandExtracted(t=event.t, lane=event.lane, turn=event.turn, command=command))

    def launch(self) -> Launch:
        prompt = "\n\n".join(m["content"] for m in build_messages(self.race.task, self.lane.vars))
        return Launch(prompt=prompt, base_url=f"http://127.0.0.1:{DOOR_PORT}", model=self.lane.backend.model,
                      workdir=SANDBOX_WORK, home=SANDBOX_HOME, command=self.lane.spec.command)

    def command_line(self, binary: str) -> str:
        """The sandbox's shell line: the door first (it returns once the gateway answers on it), then the agent."""
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
        assignments = [f"{k}={v}" for k, v in env.items()]
        return f"{door_command()} && exec env {shlex.join(assignments)} {shlex.join(argv)}"

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
        self.gateway.flush()
        self._emit_relayed()
        exited = f"{preset.name} exited {res.exit_code if res.exit_code is not None else res.reason}"
        turns = f"{self.gateway.turns} {'turn' if self.gateway.turns == 1 else 'turns'}"
        if res.timed_out:
            eliminate(race, lane, f"out of time: {preset.name} not done within {race.task.timeout:g} s")
            return

        async def run_check(check_command: str) -> Any:
            return await self.box.run(check_command, timeout=race.task.exec_timeout)

        outcome = await run_checks(race.task.checks, workdir=self.box.workdir, result=res, run=run_check)
        if lane.ended:
            return
        self._emit(Verdict(t=race.clock(), lane=lane.name, turn=max(lane.turn, 1), passed=outcome.passed,
                           detail=outcome.detail))
        if outcome.passed:
            race.end_lane(lane, LaneFinished(t=race.clock(), lane=lane.name, reason=f"solved: {exited} after {turns}"))
            return
        tail = last_line(res.stdout) or last_line(res.stderr)
        eliminate(race, lane, f"{outcome.detail}; {exited} after {turns}" + (f": {tail}" if tail else ""))

    async def close(self) -> None:
        for task in self._pending:
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
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


__all__ = ["AGENT_LIMITS", "AgentLanes", "AgentRun", "DOOR", "DOOR_PORT", "door_command", "open_door", "shell_command"]
