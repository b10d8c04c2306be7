"""Run one model-written shell command in a sandbox and report what happened.

Invariant: when ``run`` returns, no process the command started is left alive
(the PID namespace is gone, the process group, the cgroup and the throwaway
uid are swept), memory held for output is bounded by ``max_output`` per
stream whatever the command prints, and every outcome (exit, signal, timeout,
flood) is data in the ``ExecResult``, never an exception. Runs in one
``Sandbox`` are serialized: they share a work dir and a uid.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from thunderdome.sandbox.isolation import Bind, Isolation, detect_isolation
from thunderdome.sandbox.limits import (
    Cgroup,
    SandboxLimits,
    allocate_uid,
    chown_tree,
    plan_process,
    release_uid,
)
from thunderdome.sandbox.processes import kill_tree, sweep_uid
from thunderdome.sandbox.workdirs import make_workdir

_READ_CHUNK = 65536
_DRAIN_GRACE = 2.0
"""Seconds to finish reading pipes after the process tree was killed."""


@dataclass(frozen=True)
class ExecResult:
    """What one command did. ``started``/``ended``: monotonic clock."""

    exit_code: int | None
    """The command's exit status; None if it was killed (timeout, flood, signal)."""
    stdout: str
    stderr: str
    timed_out: bool
    duration: float
    isolation: str
    truncated: bool
    """Some output was dropped (more than ``max_output`` bytes on a stream)."""
    killed_by_signal: int | None
    """Signal that ended it: ours (9 on timeout/flood) or, by shell
    convention, ``exit_code - 128`` reported by the sandbox's shell."""
    started: float
    ended: float
    limits_enforced: tuple[str, ...] = ()
    """Limits really in force for this run, e.g. ``procs:rlimit_nproc``."""
    reason: str = ""
    """One line when something unusual happened (timeout, output flood, ...)."""
    output_bytes: int = 0
    """Bytes the command wrote to both pipes, kept or not."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["limits_enforced"] = list(self.limits_enforced)
        return data


@dataclass
class _Capture:
    keep: int
    flood_cap: int
    total: int = 0
    truncated: bool = False
    flooded: asyncio.Event = field(default_factory=asyncio.Event)
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)

    async def pump(self, stream: asyncio.StreamReader | None, buf: bytearray) -> None:
        if stream is None:
            return
        while True:
            chunk = await stream.read(_READ_CHUNK)
            if not chunk:
                return
            self.total += len(chunk)
            room = self.keep - len(buf)
            if room > 0:
                buf += chunk[:room]
            if len(chunk) > room:
                self.truncated = True
            if self.total > self.flood_cap:
                self.flooded.set()


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Stream protocol that reports the process's exit on its own: asyncio's
    ``Process.wait()`` also waits for the pipes, which an escaped daemon may
    hold open forever."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()
        self.exited_at = float("inf")

    def process_exited(self) -> None:
        self.exited_at = time.monotonic()
        self.exited.set()
        super().process_exited()


def _signal_from(returncode: int | None) -> int | None:
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if 128 < returncode <= 128 + 64:
        return returncode - 128
    return None


async def execute(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str,
    preexec: Callable[[], None],
    limits: SandboxLimits,
    timeout: float,
    isolation: str,
    labels: tuple[str, ...],
    cleanup: Callable[[int], None],
    namespace: bool = False,
) -> ExecResult:
    """Spawn ``argv`` in a new session, capture bounded output, enforce the
    timeout and flood cap, then kills the tree (``namespace``: ``argv`` is the
    parent of a PID namespace's init) and ``cleanup(pid)`` sweeps the rest."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: _Protocol(limit=_READ_CHUNK, loop=loop), *argv, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, preexec_fn=preexec,
            start_new_session=True,
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        ended = time.monotonic()
        return ExecResult(None, "", f"sandbox could not start: {exc}", False, ended - started, isolation,
                          False, None, started, ended, labels, f"sandbox could not start: {exc}")
    pid = transport.get_pid()
    cap = _Capture(limits.max_output, limits.max_total_output)
    pumps = [asyncio.ensure_future(cap.pump(protocol.stdout, cap.out)),
             asyncio.ensure_future(cap.pump(protocol.stderr, cap.err))]
    exited = asyncio.ensure_future(protocol.exited.wait())
    flood = asyncio.ensure_future(cap.flooded.wait())
    timed_out = flooded = False
    try:
        done, _ = await asyncio.wait({exited, flood}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if exited not in done:
            flooded = flood in done
            timed_out = not flooded
    except BaseException:  # cancelled (e.g. the race is over): kill everything all the same
        flood.cancel()
        for task in pumps:
            task.cancel()
        await asyncio.shield(asyncio.to_thread(_end_all, pid, namespace and not exited.done(), cleanup))
        transport.close()
        raise
    flood.cancel()
    await asyncio.to_thread(_end_all, pid, namespace and not exited.done(), cleanup)
    await exited
    ended = time.monotonic() if timed_out or flooded else min(time.monotonic(), protocol.exited_at)
    _, pending = await asyncio.wait(pumps, timeout=_DRAIN_GRACE)
    escaped = bool(pending)
    for task in pending:
        task.cancel()
    transport.close()  # also stops reading pipes an escaped process still holds
    rc = transport.get_returncode()
    reasons = []
    if timed_out:
        reasons.append(f"timed out after {timeout:g} s; process tree killed")
    if flooded:
        reasons.append(f"output flood: over {limits.max_total_output} bytes; process tree killed")
    if escaped:
        reasons.append("a process kept the output pipes open after the run (escaped the sandbox's kill)")
    killed = timed_out or flooded
    sig = signal.SIGKILL.value if killed else _signal_from(rc)
    exit_code = None if killed or (rc is not None and rc < 0) else rc
    if sig and not killed:
        reasons.append(f"ended by signal {sig}")
    return ExecResult(
        exit_code=exit_code,
        stdout=cap.out.decode("utf-8", "replace"),
        stderr=cap.err.decode("utf-8", "replace"),
        timed_out=timed_out,
        duration=ended - started,
        isolation=isolation,
        truncated=cap.truncated,
        killed_by_signal=sig,
        started=started,
        ended=ended,
        limits_enforced=labels,
        reason="; ".join(reasons),
        output_bytes=cap.total,
    )


def _end_all(pid: int, namespace_running: bool, cleanup: Callable[[int], None]) -> None:
    kill_tree(pid, namespace=namespace_running, still_running=namespace_running)
    cleanup(pid)


def safe_relative(name: str) -> PurePosixPath:
    """A setup file's path, refused if it would land outside the work dir."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"setup file path must be relative and inside the work dir: {name!r}")
    return path


def write_setup_files(workdir: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = workdir / safe_relative(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


class Sandbox:
    """A throwaway work dir in which model commands run, one at a time.

    ``async with Sandbox(setup_files={"in.txt": "..."}) as box:
    result = await box.run("wc -l in.txt")``

    ``workdir``: None makes a fresh temp dir, removed on ``close``; a given
    dir is kept, and (when we are root) handed to the sandbox's throwaway uid.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        limits: SandboxLimits = SandboxLimits(),
        isolation: Isolation | None = None,
        setup_files: dict[str, str] | None = None,
    ) -> None:
        for name in setup_files or {}:
            safe_relative(name)  # refuse before anything is created
        self.limits = limits
        self.isolation = isolation or detect_isolation()
        self._owns_workdir = workdir is None
        self.workdir = make_workdir("run") if workdir is None else Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.uid = allocate_uid() if self.isolation.drop_uid else None
        self.cgroup = Cgroup.create(limits) if self.isolation.cgroup else None
        self._lock = asyncio.Lock()
        self._closed = False
        write_setup_files(self.workdir, setup_files or {})
        if self.uid is not None:
            chown_tree(self.workdir, self.uid)

    @property
    def warning(self) -> str | None:
        return self.isolation.warning

    def _cleanup(self, pid: int) -> None:
        """Kill everything this sandbox may have left (runs in a thread)."""
        if self.cgroup is not None:  # authoritative: a process cannot leave it
            self.cgroup.kill_all()
        elif self.uid is not None:
            sweep_uid(self.uid)

    async def run(self, command: str, *, timeout: float | None = None, binds: tuple[Bind, ...] = ()) -> ExecResult:
        """Run ``shell -c command`` in the work dir; never raises for what the
        command does. ``binds``: more host paths mounted inside (bwrap only)."""
        if self._closed:
            raise RuntimeError("sandbox is closed")
        wall = self.limits.timeout if timeout is None else timeout
        iso = self.isolation
        inside = iso.drops_inside
        plan = plan_process(self.limits, uid=None if inside else self.uid, cgroup=self.cgroup, timeout=wall,
                            drops_later=inside)
        labels = plan.labels + (("tree_kill:pid_namespace",) if iso.has_pid_namespace else ())
        if self.cgroup is not None:
            labels += ("tree_kill:cgroup",)
        elif self.uid is not None:
            labels += ("tree_kill:uid_sweep",)
        async with self._lock:
            return await execute(
                iso.argv(command, self.workdir, uid=self.uid, binds=binds), env=iso.env(self.workdir), cwd=iso.cwd(self.workdir),
                preexec=plan.preexec(), limits=self.limits, timeout=wall, isolation=iso.level,
                labels=labels, cleanup=self._cleanup, namespace=iso.has_pid_namespace,
            )

    async def close(self) -> None:
        """Kill anything left and remove the work dir (if we made it)."""
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        self._cleanup(0)
        if self.uid is not None:
            sweep_uid(self.uid)
        if self.cgroup is not None:
            self.cgroup.remove()
        release_uid(self.uid)
        if self._owns_workdir:
            remove_tree(self.workdir)

    async def __aenter__(self) -> "Sandbox":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def remove_tree(path: Path) -> None:
    """rmtree that also gets through directories a command made unreadable."""

    def fix(func: Callable[..., Any], target: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
        except OSError:
            pass
        try:
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix)


__all__ = ["ExecResult", "Sandbox", "execute", "write_setup_files", "remove_tree"]
