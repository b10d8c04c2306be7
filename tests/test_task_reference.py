"""Every built-in Thunderdome task is solvable: its reference answer passes its
checks in the real sandbox, and its wrong answer fails them. The sigkill
reference kills both opponents in a real arena; its wrong answer does not."""

from __future__ import annotations

import asyncio
import os

import pytest

from thunderdome.race.checks import run_checks
from thunderdome.race.engine import render_prompt
from thunderdome.race.extract import extract_command
from thunderdome.race.tasks import builtin_tasks, load_task
from thunderdome.sandbox import Arena, Sandbox, SandboxLimits, detect_isolation
from thunderdome.sandbox.isolation import SANDBOX_WORK

FIRST_CORRECT = [t.name for t in builtin_tasks() if t.win_rule == "first_correct"]


@pytest.fixture(scope="module")
def isolation():
    return detect_isolation()


async def _attempt(task_name: str, answer: str, iso) -> tuple[bool, str, str]:
    """Run ``answer`` (a full model reply) for the task in a fresh sandbox."""
    task = load_task(task_name)
    async with Sandbox(limits=SandboxLimits(timeout=task.exec_timeout), isolation=iso,
                       setup_files=dict(task.setup_files)) as box:
        workdir = SANDBOX_WORK if iso.level == "bwrap" else str(box.workdir)
        reply = render_prompt(answer, {"workdir": workdir, "lane": "test", "task": task.name})
        command = extract_command(reply)
        assert command, f"no command in {task_name}'s answer: {reply!r}"
        res = await box.run(command, timeout=task.exec_timeout)
        assert not res.timed_out, res

        async def run(check_command: str):
            return await box.run(check_command, timeout=task.exec_timeout)

        outcome = await run_checks(task.checks, workdir=box.workdir, result=res, run=run)
        return outcome.passed, outcome.detail, command


@pytest.mark.parametrize("name", FIRST_CORRECT)
async def test_reference_solves_the_task(name: str, isolation) -> None:
    task = load_task(name)
    passed, detail, command = await _attempt(name, task.reference, isolation)
    assert passed, f"{name}: reference `{command}` failed: {detail}"


@pytest.mark.parametrize("name", FIRST_CORRECT)
async def test_wrong_answer_fails_the_task(name: str, isolation) -> None:
    task = load_task(name)
    assert task.wrong_answer.strip(), f"{name} has no wrong_answer"
    passed, detail, command = await _attempt(name, task.wrong_answer, isolation)
    assert not passed, f"{name}: wrong answer `{command}` passed the checks"
    assert detail.startswith("check"), detail


def test_there_are_enough_first_correct_tasks() -> None:
    assert len(FIRST_CORRECT) >= 6


async def _deaths(arena, lanes: set[str], wait: float = 10.0) -> None:
    """Until the arena has reported these lanes' fighters dead (bounded)."""
    try:
        async with asyncio.timeout(wait):
            while not lanes <= set(arena.death_times):
                await arena.wait_death()
    except TimeoutError:
        pytest.fail(f"fighters {sorted(lanes - set(arena.death_times))} still alive after {wait} s")


def _arena_safe(iso) -> bool:
    return iso.level != "rlimits" or os.geteuid() == 0


async def test_sigkill_reference_kills_both_opponents(isolation) -> None:
    if not _arena_safe(isolation):
        pytest.skip("arena at the rlimits level without root could hit your own processes")
    task = load_task("sigkill")
    arena = Arena(limits=SandboxLimits(timeout=task.exec_timeout), isolation=isolation)
    try:
        pids = await arena.start(["a", "b", "c"])
        fields = {"pid": pids["a"], "opponents": f"{pids['b']} {pids['c']}"}
        wrong = extract_command(render_prompt(task.wrong_answer, fields))
        assert wrong is not None
        res = await arena.run("a", wrong, timeout=task.exec_timeout)
        await _deaths(arena, {"a"})  # the wrong answer kills its own fighter...
        alive = arena.alive()
        assert alive["b"] and alive["c"], f"wrong answer killed an opponent: {res}"  # ...and no other
        command = extract_command(render_prompt(task.reference, fields))
        assert command == f"kill -9 {pids['b']} {pids['c']}"
        res = await arena.run("a", command, timeout=task.exec_timeout)
        assert res.exit_code == 0, res
        await _deaths(arena, {"b", "c"})
    finally:
        await arena.close()
