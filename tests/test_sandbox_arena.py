"""The last-standing arena: fighters share one PID namespace; kills work inside it only."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from _isolation import VARIANT_PARAMS  # type: ignore[import-not-found]
from thunderdome.sandbox import Arena, ArenaError
from thunderdome.sandbox.isolation import isolation_variant
from thunderdome.sandbox.limits import allocate_uid, release_uid
from thunderdome.sandbox.processes import processes_of_uid

LANES = ["alpha", "bravo", "charlie"]


@pytest.fixture(params=VARIANT_PARAMS)
async def arena(request):
    ring = Arena(isolation=isolation_variant(request.param))
    yield ring
    await ring.close()


def _host_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return False
    return text[text.rindex(")") + 2] not in "ZX"


async def test_one_lane_kills_another(arena: Arena) -> None:
    pids = await arena.start(LANES)
    assert set(pids) == set(LANES) and len(set(pids.values())) == 3
    if arena.isolation.level != "rlimits":
        assert all(pid < 100 for pid in pids.values())  # namespace PIDs, not host PIDs
    seen = await arena.run("alpha", f"tr '\\0' ' ' < /proc/{pids['bravo']}/cmdline")
    assert seen.stdout.startswith("fighter-bravo"), seen
    assert arena.alive() == {"alpha": True, "bravo": True, "charlie": True}
    result = await arena.run("alpha", f"kill -9 {pids['bravo']} && echo hit")
    assert result.stdout == "hit\n" and result.exit_code == 0
    assert await arena.wait_death(timeout=10) == "bravo"
    assert arena.alive() == {"alpha": True, "bravo": False, "charlie": True}
    assert set(arena.death_times) == {"bravo"}
    assert result.started <= arena.death_times["bravo"]
    assert await arena.wait_death(timeout=0.2) is None  # each death is reported once


async def test_lanes_see_the_same_namespace(arena: Arena) -> None:
    pids = await arena.start(LANES)
    listing = await arena.run("charlie", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done")
    for lane in LANES:
        assert f"fighter-{lane}" in listing.stdout
    if arena.isolation.level != "rlimits":
        survive = await arena.run("charlie", "kill -9 1; echo tried")  # the arena's init is immune
        assert survive.stdout == "tried\n"
        again = await arena.run("alpha", f"kill -0 {pids['charlie']} && echo ok")
        assert again.stdout == "ok\n"
        assert all(arena.alive().values())


async def test_cannot_kill_host_processes(arena: Arena) -> None:
    if arena.isolation.level == "rlimits" and arena.uid is None:
        pytest.skip("rlimits as a normal user: kill -9 -1 would reach our own processes (the warning says so)")
    host = subprocess.Popen(["sleep", "60"])
    try:
        await arena.start(LANES)
        result = await arena.run("alpha", f"kill -9 {host.pid}; kill -9 {os.getpid()}; kill -9 -1; echo done")
        assert _host_alive(host.pid), "an arena command killed a host process"
        assert _host_alive(os.getpid())
        deaths = {await arena.wait_death(timeout=10) for _ in LANES}  # kill -9 -1 takes the whole arena
        assert deaths == set(LANES)
        assert result.exit_code is not None or result.killed_by_signal == 9
    finally:
        host.kill()
        host.wait()


async def test_close_kills_everything(arena: Arena) -> None:
    await arena.start(LANES)
    await arena.run("alpha", "setsid sleep 1000 >/dev/null 2>&1 & echo bg")
    hosts = [f.host_pid for f in arena.fighters.values()]
    workdir = arena.workdir
    await arena.close()
    assert not any(_host_alive(pid) for pid in hosts)
    if arena.uid is not None:
        assert processes_of_uid(arena.uid) == []
    assert not workdir.exists()
    with pytest.raises(ArenaError):
        await arena.run("alpha", "true")


async def test_warnings_and_bad_lanes(arena: Arena) -> None:
    if arena.isolation.level == "rlimits":
        assert "host PIDs" in arena.warning
    elif arena.isolation.level == "bwrap":
        assert arena.warning is None
    with pytest.raises(ArenaError):
        await arena.start(["same", "same"])
    await arena.start(["x y", "z"])  # odd lane names are fine
    with pytest.raises(KeyError):
        await arena.run("nobody", "true")


_AS_USER = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from thunderdome.sandbox import Arena, Sandbox, detect_isolation

async def main():
    iso = detect_isolation()
    out = {"level": iso.level, "uid_drop": iso.drop_uid}
    async with Sandbox(isolation=iso) as box:
        r = await box.run("id -u; exec 3<>/dev/tcp/127.0.0.1/%s && echo CONNECTED" % sys.argv[2])
        out["sandbox"] = r.to_dict()
    async with Arena(isolation=iso) as arena:
        pids = await arena.start(["a", "b"])
        r = await arena.run("a", "kill -9 %d && echo hit" % pids["b"])
        out["arena"] = {"run": r.to_dict(), "dead": await arena.wait_death(10), "alive": arena.alive()}
    print(json.dumps(out))

asyncio.run(main())
"""


async def test_as_an_unprivileged_user() -> None:
    """The path a developer's laptop takes: no root, bwrap through user namespaces."""
    python = "/usr/bin/python3"
    repo = Path(__file__).resolve().parents[1]
    if os.geteuid() != 0:
        pytest.skip("needs root to become an unprivileged user (we are one already)")
    if isolation_variant("bwrap").level != "bwrap":
        pytest.skip("bwrap unavailable")
    probe = subprocess.run([python, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                           capture_output=True, text=True) if os.path.exists(python) else None
    if probe is None or probe.stdout.strip() != "True":
        pytest.skip(f"{python} (3.11+) needed to run the sandbox as another user")
    if any(not os.access(p, os.R_OK | os.X_OK) or not (p.stat().st_mode & 0o005) for p in [repo, *repo.parents]):
        pytest.skip("the repository is not readable by other users")
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    uid = allocate_uid()

    def become() -> None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)

    try:
        proc = await asyncio.create_subprocess_exec(
            python, "-c", _AS_USER, str(repo), str(port), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, preexec_fn=become, cwd="/",
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "FAKE_API_KEY": "sk-test-unpriv"},
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        server.close()
        release_uid(uid)
    assert proc.returncode == 0, err.decode()
    data = json.loads(out)
    assert data["level"] == "bwrap" and data["uid_drop"] is False
    assert "CONNECTED" not in data["sandbox"]["stdout"]
    assert data["sandbox"]["stdout"].splitlines()[0] == str(uid)
    assert "procs:rlimit_nproc_shared_uid" in data["sandbox"]["limits_enforced"]
    assert data["arena"]["run"]["stdout"] == "hit\n"
    assert data["arena"]["dead"] == "b" and data["arena"]["alive"] == {"a": True, "b": False}
