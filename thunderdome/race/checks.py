"""Score a first_correct lane: run a task's checks against its work dir.

Invariant: checking never raises for anything the model's command did (a
missing file, a symlink out of the work dir, binary junk, a check command
that hangs); every outcome is a ``CheckOutcome`` whose ``detail`` is one line
a person can read ("answer.txt: expected '3', got '4'"), redacted
(``thunderdome.core.redact``) before it is cut, so no beginning of a key survives
the cut. Checks run in order
and stop at the first failure; all must pass. Files are read on the host but
only inside the work dir: a path that resolves outside it fails the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Protocol, Sequence

from thunderdome.core.redact import redact
from thunderdome.core.specs import Check

READ_LIMIT = 1_000_000
"""Bytes of a checked file read at most."""


class ExecLike(Protocol):
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool


RunCheck = Callable[[str], Awaitable[ExecLike]]
"""Runs a check command in the lane's sandbox and returns its result."""


@dataclass(frozen=True)
class CheckOutcome:
    """The ruling on one turn. ``failed``: index of the first failing check."""

    passed: bool
    detail: str
    failed: int | None = None


def short(text: str, limit: int = 60) -> str:
    """``repr`` of ``text`` redacted, then cut to ``limit`` characters, on one line."""
    text = redact(text)
    if len(text) > limit:
        return repr(text[: limit - 1]) + "…"
    return repr(text)


def _read(workdir: Path, rel: str) -> tuple[str | None, str]:
    """(text, problem) of a file inside ``workdir``."""
    root = workdir.resolve()
    target = workdir / rel
    try:
        resolved = target.resolve()
    except (OSError, RuntimeError):
        return None, f"{rel}: cannot resolve the path"
    if resolved != root and root not in resolved.parents:
        return None, f"{rel}: points outside the work dir"
    if not resolved.exists():
        return None, f"{rel}: no such file"
    if not resolved.is_file():
        return None, f"{rel}: not a regular file"
    try:
        with open(resolved, "rb") as fh:
            data = fh.read(READ_LIMIT)
    except OSError as exc:
        return None, f"{rel}: cannot read ({exc.strerror})"
    return data.decode("utf-8", "replace"), ""


async def run_check(check: Check, *, workdir: Path, result: ExecLike, run: RunCheck | None) -> tuple[bool, str]:
    """One check -> (passed, one-line detail)."""
    kind = check.kind
    if kind in ("file_equals", "file_contains"):
        text, problem = _read(workdir, check.path)
        if text is None:
            return False, problem
        if kind == "file_equals":
            if text.rstrip("\n") == check.value.rstrip("\n"):
                return True, f"{check.path} is right"
            return False, f"{check.path}: expected {short(check.value.rstrip(chr(10)))}, got {short(text.rstrip(chr(10)))}"
        if check.value in text:
            return True, f"{check.path} contains {short(check.value)}"
        return False, f"{check.path} does not contain {short(check.value)}"
    if kind == "stdout_equals":
        got = result.stdout.strip()
        if got == check.value.strip():
            return True, "output is right"
        return False, f"output: expected {short(check.value.strip())}, got {short(got)}"
    if kind == "stdout_contains":
        if check.value in result.stdout:
            return True, f"output contains {short(check.value)}"
        return False, f"output does not contain {short(check.value)}"
    if kind == "command":
        if run is None:
            return False, "check command cannot run: no sandbox"
        res = await run(check.command)
        if res.timed_out:
            return False, f"check `{_one_line(check.command)}` timed out"
        if res.exit_code == 0:
            return True, f"check `{_one_line(check.command)}` passed"
        said = _one_line(res.stderr or res.stdout)
        tail = f": {said}" if said else ""
        return False, f"check `{_one_line(check.command)}` failed (exit {res.exit_code}){tail}"
    return False, f"unknown check kind {kind!r}"


def _one_line(text: str, limit: int = 80) -> str:
    """``text`` redacted, then on one line, then cut (redacting after a cut could miss a key's beginning)."""
    text = " ".join(redact(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def run_checks(
    checks: Sequence[Check], *, workdir: Path, result: ExecLike, run: RunCheck | None = None
) -> CheckOutcome:
    """Every check, in order, until one fails."""
    if not checks:
        return CheckOutcome(False, "task has no checks", None)
    for index, check in enumerate(checks):
        try:
            passed, detail = await run_check(check, workdir=workdir, result=result, run=run)
        except (OSError, ValueError, UnicodeError) as exc:  # never let a check crash the lane
            passed, detail = False, f"check {check.kind} could not run: {exc}"
        if not passed:
            prefix = f"check {index + 1}/{len(checks)} failed: " if len(checks) > 1 else "check failed: "
            return CheckOutcome(False, prefix + detail, index)
    return CheckOutcome(True, f"all {len(checks)} checks passed" if len(checks) > 1 else "check passed", None)


__all__ = ["CheckOutcome", "run_check", "run_checks", "short", "READ_LIMIT"]
