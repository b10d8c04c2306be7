"""Command-line entry point: argparse and dispatch, nothing else.

Invariant: importing this module is cheap (no textual, no httpx, no rich), so
``thunderdome --help`` stays fast; each subcommand imports what it needs.
Exit codes come from one map, ``thunderdome.core.errors`` (0 the command ran,
whoever won; 1 a race could not run; 2 bad usage or bad config; 130
interrupted): an error reaching ``main`` is one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from thunderdome.commands import DEMO_TASKS  # cheap: commands imports nothing heavy at the top
from thunderdome.core.errors import EXIT_OK, EXIT_USAGE, ThunderdomeError, UsageError, exit_code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(EXIT_USAGE, f"thunderdome: error: {message} (see --help)\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def _add_race_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--headless", action="store_true", help="no TUI: a live table, then a summary")
    p.add_argument("--json", metavar="OUT", help="write results as JSON to OUT ('-' for stdout)")
    rec = p.add_mutually_exclusive_group()
    rec.add_argument("--record", metavar="PATH", help="recording file (default: the recordings folder)")
    rec.add_argument("--no-record", action="store_true", help="do not record the race")
    p.add_argument("--max-tokens", type=_positive_int, metavar="N", help="override the task's max tokens")
    p.add_argument(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        metavar="X",
        help="sim lanes only: multiply every simulated delay by X (0.1 = ten times faster)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for sim jitter and wrong answers")
    _add_big(p)


def _add_big(p: argparse.ArgumentParser) -> None:
    p.add_argument("--big", action="store_true", help="presenter mode: big figures, high contrast (b toggles it)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="thunderdome",
        description="Race LLM backends against each other, live, in the terminal. "
        "With no command: the interactive setup screen.",
    )
    from thunderdome import __version__

    parser.add_argument("--version", action="version", version=f"thunderdome {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser("demo", help="the public experiment on the three built-in sim profiles")
    demo.add_argument("--task", help=f"run one task (default: {' then '.join(DEMO_TASKS)})")
    _add_race_output(demo)

    race = sub.add_parser("race", help="race the backends of a YAML file on a task")
    race.add_argument("--backends", required=True, metavar="FILE", help="backends YAML file")
    race.add_argument("--task", required=True, metavar="NAME|FILE", help="built-in task name or task YAML file")
    race.add_argument("--trials", type=_positive_int, default=1, metavar="N", help="run the race N times back to back, then summarise")
    _add_race_output(race)

    replay = sub.add_parser("replay", help="play a recorded race again")
    replay.add_argument("file", metavar="FILE")
    replay.add_argument("--speed", type=_positive_float, default=None, metavar="X",
                        help="playback speed (default 1); with --headless: play in time × X with the live "
                        "table, then the results (without --speed, the results at once)")
    replay.add_argument("--headless", action="store_true", help="no TUI: print the results (at once, or in time with --speed)")
    replay.add_argument("--json", metavar="OUT", help="write results as JSON to OUT ('-' for stdout)")
    _add_big(replay)

    sub.add_parser("tasks", help="list the built-in tasks")

    backends = sub.add_parser("backends", help="list configured backends and sim profiles")
    backends.add_argument("--backends", metavar="FILE", help="backends YAML file (default: found in . or ~/.config/thunderdome)")
    backends.add_argument("--discover", action="store_true", help="probe local servers on their default ports")

    sim = sub.add_parser("sim", help="the built-in backend emulator")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", parser_class=_Parser)
    serve = sim_sub.add_parser(
        "serve",
        help="serve the emulator (OpenAI chat and Responses, Ollama and Anthropic protocols)",
        description="Serve the emulator: POST /v1/chat/completions, /v1/responses, /api/chat and "
        "/v1/messages (tool calls included); GET /v1/models, /api/tags, /api/version. The model name "
        "picks the timing profile (cloud, dgx-spark, rtx4090-offload, ...); a built-in task's prompt is "
        "answered with the task's reference, so lanes of any kind can race Thunderdome tasks on it.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    serve.add_argument("--time-scale", type=_positive_float, default=1.0, metavar="X")

    sandbox = sub.add_parser("sandbox", help="run a command exactly as a model's command runs; print JSON")
    sandbox.add_argument("rest", nargs=argparse.REMAINDER, metavar="-- CMD ...")

    export = sub.add_parser("export", help="export a recording's results")
    export.add_argument("file", metavar="FILE")
    export.add_argument("--format", choices=("json", "csv", "md"), default="md")
    export.add_argument("--output", "-o", metavar="OUT", help="write to OUT instead of stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:  # its own flags and `-- CMD` pass through untouched
        from thunderdome.sandbox.cli import sandbox_main

        return sandbox_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args, parser)
    except ThunderdomeError as exc:
        print(f"thunderdome: {_shown(exc)}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt as exc:
        print("thunderdome: interrupted", file=sys.stderr)
        return exit_code(exc)
    except BrokenPipeError:
        return EXIT_OK


def _shown(exc: ThunderdomeError) -> str:
    """An error as one safe line: secrets redacted (and, for bad usage or
    config, anything that looks like a key pasted where a name belongs),
    control characters made visible."""
    from thunderdome.core.redact import mask_keylike, redact
    from thunderdome.core.visible import visible_line

    text = str(exc)
    return visible_line(mask_keylike(text) if isinstance(exc, UsageError) else redact(text))


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from thunderdome import commands

    command = args.command
    if command is None:
        return commands.cmd_setup()
    if command == "sim":
        if args.sim_command != "serve":
            parser.parse_args(["sim", "--help"])
        return commands.cmd_sim_serve(args)
    if command == "sandbox":
        rest = list(args.rest)
        return commands.cmd_sandbox(rest)
    handler = getattr(commands, f"cmd_{command}")
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
