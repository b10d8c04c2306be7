"""``thunderdome sandbox [--timeout S] [--isolation LEVEL] -- CMD ...``.

Invariant: CMD runs exactly as a model's command runs (a fresh ``Sandbox``,
default limits, the same isolation detection) and the outcome is printed as
one JSON object on stdout. Exit code 0 whenever the command ran, whatever its
own exit status; 2 on bad usage, 1 when no sandbox works here (one line on
stderr, never a traceback; the codes are those of ``thunderdome.core.errors``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from dataclasses import replace

from thunderdome.core.errors import EXIT_OK, EXIT_USAGE, ThunderdomeError, UsageError, exit_code
from thunderdome.sandbox.isolation import LEVELS, detect_isolation
from thunderdome.sandbox.limits import SandboxLimits
from thunderdome.sandbox.runner import Sandbox
from thunderdome.core.visible import json_safe, visible_line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _parser() -> _Parser:
    parser = _Parser(prog="thunderdome sandbox", add_help=False,
                     description="Run CMD as a model's command runs; print a JSON result.")
    parser.add_argument("--timeout", type=float, default=None, metavar="S")
    parser.add_argument("--isolation", choices=LEVELS, default=None, metavar="LEVEL")
    return parser


def command_from(words: list[str]) -> str:
    """One word is a shell command line as a model writes it; several words
    are an argv, quoted so each stays one argument."""
    return words[0] if len(words) == 1 else shlex.join(words)


USAGE = """usage: thunderdome sandbox [--timeout S] [--isolation LEVEL] -- CMD ...

Run CMD exactly as a model's command runs in a race (fresh work dir, cleared
environment, no network, limits) and print a JSON result: exit_code, stdout,
stderr, timed_out, isolation, duration, truncated, limits_enforced, reason.
Isolation levels, best first: bwrap, unshare, rlimits (default: best available).
"""


def sandbox_main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE, end="")
        return EXIT_OK
    if "--" in argv:
        cut = argv.index("--")
        opts, words = argv[:cut], argv[cut + 1:]
    else:
        opts, words = [], list(argv)
        while words and words[0].split("=", 1)[0] in ("--timeout", "--isolation"):
            take = 1 if "=" in words[0] else 2
            opts, words = opts + words[:take], words[take:]
    try:
        args = _parser().parse_args(opts)
        if not words or not "".join(words).strip():
            raise UsageError("no command given (usage: thunderdome sandbox [--timeout S] [--isolation LEVEL] -- CMD ...)")
        if args.timeout is not None and not args.timeout > 0:
            raise UsageError("--timeout must be a positive number of seconds")
        isolation = detect_isolation(args.isolation)
    except ValueError as exc:  # an unknown level in $THUNDERDOME_ISOLATION
        _say(str(exc))
        return EXIT_USAGE
    except ThunderdomeError as exc:  # UsageError, IsolationUnavailable
        _say(str(exc))
        return exit_code(exc)
    if isolation.warning:
        print(visible_line(isolation.warning), file=sys.stderr)
    limits = SandboxLimits() if args.timeout is None else replace(SandboxLimits(), timeout=args.timeout)
    result = asyncio.run(_run(command_from(words), limits, isolation))
    out = {key: result[key] for key in ("exit_code", "stdout", "stderr", "timed_out", "isolation", "duration",
                                        "truncated", "limits_enforced", "killed_by_signal", "reason")}
    out["warning"] = isolation.warning
    print(json_safe(json.dumps(out, indent=2, ensure_ascii=False)))
    return EXIT_OK


def _say(message: str) -> None:
    """``thunderdome sandbox: MESSAGE`` on stderr, on one visible line (it can echo what was typed)."""
    print(f"thunderdome sandbox: {visible_line(message)}", file=sys.stderr)


async def _run(command: str, limits: SandboxLimits, isolation) -> dict:  # type: ignore[no-untyped-def]
    async with Sandbox(limits=limits, isolation=isolation) as box:
        return (await box.run(command)).to_dict()


__all__ = ["sandbox_main", "command_from"]
