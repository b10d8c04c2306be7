"""Hostile commands against the real sandbox, at every level, asserting honestly
what each level contains and what it does not (bwrap must contain everything)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from _isolation import VARIANT_PARAMS  # type: ignore[import-not-found]
from thunderdome.sandbox import Sandbox
from thunderdome.sandbox.isolation import isolation_variant
from thunderdome.sandbox.processes import processes_of_uid

FAKE_KEY = "sk-test-hostile-" + uuid.uuid4().hex
ROOT = os.geteuid() == 0


@pytest.fixture(params=VARIANT_PARAMS)
async def box(request):
    sandbox = Sandbox(isolation=isolation_variant(request.param))
    yield sandbox
    await sandbox.close()


def _live_processes() -> list[tuple[int, str]]:
    """(pid, cmdline) of every live, non-zombie process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if stat[stat.rindex(")") + 2] in "ZX":
                continue
            found.append((int(entry), Path(f"/proc/{entry}/cmdline").read_bytes().decode("utf-8", "replace")))
        except (OSError, ValueError):
            continue
    return found


def _assert_nothing_left(box: Sandbox) -> None:
    """No process of the sandbox survives the run."""
    if box.uid is not None:
        assert processes_of_uid(box.uid) == []
    if box.cgroup is not None:
        assert box.cgroup.pids() == []


@pytest.fixture
def planted():
    """A world-readable secret in a world-writable host dir outside the work dir."""
    folder = Path(tempfile.mkdtemp(prefix="thunderdome-planted-"))
    folder.chmod(0o777)
    secret = folder / "secret.txt"
    secret.write_text(f"planted-{uuid.uuid4().hex}\n")
    secret.chmod(0o644)
    yield secret
    shutil.rmtree(folder, ignore_errors=True)


async def test_write_outside_work_dir(box: Sandbox, planted: Path) -> None:
    tag = uuid.uuid4().hex
    targets = [f"/etc/td-{tag}", f"/usr/td-{tag}", f"/root/td-{tag}", str(planted.parent / f"td-{tag}")]
    cmd = "; ".join(f"echo x > {t} && echo WROTE {t}" for t in targets) + "; echo ok > inside.txt"
    result = await box.run(cmd)
    assert (box.workdir / "inside.txt").read_text() == "ok\n"
    level = box.isolation.level
    for target in targets[:3]:
        if level == "bwrap" or ROOT:  # read-only mounts, or file permissions for the throwaway uid
            assert not Path(target).exists(), f"{level}: {target} was written on the host"
            assert f"WROTE {target}" not in result.stdout
    host_tmp_written = Path(targets[3]).exists()
    # Only bwrap hides the host's /tmp; the fallbacks share the host filesystem.
    assert host_tmp_written == (level != "bwrap")
    if level != "bwrap":
        assert "NO filesystem isolation" in box.warning


async def test_read_outside_work_dir(box: Sandbox, planted: Path) -> None:
    result = await box.run(f"cat {planted}; ls /root; cat /etc/shadow")
    secret = planted.read_text()
    if box.isolation.level == "bwrap":
        assert secret not in result.stdout
        assert result.exit_code != 0
    else:  # honest: the host filesystem is visible at the fallback levels
        assert secret in result.stdout
        assert "NO filesystem isolation" in box.warning
    assert "root:" not in result.stdout  # /etc/shadow: masked (bwrap) or unreadable (throwaway uid)


async def test_network_to_host_loopback(box: Sandbox) -> None:
    connected = asyncio.Event()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await box.run(f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED", timeout=5)
        if box.isolation.level == "rlimits":
            await asyncio.wait_for(connected.wait(), 5)  # honest: no network isolation here
            assert "CONNECTED" in result.stdout
            assert "NO network isolation" in box.warning
        else:
            assert "CONNECTED" not in result.stdout
            assert result.exit_code != 0
            assert not connected.is_set()
    finally:
        server.close()
        await server.wait_closed()


async def test_parent_environment_unreachable(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", FAKE_KEY)
    holder = subprocess.Popen(["sleep", "60"], env={**os.environ, "FAKE_API_KEY": FAKE_KEY})
    try:
        result = await box.run(
            f'echo "[$FAKE_API_KEY]"; cat /proc/{holder.pid}/environ /proc/{os.getpid()}/environ 2>/dev/null '
            "| tr '\\0' '\\n' | grep FAKE_API_KEY; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep FAKE"
        )
        if box.isolation.level == "rlimits" and not ROOT:
            assert "read your other processes' environment" in box.warning
        else:
            assert FAKE_KEY not in result.stdout + result.stderr
        assert "[]" in result.stdout
    finally:
        holder.kill()
        holder.wait()


async def test_classic_fork_bomb_is_contained(box: Sandbox) -> None:
    before = len(_live_processes())
    result = await box.run(":(){ :|:& };:", timeout=5)
    assert result.duration < 15
    _assert_nothing_left(box)
    # Other tests may run beside us: allow some drift, not a surviving bomb.
    assert len(_live_processes()) <= before + 25


async def test_fork_bomb_is_contained(box: Sandbox) -> None:
    # The bomb keeps its shell busy so the run must be ended by the timeout.
    result = await box.run(":(){ :|:& };:; sleep 30", timeout=1.5)
    assert result.timed_out and result.exit_code is None
    assert result.duration < 12
    if box.uid is not None or box.cgroup is not None:
        assert "Resource temporarily unavailable" in result.stderr  # the process limit bit
    _assert_nothing_left(box)
    after = await box.run("echo alive")  # the sandbox (and the host) still work
    assert after.stdout == "alive\n"


async def test_output_flood_is_truncated(box: Sandbox) -> None:
    result = await box.run("yes; yes >&2", timeout=20)
    assert result.truncated
    assert len(result.stdout.encode()) <= box.limits.max_output
    assert result.stdout.startswith("y\ny\n")
    assert result.output_bytes > box.limits.max_output
    assert result.exit_code is None and (result.timed_out or "flood" in result.reason)
    _assert_nothing_left(box)


async def test_daemon_does_not_outlive_run(box: Sandbox) -> None:
    marker = f"td-marker-{uuid.uuid4().hex}"
    cmd = (  # a setsid daemon and a double-forked orphan; wait until both really run
        f"setsid nohup bash -c 'echo $$ > d1.pid; exec -a {marker} sleep 1000' >/dev/null 2>&1 & "
        f"( ( bash -c 'echo $$ > d2.pid; exec -a {marker}-2 sleep 1000' & ) & ); "
        "while [ ! -s d1.pid ] || [ ! -s d2.pid ]; do sleep 0.02; done; echo launched"
    )
    result = await box.run(cmd)
    assert result.stdout.strip() == "launched"
    survivors = [c for _, c in _live_processes() if marker in c]
    if box.uid is None and box.cgroup is None and box.isolation.level == "rlimits":
        assert "can outlive the run" in box.warning  # honest about what this level cannot do
        for pid, cmdline in _live_processes():
            if marker in cmdline:
                os.kill(pid, 9)
    else:
        assert survivors == []
    _assert_nothing_left(box)


async def test_memory_hog_is_stopped(box: Sandbox) -> None:
    result = await box.run("head -c 2G /dev/zero | tail > /dev/null", timeout=20)
    assert result.exit_code != 0 and not result.timed_out
    assert "memory exhausted" in result.stderr or result.killed_by_signal is not None
    if os.path.exists("/usr/bin/python3"):
        result = await box.run("/usr/bin/python3 -c 'b = bytearray(2 * 1024**3); print(len(b))'", timeout=20)
        assert "MemoryError" in result.stderr and result.exit_code == 1


async def test_big_file_is_capped(box: Sandbox) -> None:
    result = await box.run("head -c 64M /dev/zero > big.bin", timeout=20)
    assert result.exit_code != 0
    assert (box.workdir / "big.bin").stat().st_size <= box.limits.max_file_size


async def test_busy_loop_times_out(box: Sandbox) -> None:
    result = await box.run("while :; do :; done", timeout=1)
    assert result.timed_out and result.killed_by_signal == 9
    assert "timed out after 1 s" in result.reason
    _assert_nothing_left(box)


async def test_kill_everything_spares_the_host(box: Sandbox) -> None:
    if box.isolation.level == "rlimits" and not ROOT:
        pytest.skip("rlimits as a normal user: kill -9 -1 would reach our own processes (the warning says so)")
    host = subprocess.Popen(["sleep", "60"])
    try:
        result = await box.run(f"kill -9 {host.pid} {os.getpid()}; kill -9 -1; echo done")
        assert host.poll() is None, "a sandboxed command killed a host process"
        assert result.exit_code is not None or result.killed_by_signal is not None
        _assert_nothing_left(box)
    finally:
        host.kill()
        host.wait()
