"""A program that fights in an arena from a sandbox of its own (an agent lane's program).

Invariant: a guest runs in a bwrap sandbox of its own (mount, network with
only its own loopback, IPC, UTS) that joins the arena's user and PID
namespaces, under the arena's uid and in the arena's cgroup: its PID is an
arena PID, it sees every arena process in its /proc and can signal them, as
they can signal it. It is held before its program runs: ``start`` returns
once its PID is known (and the arena watches it as that lane's fighter), and
``release`` lets the held shell ``exec`` the program's script in place, so
that PID is the program's own. ``kill`` takes down its whole tree: every
process in its network namespace, wherever it was reparented (a daemon it
left behind included), and its bwrap.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
from pathlib import Path

from thunderdome.sandbox.arena import Arena, ArenaError, _ns_pid
from thunderdome.sandbox.isolation import Bind
from thunderdome.sandbox.limits import plan_process
from thunderdome.sandbox.processes import children_of, kill_until_gone, processes_of_uid
from thunderdome.sandbox.runner import _Capture

_START_TIMEOUT = 15.0


def _netns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


class ArenaGuest:
    """One held program in ``arena`` for ``lane``: ``start``, ``release``, ``kill``."""

    def __init__(self, arena: Arena, lane: str, workdir: Path, script: str, binds: tuple[Bind, ...] = ()) -> None:
        """``script``: the path, inside the sandbox, of the shell script ``release`` runs."""
        self.arena = arena
        self.lane = lane
        self.workdir = workdir
        self.script = script
        self.binds = binds
        self.pid: int | None = None
        """The guest's PID as the arena sees it (its opponents' target)."""
        self.host_pid: int | None = None
        self.netns: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._capture = _Capture(arena.limits.max_output, arena.limits.max_total_output)
        self._pumps: list[asyncio.Future[None]] = []

    async def start(self) -> int:
        """Start the sandbox, held; the arena adopts it as ``lane``'s fighter. Its arena PID."""
        arena, iso = self.arena, self.arena.isolation
        hold = f'echo "$$" && IFS= read -r _ && exec {shlex.quote(iso.shell)} {shlex.quote(self.script)} </dev/null'
        join = arena.join_fds()
        try:
            inside = iso.drops_inside
            plan = plan_process(arena.limits, uid=None if inside else arena.uid, cgroup=arena.cgroup, timeout=None,
                                drops_later=inside)
            argv = iso.guest_argv(hold, self.workdir, join, uid=arena.uid, binds=self.binds)
            self._proc = proc = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=iso.env(self.workdir), cwd=iso.cwd(self.workdir), preexec_fn=plan.preexec(),
                start_new_session=True, pass_fds=join,
            )
        finally:
            for fd in join:
                os.close(fd)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), _START_TIMEOUT)
        except asyncio.TimeoutError:
            line = b""
        if not line.strip().isdigit():
            err = b"" if proc.returncode is None else await proc.stderr.read(2000)
            await self.kill()
            detail = err.decode("utf-8", "replace").strip() or "no PID in time"
            raise ArenaError(f"the sandbox of lane {self.lane!r} did not join the arena: {detail}")
        self.pid = int(line)
        self.host_pid = next((kid for kid in children_of(proc.pid) if _ns_pid(kid) == self.pid), None)
        if self.host_pid is None:
            await self.kill()
            raise ArenaError(f"the sandbox of lane {self.lane!r} lost its process")
        self.netns = _netns(self.host_pid)
        self._pumps = [asyncio.ensure_future(self._capture.pump(proc.stdout, self._capture.out)),
                       asyncio.ensure_future(self._capture.pump(proc.stderr, self._capture.err))]
        arena.adopt(self.lane, self.host_pid)
        return self.pid

    def release(self) -> None:
        """Let the held shell run the script (it ``exec``s it: same PID)."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        try:
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        except (ConnectionError, OSError):  # it is gone already: the arena has seen it die
            pass

    @property
    def output(self) -> tuple[str, str]:
        """(stdout, stderr) so far, each bounded by the arena's ``max_output``."""
        return self._capture.out.decode("utf-8", "replace"), self._capture.err.decode("utf-8", "replace")

    def processes(self) -> list[int]:
        """Host PIDs of every live process in the guest's network namespace."""
        if self.netns is None:
            return []
        uid = self.arena.uid if self.arena.uid is not None else os.geteuid()
        return [pid for pid in processes_of_uid(uid) if _netns(pid) == self.netns]

    def _kill_sync(self) -> None:
        kill_until_gone(self.processes)
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    async def kill(self) -> None:
        """SIGKILL the guest's whole tree and its bwrap; idempotent."""
        await asyncio.shield(asyncio.to_thread(self._kill_sync))
        proc = self._proc
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except asyncio.TimeoutError:
                pass
        for pump in self._pumps:
            pump.cancel()


__all__ = ["ArenaGuest"]
