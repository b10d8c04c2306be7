"""Sandbox basics at every isolation level this machine offers (real bwrap/unshare)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import replace

import pytest

from _isolation import VARIANT_PARAMS  # type: ignore[import-not-found]
from thunderdome.sandbox import (
    ENV_VAR,
    LEVELS,
    ExecResult,
    Sandbox,
    SandboxLimits,
    detect_isolation,
)
from thunderdome.sandbox.cli import command_from, sandbox_main
from thunderdome.sandbox.processes import processes_of_uid
from thunderdome.sandbox.isolation import isolation_variant

FAKE_KEY = "sk-test-thunderdome-0123456789abcdef"


@pytest.fixture
async def box(request):
    sandbox = Sandbox(isolation=isolation_variant(request.param), setup_files={"data/in.txt": "alpha\nbeta\n"})
    yield sandbox
    await sandbox.close()


per_level = pytest.mark.parametrize("box", VARIANT_PARAMS, indirect=True)


@per_level
async def test_stdout_stderr_and_exit_code(box: Sandbox) -> None:
    result = await box.run("echo out; echo err >&2; exit 7")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.exit_code == 7
    assert not result.timed_out and not result.truncated
    assert result.killed_by_signal is None
    assert result.isolation == box.isolation.level
    assert result.ended >= result.started and result.duration >= 0


@per_level
async def test_setup_files_and_work_dir(box: Sandbox) -> None:
    result = await box.run("wc -l < data/in.txt; printf done > out.txt; pwd")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].strip() == "2"
    if box.isolation.level == "bwrap":
        assert result.stdout.splitlines()[1] == "/work"
    assert (box.workdir / "out.txt").read_text() == "done"
    again = await box.run("cat out.txt")  # the work dir persists between runs of one sandbox
    assert again.stdout == "done"
    scratch = await box.run('echo h > "$HOME/.h" && echo t > "$(mktemp)" && cat "$HOME/.h"')
    assert scratch.exit_code == 0 and scratch.stdout == "h\n", scratch.stderr  # HOME and /tmp are writable


@per_level
async def test_timeout_kills(box: Sandbox) -> None:
    result = await box.run("echo started; sleep 30; echo never", timeout=0.5)
    assert result.timed_out
    assert result.exit_code is None
    assert result.killed_by_signal == 9
    assert result.stdout == "started\n"
    assert "timed out" in result.reason
    assert result.duration < 10


@per_level
async def test_environment_is_cleared(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", FAKE_KEY)
    result = await box.run('env; echo "key=[$FAKE_API_KEY]"')
    assert FAKE_KEY not in result.stdout
    assert "key=[]" in result.stdout
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines() if "=" in line and line[0].isupper()}
    assert {"PATH", "HOME", "LANG", "TERM"} <= names
    assert names <= {"PATH", "HOME", "LANG", "TERM", "PWD", "SHLVL", "OLDPWD"}


@per_level
async def test_signal_and_output_cap(box: Sandbox) -> None:
    small = Sandbox(limits=replace(SandboxLimits(), max_output=1000), isolation=box.isolation)
    try:
        result = await small.run("head -c 100000 /dev/zero | tr '\\0' a; echo tail >&2")
        assert result.exit_code == 0
        assert result.stdout == "a" * 1000
        assert result.truncated
        assert result.output_bytes == 100000 + len("tail\n")
        assert result.stderr == "tail\n"
        killed = await small.run("sleep 5 & kill -SEGV $$")
        assert killed.killed_by_signal == 11
    finally:
        await small.close()


@per_level
async def test_limits_reported(box: Sandbox) -> None:
    result = await box.run("true")
    enforced = set(result.limits_enforced)
    assert {"timeout", "output", "memory:rlimit_as", "file_size:rlimit_fsize"} <= enforced
    if os.geteuid() == 0:
        assert "procs:rlimit_nproc" in enforced  # throwaway uid: RLIMIT_NPROC really counts
    assert ("tree_kill:pid_namespace" in enforced) == (box.isolation.level != "rlimits")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["exit_code"] == 0 and isinstance(data["limits_enforced"], list)


@per_level
async def test_close_removes_work_dir(box: Sandbox) -> None:
    workdir = box.workdir
    await box.run("mkdir -p deep/er && touch deep/er/f && chmod 000 deep/er")
    await box.close()
    assert not workdir.exists()
    with pytest.raises(RuntimeError):
        await box.run("true")


# --- not per level --------------------------------------------------------------------


def test_setup_file_paths_cannot_escape() -> None:
    for bad in ("../escape.txt", "/etc/escape.txt", "a/../../b"):
        with pytest.raises(ValueError):
            Sandbox(isolation=detect_isolation("rlimits"), workdir=None, setup_files={bad: "x"})


def test_detection_forcing_and_fallback_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    best = detect_isolation()
    assert best.level in LEVELS
    assert detect_isolation() is best  # cached
    if shutil.which("bwrap") and detect_isolation("bwrap").level == "bwrap":
        assert best.level == "bwrap" and best.warning is None
    monkeypatch.setenv(ENV_VAR, "rlimits")
    forced = detect_isolation()
    assert forced.level == "rlimits"
    assert "NO filesystem isolation" in forced.warning and "NO network isolation" in forced.warning
    monkeypatch.setenv(ENV_VAR, "unshare")
    un = detect_isolation()
    if un.level == "unshare":
        assert "NO filesystem isolation" in un.warning
        assert "network" in un.contains and "filesystem" not in un.contains
    monkeypatch.setenv(ENV_VAR, "chroot")
    with pytest.raises(ValueError):
        detect_isolation()
    info = best.to_dict()
    assert info["level"] == best.level and "limits_enforced" in info


async def test_cli_prints_json_result(capsys: pytest.CaptureFixture[str]) -> None:
    # sandbox_main runs its own event loop: call it from a worker thread.
    code = await asyncio.to_thread(sandbox_main, ["--timeout", "5", "--", "echo hi; exit 3"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 3 and out["stdout"] == "hi\n" and out["timed_out"] is False
    assert set(out) >= {"exit_code", "stdout", "stderr", "timed_out", "isolation", "duration", "truncated",
                        "limits_enforced"}
    code = await asyncio.to_thread(sandbox_main, ["--isolation", "rlimits", "--timeout", "0.3", "--", "sleep", "5"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["timed_out"] is True and out["isolation"] == "rlimits"
    assert await asyncio.to_thread(sandbox_main, ["--timeout", "5"]) == 2
    assert await asyncio.to_thread(sandbox_main, ["--isolation", "chroot", "--", "true"]) == 2
    assert await asyncio.to_thread(sandbox_main, ["--timeout", "soon", "--", "true"]) == 2
    assert "thunderdome sandbox:" in capsys.readouterr().err
    assert command_from(["echo hi | wc -c"]) == "echo hi | wc -c"
    assert command_from(["python3", "-c", "print(1)"]) == "python3 -c 'print(1)'"


def test_exec_result_is_plain_data() -> None:
    result = ExecResult(0, "a", "b", False, 0.1, "bwrap", False, None, 1.0, 1.1, ("timeout",), "", 2)
    assert result.to_dict()["limits_enforced"] == ["timeout"]
    assert json.loads(json.dumps(result.to_dict()))["output_bytes"] == 2


@per_level
async def test_cancelled_run_leaves_nothing(box: Sandbox) -> None:
    task = asyncio.ensure_future(box.run("echo up > up.txt; sleep 30"))
    for _ in range(1000):  # until the command is really running (bounded: 10 s)
        if (box.workdir / "up.txt").exists():
            break
        await asyncio.sleep(0.01)
    assert (box.workdir / "up.txt").exists()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    if box.uid is not None:
        assert processes_of_uid(box.uid) == []
    again = await box.run("echo next")  # the lock was released
    assert again.stdout == "next\n"
