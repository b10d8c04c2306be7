"""Which isolation this machine can give model commands, and the command lines for it.

Invariant: a level is only reported after a real command ran under exactly the
command line that level builds (``bwrap ... true``), so ``detect_isolation()``
never claims isolation that does not work here. Levels, best first:

- ``bwrap``: bubblewrap with every namespace unshared (no network, loopback
  included; own PID namespace and /proc), read-only system dirs, tmpfs /tmp
  and HOME, the work dir bound at ``/work``, cleared environment, no caps.
- ``unshare``: own network, PID, IPC, UTS and mount namespaces; the host
  filesystem is visible (writable wherever file permissions allow).
- ``rlimits``: a plain process with rlimits, a cleared environment and its own
  session: no filesystem or network isolation at all.

When we run as root, commands run under a throwaway uid (see limits.py), so
file permissions protect host files at every level and RLIMIT_NPROC works.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from thunderdome.core.errors import ThunderdomeError
from thunderdome.sandbox.limits import (
    Cgroup,
    SandboxLimits,
    can_drop_uid,
    chown_tree,
    plan_process,
    release_uid,
    allocate_uid,
)
from thunderdome.sandbox.workdirs import make_workdir

LEVELS = ("bwrap", "unshare", "rlimits")
ENV_VAR = "THUNDERDOME_ISOLATION"
SANDBOX_WORK = "/work"
SANDBOX_HOME = "/home/sandbox"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_SECRET_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers",
                 "/etc/machine-id")
_SECRET_DIRS = ("/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d", "/etc/NetworkManager/system-connections")
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

_CONTAINS = {
    "bwrap": ("filesystem", "network", "pid_namespace", "env", "session", "capabilities"),
    "unshare": ("network", "pid_namespace", "env", "session"),
    "rlimits": ("env", "session"),
}


def _shell() -> str:
    return shutil.which("bash") or "/bin/sh"


@dataclass(frozen=True)
class Bind:
    """A host path mounted inside a bwrap sandbox (``host`` at ``inside``)."""

    host: str
    inside: str
    writable: bool = False

    def args(self) -> list[str]:
        return ["--bind" if self.writable else "--ro-bind", self.host, self.inside]


@dataclass(frozen=True)
class Isolation:
    """The isolation level in force and what it does and does not contain."""

    level: str
    """``bwrap`` | ``unshare`` | ``rlimits``."""
    warning: str | None = None
    """None for bwrap; otherwise one loud line saying what is missing."""
    drop_uid: bool = False
    """Commands run under a throwaway uid (we are root)."""
    cgroup: str | None = None
    """``v2`` | ``v1-pids`` when a per-sandbox cgroup can be made, else None."""
    rejected: tuple[str, ...] = ()
    """Why better levels were not used, one ``level: reason`` each."""
    shell: str = field(default_factory=_shell)
    tool: str = ""
    """Path of bwrap or unshare."""
    mode: str = "userns"
    """bwrap only: ``userns`` (bwrap runs unprivileged, as the throwaway uid
    when we are root) or ``root`` (no user namespaces here: bwrap runs as root
    and ``setpriv`` drops to the throwaway uid and all capabilities inside)."""

    @property
    def contains(self) -> tuple[str, ...]:
        """What this level isolates (``filesystem``, ``network``, ``pid_namespace``, ...)."""
        extra = ("uid",) if self.drop_uid else ()
        return _CONTAINS[self.level] + extra

    @property
    def has_pid_namespace(self) -> bool:
        return self.level in ("bwrap", "unshare")

    @property
    def drops_inside(self) -> bool:
        """The command line itself drops to the throwaway uid (not the preexec)."""
        return self.level == "bwrap" and self.mode == "root"

    @property
    def limits_enforced(self) -> tuple[str, ...]:
        """What a default sandbox here enforces (see ``ExecResult.limits_enforced``)."""
        cg = Cgroup("v2" if self.cgroup == "v2" else "v1", Path("/")) if self.cgroup else None
        return plan_process(SandboxLimits(), uid=0 if self.drop_uid else None, cgroup=cg, timeout=1.0).labels

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "mode": self.mode if self.level == "bwrap" else None,
            "warning": self.warning,
            "contains": list(self.contains),
            "limits_enforced": list(self.limits_enforced),
            "rejected": list(self.rejected),
        }

    # --- command lines ------------------------------------------------------------

    def env(self, workdir: Path) -> dict[str, str]:
        """The whole environment a command sees: nothing from ours."""
        home = SANDBOX_HOME if self.level == "bwrap" else str(workdir)
        return {"PATH": SAFE_PATH, "HOME": home, "LANG": "C.UTF-8", "TERM": "dumb"}

    def cwd(self, workdir: Path) -> str:
        return "/" if self.level == "bwrap" else str(workdir)

    def argv(self, command: str, workdir: Path, *, uid: int | None = None, as_pid_1: bool = False,
             args: tuple[str, ...] = (), binds: tuple[Bind, ...] = ()) -> list[str]:
        """The argv running ``shell -c command [args]`` in ``workdir`` at this
        level. ``uid``: the throwaway uid (used when ``drops_inside``).
        ``as_pid_1``: the shell itself is the namespace's init (arena supervisor).
        ``binds``: more host paths to mount inside (bwrap only: other levels
        have no mount namespace of their own to put them in)."""
        shell_cmd = [self.shell, "-c", command, *args]
        if binds and self.level != "bwrap":
            raise ValueError(f"extra mounts need the bwrap sandbox, not {self.level}")
        if self.level == "bwrap":
            if self.drops_inside:
                shell_cmd = _setpriv(uid) + shell_cmd
            mounts = [arg for bind in binds for arg in bind.args()]
            return self._bwrap_prefix(workdir, as_pid_1=as_pid_1) + mounts + ["--"] + shell_cmd
        if self.level == "unshare":
            mapped = self.drop_uid or os.geteuid() != 0
            user = ["--user", "--map-root-user"] if mapped else []
            if not as_pid_1:  # keep the command off pid 1, where signals it sends itself are ignored
                shell_cmd = [self.shell, "-c", '"$0" -c "$1"; exit $?', self.shell, command]
            if mapped:  # root of a user namespace: shed its capabilities too
                shell_cmd = _drop_caps() + shell_cmd
            return [self.tool, *user, "--net", "--pid", "--ipc", "--uts", "--fork", "--mount-proc",
                    "--kill-child", "--", *shell_cmd]
        return shell_cmd

    def guest_argv(self, command: str, workdir: Path, join: tuple[int, int, int], *, uid: int | None = None,
                   binds: tuple[Bind, ...] = ()) -> list[str]:
        """Like ``argv`` at the bwrap level, but the sandbox joins an arena's
        PID namespace instead of making its own: ``join`` is the fds (inherited
        by bwrap) of the user namespace that owns the arena's PID namespace,
        of that PID namespace, and of the user namespace its processes run in
        (where the sandbox's command runs, with the arena's uid, not as root).
        Mount, network (loopback only), IPC and UTS namespaces stay its own;
        its /proc is the arena's."""
        if self.level != "bwrap":
            raise ValueError(f"an arena guest needs the bwrap sandbox, not {self.level}")
        shell_cmd = [self.shell, "-c", command]
        if self.drops_inside:
            shell_cmd = _setpriv(uid) + shell_cmd
        mounts = [arg for bind in binds for arg in bind.args()]
        return self._bwrap_prefix(workdir, as_pid_1=False, join=join) + mounts + ["--"] + shell_cmd

    def _bwrap_prefix(self, workdir: Path, *, as_pid_1: bool, join: tuple[int, int, int] | None = None) -> list[str]:
        if join is not None:  # an arena guest: its PID namespace (and user namespaces) are the arena's
            root = self.mode == "root"  # as root, setpriv drops the uid and caps inside
            userns = [] if root else ["--userns", str(join[0]), "--userns2", str(join[2]), "--cap-drop", "ALL"]
            args = [self.tool, *userns, "--pidns", str(join[1]), "--unshare-ipc", "--unshare-net", "--unshare-uts",
                    "--unshare-cgroup-try"]
            open_dir = ["--perms", "1777"] if root else []
        elif self.mode == "root":  # no user namespace; setpriv drops uid and caps inside
            args = [self.tool, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                    "--unshare-cgroup-try"]
            open_dir = ["--perms", "1777"]
        else:
            args = [self.tool, "--unshare-all", "--cap-drop", "ALL"]
            open_dir = []
        args += ["--die-with-parent", "--new-session", "--hostname", "thunderdome", "--clearenv"]
        for key, value in self.env(workdir).items():
            args += ["--setenv", key, value]
        args += ["--ro-bind", "/usr", "/usr"]
        for path in _SYSTEM_DIRS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += ["--ro-bind", "/etc", "/etc"]
        for path in _SECRET_FILES:
            if os.path.isfile(path) and not os.path.islink(path):
                args += ["--ro-bind", "/dev/null", path]
        for path in _SECRET_DIRS:
            if os.path.isdir(path) and not os.path.islink(path):
                args += ["--tmpfs", path, "--remount-ro", path]
        args += ["--proc", "/proc", "--dev", "/dev", *open_dir, "--tmpfs", "/tmp", "--tmpfs", "/home",
                 *open_dir, "--dir", SANDBOX_HOME, "--bind", str(workdir), SANDBOX_WORK, "--chdir", SANDBOX_WORK]
        if as_pid_1:
            args.append("--as-pid-1")
            if self.mode == "userns" and os.geteuid() != 0:
                # One user namespace owning all the others (no nested one), so
                # that we, its owner, can nsenter arena commands into it.
                args += ["--uid", "0", "--gid", "0"]
        return args

    def enter_argv(self, target_pid: int, command: str, uid: int | None) -> list[str]:
        """argv running ``command`` inside the namespaces of host pid ``target_pid``
        (an arena), with its root and cwd. ``uid``: drop to it after entering."""
        if self.level == "rlimits":
            return [self.shell, "-c", command]
        nsenter = shutil.which("nsenter") or "nsenter"
        args = [nsenter, "-t", str(target_pid), "-p", "-m", "-n", "-i", "-u", "-r", "-w"]
        if uid is None:  # unprivileged: join the user namespace we own, keep no capabilities
            args[1:1] = ["--user", "--preserve-credentials"]
            return args + ["--", *_drop_caps(), self.shell, "-c", command]
        return args + ["--", *_setpriv(uid), self.shell, "-c", command]


def _drop_caps() -> list[str]:
    """Prefix that sheds every capability (root of a user namespace keeps its uid)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return []
    return [setpriv, "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--"]


def _setpriv(uid: int | None) -> list[str]:
    """Prefix that drops root to ``uid`` with no capabilities and no way back."""
    if uid is None:
        raise ValueError("dropping privileges inside the sandbox needs the throwaway uid")
    setpriv = shutil.which("setpriv") or "setpriv"
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "--bounding-set=-all", "--inh-caps=-all", "--"]


# --- detection ----------------------------------------------------------------------


def _probe(iso: Isolation) -> str | None:
    """Run ``true`` at ``iso``'s level; None if it worked, else the reason."""
    workdir = make_workdir("probe")
    uid = allocate_uid() if iso.drop_uid else None
    try:
        if uid is not None:
            chown_tree(workdir, uid)
        plan = plan_process(SandboxLimits(), uid=None if iso.drops_inside else uid, cgroup=None, timeout=10.0,
                            drops_later=iso.drops_inside)
        probe = 't=$(mktemp) && rm "$t" && touch "$HOME/.probe" ./.probe'
        try:
            proc = subprocess.run(
                iso.argv(probe, workdir, uid=uid), cwd=iso.cwd(workdir), env=iso.env(workdir),
                stdin=subprocess.DEVNULL, capture_output=True, timeout=15, preexec_fn=plan.preexec(),
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            return str(exc) or type(exc).__name__
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            return (err[-1] if err else f"exit code {proc.returncode}")[:200]
        return None
    finally:
        release_uid(uid)
        shutil.rmtree(workdir, ignore_errors=True)


def _cgroup_kind() -> str | None:
    group = Cgroup.create(SandboxLimits())
    if group is None:
        return None
    group.remove()
    return group.kind


def _warning(level: str, rejected: list[str], drop: bool, cgroup: str | None) -> str | None:
    if level == "bwrap":
        return None
    why = "; ".join(rejected)
    if level == "unshare":
        return (f"SANDBOX DEGRADED: bubblewrap unusable ({why}); using unshare: no network and own PID "
                "namespace, but NO filesystem isolation (commands see the host filesystem)")
    text = (f"SANDBOX DEGRADED: no bubblewrap or unshare ({why}); commands run as plain processes with "
            "rlimits only: NO filesystem isolation and NO network isolation (they can reach 127.0.0.1 "
            "and read files), no PID namespace")
    if not drop:
        text += "; they run as your user and can read your other processes' environment"
        if cgroup is None:
            text += "; a process that starts its own session can outlive the run"
    return text


def _resolve(force: str | None) -> str:
    level = force or os.environ.get(ENV_VAR) or "bwrap"
    level = level.strip().lower()
    if level not in LEVELS:
        raise ValueError(f"unknown isolation level {level!r} (choose from {', '.join(LEVELS)})")
    return level


def detect_isolation(force: str | None = None) -> Isolation:
    """The best level that works here, starting at ``force`` (or the
    ``THUNDERDOME_ISOLATION`` variable) and falling back down. Cached."""
    return _detect(_resolve(force))


@functools.lru_cache(maxsize=None)
def _detect(start: str) -> Isolation:
    drop = can_drop_uid()
    cgroup = _cgroup_kind()
    rejected: list[str] = []
    if start != LEVELS[0]:
        rejected.append(f"better levels not tried: forced to {start}")
    for level in LEVELS[LEVELS.index(start):]:
        tool = ""
        if level in ("bwrap", "unshare"):
            tool = shutil.which(level) or ""
            if not tool:
                rejected.append(f"{level}: not installed")
                continue
        modes = ("userns", "root") if level == "bwrap" and drop else ("userns",)
        for mode in modes:
            if mode == "root" and not shutil.which("setpriv"):
                continue
            iso = Isolation(level, None, drop, cgroup, tuple(rejected), tool=tool, mode=mode)
            reason = _probe(iso)
            if reason is None:
                return replace(iso, warning=_warning(level, rejected, drop, cgroup))
            rejected.append(f"{level}{' (as root)' if mode == 'root' else ''}: {reason}")
    raise IsolationUnavailable("no sandbox level works here: " + "; ".join(rejected))


VARIANTS = ("bwrap", "bwrap-root", "unshare", "rlimits")
"""Every way this module can isolate: the levels, plus bwrap run as root."""


class IsolationUnavailable(ThunderdomeError, RuntimeError):
    """No sandbox level works on this machine, or a requested variant does not."""


@functools.lru_cache(maxsize=None)
def isolation_variant(name: str) -> Isolation:
    """Exactly the variant ``name`` (see VARIANTS), probed; never a fallback.
    For tests and benchmarks that must compare the levels side by side."""
    if name not in VARIANTS:
        raise ValueError(f"unknown isolation variant {name!r}")
    level = name.split("-")[0]
    iso = detect_isolation(level)
    if iso.level != level:
        raise IsolationUnavailable(f"{level} unavailable here: {'; '.join(iso.rejected)}")
    if name == "bwrap-root":
        if not iso.drop_uid:
            raise IsolationUnavailable("bwrap as root needs root")
        if iso.mode != "root":
            iso = replace(iso, mode="root")
            reason = _probe(iso)
            if reason is not None:
                raise IsolationUnavailable(f"bwrap as root: {reason}")
    return iso


__all__ = ["Bind", "Isolation", "IsolationUnavailable", "VARIANTS", "isolation_variant", "detect_isolation", "LEVELS", "ENV_VAR", "SANDBOX_WORK", "SANDBOX_HOME"]
