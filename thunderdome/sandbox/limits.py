"""Resource limits for sandboxed commands: rlimits, a throwaway uid, a cgroup.

Invariant: every limit a sandbox claims in ``limits_enforced`` is really in
force for the processes it starts; a limit that cannot be enforced here (no
cgroup, RLIMIT_NPROC under a shared uid) is left out of the list, never
claimed. The preexec hook runs in the forked child before ``exec``: it joins
the cgroup, lowers rlimits, drops to the sandbox uid (when we are root) and
asks for SIGKILL if the parent dies, in that order (a uid change clears the
parent-death signal, so it comes last).
"""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import resource
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from thunderdome.sandbox.processes import count_uid_tasks, kill_until_gone, live_uids

MIB = 1024 * 1024
PR_SET_PDEATHSIG = 1

UID_BASE = 0x70000000
"""Throwaway uids (root only) live above this; far from real and subuid ranges."""


@dataclass(frozen=True)
class SandboxLimits:
    """What one sandboxed command may use."""

    timeout: float = 10.0
    """Seconds of wall time; then the whole process tree is killed."""
    max_output: int = 64_000
    """Bytes kept per stream (stdout, stderr); the rest is drained and dropped."""
    max_procs: int = 64
    """Processes (and threads) the sandbox may hold at once."""
    max_memory: int = 512 * MIB
    """Address space per process (RLIMIT_AS); also memory.max on cgroup v2."""
    max_file_size: int = 16 * MIB
    """Largest file a command may write (RLIMIT_FSIZE)."""
    max_total_output: int = 50_000_000
    """Bytes read from both pipes together before the command is killed as a flood."""


# --- throwaway uids (root only) ----------------------------------------------------

UID_BLOCK = 4096
"""Throwaway uids one Thunderdome process can hold at once (one per live
sandbox): enough for hundreds of lanes. Each process draws from its own block
(keyed by its PID), and a uid some live process still holds is skipped."""

_uid_counter = itertools.count()
_uids_in_use: set[int] = set()


def can_drop_uid() -> bool:
    """True when we are root and can run commands under a throwaway uid."""
    return os.geteuid() == 0


def allocate_uid() -> int:
    """A uid no live process uses, unique among this process's sandboxes."""
    base = UID_BASE + ((os.getpid() & 0x7FFFF) * UID_BLOCK)
    on_host: set[int] | None = None  # one /proc scan, and only if the fast path misses
    for _ in range(UID_BLOCK):
        uid = base + next(_uid_counter) % UID_BLOCK
        if uid in _uids_in_use:
            continue
        if on_host is None:
            on_host = live_uids()
        if uid not in on_host:
            _uids_in_use.add(uid)
            return uid
    raise RuntimeError(f"no free sandbox uid: all {UID_BLOCK} of this process's throwaway uids are in use")


def release_uid(uid: int | None) -> None:
    if uid is not None:
        _uids_in_use.discard(uid)


# --- cgroups -----------------------------------------------------------------------


def _mounts() -> list[tuple[str, str, set[str]]]:
    out = []
    try:
        with open("/proc/self/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 4:
                    out.append((parts[1], parts[2], set(parts[3].split(","))))
    except OSError:
        pass
    return out


def _own_cgroup_paths() -> dict[str, str]:
    """controller (or '' for v2) -> our cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                for ctrl in ctrls.split(",") if ctrls else [""]:
                    paths[ctrl] = path
    except OSError:
        pass
    return paths


def _cgroup_parent() -> tuple[str, Path] | None:
    """Where a child cgroup with a pids limit can go: ('v2' | 'v1-pids', dir).
    Always below our own cgroup, so a sandbox never escapes limits set on us."""
    own = _own_cgroup_paths()
    for mnt, fstype, opts in _mounts():
        if fstype == "cgroup2" and "" in own:
            parent = Path(mnt + own[""])
            try:
                if "pids" in (parent / "cgroup.subtree_control").read_text().split():
                    return "v2", parent
            except OSError:
                continue
    for mnt, fstype, opts in _mounts():
        if fstype == "cgroup" and "pids" in opts and "pids" in own:
            return "v1-pids", Path(mnt + own["pids"])
    return None


def _collect_stale(parent: Path) -> None:
    """Remove empty cgroups left by Thunderdome processes that died without closing."""
    try:
        entries = list(parent.glob("thunderdome-*-*"))
    except OSError:
        return
    for entry in entries:
        owner = entry.name.split("-")[1]
        if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            try:
                entry.rmdir()  # fails (and is left alone) while it holds processes
            except OSError:
                pass


class Cgroup:
    """A child cgroup holding one sandbox's processes (pids.max, memory.max on v2)."""

    _seq = itertools.count()

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.path = path

    @property
    def procs_file(self) -> str:
        return str(self.path / "cgroup.procs")

    @property
    def limits(self) -> tuple[str, ...]:
        return ("procs:cgroup", "memory:cgroup") if self.kind == "v2" else ("procs:cgroup",)

    @classmethod
    def create(cls, limits: SandboxLimits) -> "Cgroup | None":
        """Make a child cgroup, or None when cgroups are not writable here."""
        found = _cgroup_parent()
        if found is None:
            return None
        kind, parent = found
        _collect_stale(parent)
        path = parent / f"thunderdome-{os.getpid()}-{next(cls._seq)}"
        try:
            path.mkdir()
        except OSError:
            return None
        group = cls(kind, path)
        try:
            (path / "pids.max").write_text(str(limits.max_procs))
            if kind == "v2":
                try:
                    (path / "memory.max").write_text(str(limits.max_memory))
                except OSError:
                    group.kind = "v2-pids"
        except OSError:
            group.remove()
            return None
        return group

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in Path(self.procs_file).read_text().split()]
        except OSError:
            return []

    def kill_all(self, deadline: float = 2.0) -> None:
        """SIGKILL everything in the group until it is empty."""
        kill_file = self.path / "cgroup.kill"
        if self.kind.startswith("v2") and kill_file.exists():
            try:
                kill_file.write_text("1")
            except OSError:
                pass
        kill_until_gone(self.pids, deadline)

    def remove(self) -> None:
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # busy: zombies still being reaped
                self.kill_all(0.05)
                time.sleep(0.01)


# --- the preexec hook ------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessPlan:
    """How the child is set up before exec; ``labels`` is what it enforces."""

    uid: int | None
    nproc: int | None
    cpu_seconds: int | None
    cgroup: Cgroup | None
    limits: SandboxLimits
    labels: tuple[str, ...]

    def preexec(self) -> Callable[[], None]:
        return make_preexec(self)


def plan_process(
    limits: SandboxLimits,
    *,
    uid: int | None,
    cgroup: Cgroup | None,
    timeout: float | None,
    nproc: int | None = None,
    drops_later: bool = False,
) -> ProcessPlan:
    """Decide the child's limits. ``uid``: throwaway uid to drop to (root), or
    None to run as ourselves. ``timeout``: wall limit, also used for a CPU
    backstop (None: no CPU limit, for long-lived arena supervisors).
    ``drops_later``: the command itself drops to a throwaway uid after exec
    (``setpriv`` after ``nsenter``), so RLIMIT_NPROC will apply to it."""
    labels = ["timeout", "output", "memory:rlimit_as", "file_size:rlimit_fsize"] if timeout else [
        "memory:rlimit_as", "file_size:rlimit_fsize"]
    cpu = None
    if timeout:
        cpu = int(math.ceil(timeout)) + 1
        labels.append("cpu:rlimit_cpu")
    want = nproc if nproc is not None else limits.max_procs
    if uid is not None or drops_later:
        labels.append("procs:rlimit_nproc")
        limit: int | None = want
    elif os.geteuid() != 0:
        # RLIMIT_NPROC counts every process of our uid: allow what exists plus the budget.
        limit = count_uid_tasks(os.geteuid()) + want
        labels.append("procs:rlimit_nproc_shared_uid")
    else:
        limit = None  # root is exempt from RLIMIT_NPROC: setting it would be a lie
    if cgroup is not None:
        labels.extend(cgroup.limits)
    return ProcessPlan(uid, limit, cpu, cgroup, limits, tuple(labels))


_libc = ctypes.CDLL(None, use_errno=True)


def make_preexec(plan: ProcessPlan) -> Callable[[], None]:
    """The hook run in the child between fork and exec."""
    procs_file = plan.cgroup.procs_file if plan.cgroup else None
    lim = plan.limits

    def preexec() -> None:
        if procs_file:
            with open(procs_file, "w") as fh:
                fh.write("0")
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (lim.max_memory, lim.max_memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim.max_file_size, lim.max_file_size))
        if plan.cpu_seconds:
            resource.setrlimit(resource.RLIMIT_CPU, (plan.cpu_seconds, plan.cpu_seconds + 1))
        if plan.nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (plan.nproc, plan.nproc))
        if plan.uid is not None:
            os.setgroups([])
            os.setresgid(plan.uid, plan.uid, plan.uid)
            os.setresuid(plan.uid, plan.uid, plan.uid)
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec


def chown_tree(path: Path, uid: int) -> None:
    """Give ``path`` and everything below it to ``uid`` (root only)."""
    os.chown(path, uid, uid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, uid)


__all__ = [
    "SandboxLimits",
    "Cgroup",
    "ProcessPlan",
    "plan_process",
    "make_preexec",
    "allocate_uid",
    "release_uid",
    "can_drop_uid",
    "chown_tree",
]
