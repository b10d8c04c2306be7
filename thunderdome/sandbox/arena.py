"""The shared arena of a ``last_standing`` race: one PID namespace, one fighter per lane.

Invariant: every lane's command runs inside the arena's namespaces (``nsenter``
into the supervisor), so the PIDs a command sees are the arena's PIDs, a
``kill -9 <pid>`` of an opponent's fighter works, and nothing outside the
arena can be hit (at the ``bwrap``/``unshare`` levels; the commands also run
under a throwaway uid when we are root). The supervisor is the namespace's
init, so a command cannot kill it (the kernel drops signals sent to a
namespace's init from inside). A fighter's death is seen through a pidfd the
moment it happens and is reported once by ``wait_death``. A fighter need not
be the supervisor's: ``adopt`` takes in a process that joined the arena's PID
namespace from a sandbox of its own (``sandbox/guest.py``: an agent that
fights), and watches it the same way.

At the ``rlimits`` level fighters are plain host processes and their PIDs are
host PIDs: ``warning`` says so (loudly when we are not root, since then a
``kill -9 -1`` reaches every process of the user).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import time
from dataclasses import dataclass

from thunderdome.core.errors import ThunderdomeError
from thunderdome.sandbox.isolation import Isolation, detect_isolation
from thunderdome.sandbox.limits import (
    Cgroup,
    SandboxLimits,
    allocate_uid,
    chown_tree,
    plan_process,
    release_uid,
)
from thunderdome.sandbox.processes import children_of, kill_tree, sweep_uid
from thunderdome.sandbox.runner import ExecResult, execute, remove_tree
from thunderdome.sandbox.workdirs import make_workdir

_SUPERVISOR = r"""
trap '' TERM INT HUP QUIT USR1 USR2 PIPE
i=0
for name in "$@"; do
  (trap - TERM INT HUP QUIT USR1 USR2 PIPE; exec -a "fighter-$name" sleep 1000000000) &
  echo "fighter $i $!"
  i=$((i+1))
done
echo ready
while :; do wait; sleep 3600 & wait $!; done
"""
_START_TIMEOUT = 15.0
_NS_GET_USERNS = 0xB701
"""ioctl on a namespace fd: an fd of the user namespace that owns it."""


class ArenaError(ThunderdomeError, RuntimeError):
    """The arena could not be set up (one line a person can act on)."""


@dataclass
class Fighter:
    lane: str
    pid: int
    """PID as the arena's commands see it."""
    host_pid: int
    start_time: str
    """Field 22 of /proc/PID/stat: guards against PID reuse."""
    pidfd: int | None = None
    died_at: float | None = None
    """Monotonic time the death was seen."""


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on


def _ns_pid(host_pid: int) -> int | None:
    try:
        with open(f"/proc/{host_pid}/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except OSError:
        return None
    return None


def _is_alive(host_pid: int, start_time: str) -> bool:
    fields = _stat(host_pid)
    return bool(fields) and fields[0] not in ("Z", "X") and fields[19] == start_time  # type: ignore[index]


class Arena:
    """One shared sandbox with a fighter process per lane."""

    def __init__(self, limits: SandboxLimits = SandboxLimits(), isolation: Isolation | None = None) -> None:
        self.limits = limits
        self.isolation = isolation or detect_isolation()
        self.workdir = make_workdir("arena")
        self.uid = allocate_uid() if self.isolation.drop_uid else None
        if self.uid is not None:
            chown_tree(self.workdir, self.uid)
        self.cgroup = Cgroup.create(limits) if self.isolation.cgroup else None
        self.fighters: dict[str, Fighter] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: int | None = None
        self._deaths: asyncio.Queue[str] = asyncio.Queue()
        self._drain: asyncio.Task | None = None
        self._closed = False

    @property
    def warning(self) -> str | None:
        """The isolation warning, plus what an arena at this level cannot contain."""
        if self.isolation.level != "rlimits":
            return self.isolation.warning
        if self.uid is not None:
            extra = "ARENA: fighters are host processes with host PIDs; kills are contained to the arena's throwaway uid"
        else:
            extra = ("ARENA UNSAFE: fighters are host processes with host PIDs and commands run as YOUR user: "
                     "a `kill -9 -1` can kill every process you own")
        return f"{self.isolation.warning} | {extra}"

    @property
    def pids(self) -> dict[str, int]:
        return {lane: f.pid for lane, f in self.fighters.items()}

    async def start(self, lanes: list[str]) -> dict[str, int]:
        """Spawn one fighter per lane; lane -> PID as the arena's commands see it."""
        if self._proc is not None:
            raise ArenaError("arena already started")
        if len(set(lanes)) != len(lanes):
            raise ArenaError("arena lanes must be distinct")
        names = [re.sub(r"[^A-Za-z0-9_.-]", "_", lane)[:40] or "lane" for lane in lanes]
        iso = self.isolation
        inside = iso.drops_inside
        plan = plan_process(self.limits, uid=None if inside else self.uid, cgroup=self.cgroup, timeout=None,
                            drops_later=inside)
        argv = iso.argv(_SUPERVISOR, self.workdir, uid=self.uid, as_pid_1=True, args=("supervisor", *names))
        self._proc = proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=iso.env(self.workdir), cwd=iso.cwd(self.workdir),
            preexec_fn=plan.preexec(), start_new_session=True,
        )
        try:
            ns_pids = await asyncio.wait_for(self._read_roster(proc, len(lanes)), _START_TIMEOUT)
        except (asyncio.TimeoutError, ArenaError) as exc:
            err = b""
            if proc.stderr is not None and proc.returncode is not None:
                err = await proc.stderr.read(2000)
            await self.close()
            detail = err.decode("utf-8", "replace").strip() or str(exc) or "no roster in time"
            raise ArenaError(f"arena supervisor failed: {detail}") from None
        self._drain = asyncio.ensure_future(self._drain_pipes(proc))
        await asyncio.to_thread(self._locate, lanes, ns_pids, proc.pid)
        loop = asyncio.get_running_loop()
        for fighter in self.fighters.values():
            self._watch(loop, fighter)
        return self.pids

    async def _read_roster(self, proc: asyncio.subprocess.Process, count: int) -> list[int]:
        assert proc.stdout is not None
        pids: list[int] = [0] * count
        while True:
            line = (await proc.stdout.readline()).decode().split()
            if not line:
                raise ArenaError("supervisor exited before it was ready")
            if line[0] == "ready":
                return pids
            if line[0] == "fighter" and len(line) == 3:
                pids[int(line[1])] = int(line[2])

    async def _drain_pipes(self, proc: asyncio.subprocess.Process) -> None:
        async def drain(stream: asyncio.StreamReader | None) -> None:
            while stream is not None and await stream.read(4096):
                pass

        await asyncio.gather(drain(proc.stdout), drain(proc.stderr))

    def _locate(self, lanes: list[str], ns_pids: list[int], outer: int) -> None:
        """Find the supervisor and the fighters' host PIDs."""
        supervisor = outer
        if self.isolation.has_pid_namespace:
            frontier, supervisor = [outer], 0
            deadline = time.monotonic() + 5
            while not supervisor and time.monotonic() < deadline:
                nxt = []
                for pid in frontier:
                    kids = children_of(pid)
                    nxt.extend(kids)
                    supervisor = next((k for k in kids if _ns_pid(k) == 1), 0) or supervisor
                frontier = nxt or [outer]
            if not supervisor:
                raise ArenaError("could not find the arena's init process")
        self._supervisor = supervisor
        by_ns = {(_ns_pid(k) or k): k for k in children_of(supervisor)}
        for lane, ns_pid in zip(lanes, ns_pids):
            host = by_ns.get(ns_pid)
            fields = _stat(host) if host else None
            if host is None or not fields:
                raise ArenaError(f"fighter for lane {lane!r} did not start")
            self.fighters[lane] = Fighter(lane, ns_pid, host, fields[19])

    def join_fds(self) -> tuple[int, int, int]:
        """Fds of (the user namespace that owns the arena's PID namespace, that
        PID namespace, the user namespace the fighters run in): what a guest
        sandbox joins (bwrap nests the last in the first to give the sandbox
        its uid; it may be the same). The caller closes all three."""
        if self._supervisor is None or not self.isolation.has_pid_namespace:
            raise ArenaError("only a running arena with a PID namespace can take guests")
        fds: list[int] = []
        try:
            fds.append(os.open(f"/proc/{self._supervisor}/ns/pid", os.O_RDONLY | os.O_CLOEXEC))
            fds.insert(0, fcntl.ioctl(fds[0], _NS_GET_USERNS))
            fds.append(os.open(f"/proc/{self._supervisor}/ns/user", os.O_RDONLY | os.O_CLOEXEC))
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise ArenaError(f"cannot open the arena's namespaces: {exc}") from None
        return fds[0], fds[1], fds[2]

    def adopt(self, lane: str, host_pid: int) -> int:
        """Make ``host_pid`` (a process inside the arena's PID namespace) the
        fighter of ``lane``, watched like the others; returns its arena PID."""
        if lane in self.fighters:
            raise ArenaError(f"lane {lane!r} already has a fighter")
        ns_pid, fields = _ns_pid(host_pid), _stat(host_pid)
        if ns_pid is None or not fields:
            raise ArenaError(f"the fighter for lane {lane!r} is gone before it was adopted")
        fighter = self.fighters[lane] = Fighter(lane, ns_pid, host_pid, fields[19])
        self._watch(asyncio.get_running_loop(), fighter)
        return ns_pid

    def _watch(self, loop: asyncio.AbstractEventLoop, fighter: Fighter) -> None:
        try:
            fighter.pidfd = os.pidfd_open(fighter.host_pid)
        except (AttributeError, OSError):
            loop.create_task(self._poll(fighter))
            return
        loop.add_reader(fighter.pidfd, self._died, fighter)
        if not _is_alive(fighter.host_pid, fighter.start_time):
            self._died(fighter)

    async def _poll(self, fighter: Fighter) -> None:
        while not self._closed and _is_alive(fighter.host_pid, fighter.start_time):
            await asyncio.sleep(0.01)
        if not self._closed:
            self._died(fighter)

    def _died(self, fighter: Fighter) -> None:
        if fighter.pidfd is not None:
            asyncio.get_running_loop().remove_reader(fighter.pidfd)
            os.close(fighter.pidfd)
            fighter.pidfd = None
        if fighter.died_at is None:
            fighter.died_at = time.monotonic()
            self._deaths.put_nowait(fighter.lane)

    def alive(self) -> dict[str, bool]:
        """lane -> is its fighter still alive (checked now)."""
        return {lane: f.died_at is None and _is_alive(f.host_pid, f.start_time) for lane, f in self.fighters.items()}

    @property
    def death_times(self) -> dict[str, float]:
        """lane -> monotonic time its fighter's death was seen."""
        return {lane: f.died_at for lane, f in self.fighters.items() if f.died_at is not None}

    async def wait_death(self, timeout: float | None = None) -> str | None:
        """The next lane whose fighter died (each reported once); None on timeout."""
        try:
            return await asyncio.wait_for(self._deaths.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def run(self, lane: str, command: str, timeout: float | None = None) -> ExecResult:
        """Run ``command`` for ``lane`` inside the arena. Processes it leaves in
        the background outside its process group live until ``close``."""
        if self._supervisor is None or self._closed:
            raise ArenaError("arena is not running")
        if lane not in self.fighters:
            raise KeyError(lane)
        wall = self.limits.timeout if timeout is None else timeout
        iso = self.isolation
        if iso.has_pid_namespace:
            drop = self.uid is not None
            plan = plan_process(self.limits, uid=None, cgroup=self.cgroup, timeout=wall, drops_later=drop)
            argv = iso.enter_argv(self._supervisor, command, self.uid)
            cwd = "/"
        else:
            plan = plan_process(self.limits, uid=self.uid, cgroup=self.cgroup, timeout=wall)
            argv, cwd = iso.argv(command, self.workdir), str(self.workdir)
        return await execute(
            argv, env=iso.env(self.workdir), cwd=cwd, preexec=plan.preexec(), limits=self.limits,
            timeout=wall, isolation=iso.level, labels=plan.labels + ("tree_kill:process_group",),
            cleanup=lambda pid: None,
        )

    async def close(self) -> None:
        """Kill the whole arena and remove its work dir."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        for fighter in self.fighters.values():
            if fighter.pidfd is not None:
                loop.remove_reader(fighter.pidfd)
                os.close(fighter.pidfd)
                fighter.pidfd = None
        if self._proc is not None:
            running = self._proc.returncode is None
            await asyncio.to_thread(kill_tree, self._proc.pid, namespace=self.isolation.has_pid_namespace,
                                    still_running=running)
        await asyncio.to_thread(self._close_sync)
        if self._proc is not None:
            await self._proc.wait()
        if self._drain is not None:
            try:
                await asyncio.wait_for(self._drain, 2.0)
            except asyncio.TimeoutError:
                pass

    def _close_sync(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill_all()
            self.cgroup.remove()
        if self.uid is not None:
            sweep_uid(self.uid)
        release_uid(self.uid)
        remove_tree(self.workdir)

    async def __aenter__(self) -> "Arena":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["Arena", "ArenaError", "Fighter"]
