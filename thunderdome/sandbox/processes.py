"""Finding and killing a sandbox's processes through /proc.

Invariant: these helpers only ever signal processes they identified as the
sandbox's own (by throwaway uid, or as children of a process we started), and
treat zombies as dead: a zombie holds no resources but its PID.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable


def _status_uid(pid: str) -> tuple[int, str] | None:
    """(real uid, state letter) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    state, uid = "?", -1
    for line in text.splitlines():
        if line.startswith("State:"):
            state = line.split()[1]
        elif line.startswith("Uid:"):
            uid = int(line.split()[1])
            break
    return uid, state


def processes_of_uid(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _status_uid(entry)
            if info and info[0] == uid and info[1] not in ("Z", "X"):
                found.append(int(entry))
    return found


def live_uids() -> set[int]:
    """Real uids of every live (non-zombie) process, from one /proc scan."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _status_uid(entry)
            if info and info[1] not in ("Z", "X"):
                found.add(info[0])
    return found


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (host PIDs)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    text = fh.read()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    info = _status_uid(str(pid))
    return info is None or info[1] in ("Z", "X")


def kill_tree(pid: int, *, namespace: bool, still_running: bool) -> None:
    """SIGKILL the process group led by ``pid``. With a PID namespace, kill
    the namespace's init (``pid``'s children) first and let ``pid`` reap it,
    so no zombie is orphaned to the host's init."""
    if namespace and still_running:
        for child in children_of(pid):
            try:
                os.kill(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        end = time.monotonic() + 0.5
        while not _gone(pid) and time.monotonic() < end:
            time.sleep(0.002)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_until_gone(find: Callable[[], list[int]], deadline: float = 2.0) -> int:
    """SIGKILL every PID ``find()`` returns, again and again, until it returns
    none (or ``deadline`` s pass). Returns how many rounds found something."""
    rounds = 0
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        pids = find()
        if not pids:
            break
        rounds += 1
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
    return rounds


def sweep_uid(uid: int, deadline: float = 2.0) -> int:
    """SIGKILL every process of ``uid`` until none is left (or ``deadline`` s).
    Returns how many kill rounds found something. Root only."""
    return kill_until_gone(lambda: processes_of_uid(uid), deadline)


def count_uid_tasks(uid: int) -> int:
    """Processes+threads of ``uid`` (what RLIMIT_NPROC counts)."""
    total = 0
    for pid in processes_of_uid(uid):
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return total


__all__ = ["processes_of_uid", "live_uids", "kill_until_gone", "children_of", "kill_tree", "sweep_uid", "count_uid_tasks"]
