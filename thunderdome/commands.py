"""Subcommand handlers. Each returns an exit code; bad input is a UsageError.

Invariant: config, task and recording problems raise a ``UsageError`` (their
own classes derive from it), which ``cli.main`` turns into one line on stderr
(redacted, control characters visible) and the exit code of
``thunderdome.errors``; nothing prints a traceback at the user. Every string
from a task, backends file or recording is printed through ``report.cell``
(redacted, control characters visible, never Rich markup).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from thunderdome.errors import EXIT_OK, UsageError

DEMO_TASKS = ("sigkill", "long-essay")
"""``thunderdome demo`` races these, in this order (the public experiment)."""


def _key_column(spec) -> str:
    """``$NAME set`` / ``$NAME NOT SET``; a name that looks like a pasted key is masked."""
    from thunderdome.redact import mask_keylike

    return f"${mask_keylike(spec.api_key_env)} " + ("set" if spec.api_key() else "NOT SET")


def _check_json_target(out: str | None) -> None:
    if out and out != "-":
        parent = Path(out).expanduser().resolve().parent
        if not parent.is_dir():
            raise UsageError(f"--json: folder {parent} does not exist")


def _race(tasks: list, specs: list, args: argparse.Namespace, trials: int = 1) -> int:
    _check_json_target(args.json)
    if args.headless or args.json:
        from thunderdome.headless import run_headless

        return run_headless(
            tasks=tasks,
            specs=specs,
            record=args.record,
            no_record=args.no_record,
            json_out=args.json,
            time_scale=args.time_scale,
            max_tokens=args.max_tokens,
            seed=args.seed,
            trials=trials,
        )
    from thunderdome.tui.app import run_tui

    return run_tui(
        mode="race",
        task=tasks[0],
        specs=specs,
        tasks_after=tasks[1:],
        record=None if args.no_record else (args.record or True),
        time_scale=args.time_scale,
        max_tokens=args.max_tokens,
        seed=args.seed,
        presenter=args.big,
        trials=trials,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from thunderdome.config import demo_backends
    from thunderdome.race.tasks import load_task

    names = [args.task] if args.task else list(DEMO_TASKS)
    tasks = [load_task(name) for name in names]
    return _race(tasks, demo_backends(), args)


def cmd_race(args: argparse.Namespace) -> int:
    from thunderdome.config import load_backends
    from thunderdome.race.tasks import load_task

    specs = load_backends(args.backends)
    task = load_task(args.task)
    return _race([task], specs, args, trials=args.trials)


def cmd_setup() -> int:
    from thunderdome.tui.app import run_tui

    return run_tui(mode="setup")


def _replayed_standings(path: str):
    """Fold a recording into Standings in one streaming pass (memory stays
    bounded however long the race was; a RecordingError is a usage error);
    notices go to stderr, and so does progress on a long file."""
    from thunderdome.metrics import Standings
    from thunderdome.replay import RecordingStream

    stream = RecordingStream(path)
    standings = Standings()
    with _progress(stream) as tick:
        for event in stream.events():
            standings.apply(event)
            if standings.events_seen % 65536 == 0:
                tick()
    _print_notices(stream.notices)
    return standings


def _print_notices(notices: list[str]) -> None:
    from thunderdome.redact import redact
    from thunderdome.visible import visible_line

    for notice in notices:
        print(f"thunderdome: {visible_line(redact(notice))}", file=sys.stderr)


@contextlib.contextmanager
def _progress(stream):
    """``tick()`` shows how far a long recording has been read (on a terminal only)."""
    if not sys.stderr.isatty() or stream.size < 32 * 1024 * 1024:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task(f"reading {Path(stream.path).name}", total=1.0)
        yield lambda: bar.update(task, completed=stream.progress)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def cmd_replay(args: argparse.Namespace) -> int:
    if args.headless or args.json:
        _check_json_target(args.json)
        from thunderdome.headless import human_console, write_json
        from thunderdome.report import summary

        standings = _replayed_standings(args.file)
        console = human_console()
        console.print(summary(standings, args.file, width=console.width))
        if args.json:
            write_json(standings.results(), args.json)
        return EXIT_OK
    from thunderdome.replay import RecordingStream
    from thunderdome.tui.app import run_tui

    RecordingStream(args.file)  # only the header: a file that is no recording is refused before the TUI
    return run_tui(mode="replay", replay_path=args.file, speed=args.speed, presenter=args.big)


def cmd_tasks(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from thunderdome.race.tasks import builtin_tasks
    from thunderdome.report import cell

    from rich import box

    table = Table(title="built-in tasks", header_style="bold", box=box.SIMPLE_HEAD)
    for col in ("name", "kind", "rule", "max tokens"):
        table.add_column(col, no_wrap=True)
    table.add_column("title")
    for task in builtin_tasks():
        table.add_row(cell(task.name), cell(task.kind), cell(task.win_rule or "—"), str(task.max_tokens), cell(task.title))
    Console().print(table)
    return EXIT_OK


def cmd_backends(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from thunderdome.config import find_backends_file
    from thunderdome.report import cell
    from thunderdome.sim.profiles import PROFILES

    console = Console()
    path = args.backends or find_backends_file()
    from rich import box

    table = Table(title="backends", header_style="bold", box=box.SIMPLE_HEAD)
    for col in ("name", "kind", "model"):
        table.add_column(col, no_wrap=True)
    for col in ("url / profile", "key"):
        table.add_column(col)
    if path:
        from thunderdome.config import load_backends

        specs = load_backends(path, require_keys=False)
        for spec in specs:
            key = _key_column(spec) if spec.api_key_env else "—"
            where = spec.url or f"profile {spec.profile}"
            table.add_row(cell(spec.name), cell(spec.kind), cell(spec.model), cell(where), cell(key))
    for profile in PROFILES.values():
        table.add_row(f"sim:{profile.name}", "sim", profile.name, "built-in emulator", "—")
    console.print(table)
    if not path:
        console.print("[dim]no backends file found in . or ~/.config/thunderdome/[/]")
    if args.discover:
        import asyncio

        from thunderdome.discover import discover

        found = asyncio.run(discover())
        if not found:
            console.print("no local servers answered on the default ports")
        for spec in found:
            console.print(cell(f"found {spec.kind} at {spec.url}: {spec.model}"))
    return EXIT_OK


def cmd_sim_serve(args: argparse.Namespace) -> int:
    from thunderdome.sim.launch import serve_main

    argv = ["--host", args.host, "--port", str(args.port), "--time-scale", str(args.time_scale)]
    return serve_main(argv)


def cmd_sandbox(rest: list[str]) -> int:
    from thunderdome.sandbox.cli import sandbox_main

    return sandbox_main(rest)


def cmd_export(args: argparse.Namespace) -> int:
    from thunderdome.export import export_results

    text = export_results(_replayed_standings(args.file).results(), args.format)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    else:
        sys.stdout.write(text)
    return EXIT_OK

