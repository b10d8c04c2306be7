"""Subcommand handlers. Each returns an exit code; bad input is a UsageError.

Invariant: config, task and recording problems raise a ``UsageError`` (their
own classes derive from it), which ``cli.main`` turns into one line on stderr
(redacted, control characters visible) and the exit code of
``thunderdome.core.errors``; nothing prints a traceback at the user. Every string
from a task, backends file or recording is printed through ``report.cell``
(redacted, control characters visible, never Rich markup).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from thunderdome.core.errors import EXIT_OK, UsageError

DEMO_TASKS = ("sigkill", "long-essay")
"""``thunderdome demo`` races these, in this order (the public experiment)."""


def _key_column(spec) -> str:
    """``$NAME set`` / ``$NAME NOT SET``; a name that looks like a pasted key is masked."""
    from thunderdome.core.redact import mask_keylike

    return f"${mask_keylike(spec.api_key_env)} " + ("set" if spec.api_key() else "NOT SET")


def _check_json_target(out: str | None) -> None:
    if out and out != "-":
        parent = Path(out).expanduser().resolve().parent
        if not parent.is_dir():
            raise UsageError(f"--json: folder {parent} does not exist")


def _race(tasks: list, specs: list, args: argparse.Namespace, trials: int = 1) -> int:
    _check_json_target(args.json)
    if args.headless or args.json:
        from thunderdome.output.headless import run_headless

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
    from thunderdome.core.metrics import Standings
    from thunderdome.recording.replay import RecordingStream

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
    from thunderdome.core.redact import redact
    from thunderdome.core.visible import visible_line

    for notice in notices:
        print(f"thunderdome: {visible_line(redact(notice))}", file=sys.stderr)


@contextlib.contextmanager
def _progress(stream):
    """``tick()`` shows how far a long recording has been read (on a terminal only)."""
    if not sys.stderr.isatty() or stream.size < 32 * 1024 * 1024:
        yield lambda: None
        return
    from rich.progress import Progress

    from thunderdome.output.headless import chatter_console

    with Progress(transient=True, console=chatter_console()) as bar:
        task = bar.add_task(f"reading {Path(stream.path).name}", total=1.0)
        yield lambda: bar.update(task, completed=stream.progress)


def _played_in_time(path: str, speed: float):
    """A recording replayed headless in time × ``speed``, shown live on stderr."""
    import asyncio

    from thunderdome.output.headless import chatter_console, play_in_time
    from thunderdome.recording.replay import RecordingStream

    stream = RecordingStream(path)
    standings = asyncio.run(play_in_time(stream, speed, chatter_console()))
    _print_notices(stream.notices)
    return standings


def cmd_replay(args: argparse.Namespace) -> int:
    """``--headless`` / ``--json``: the results at once; with ``--speed X`` too,
    played in time × X first (live table or moment lines on stderr)."""
    if args.headless or args.json:
        _check_json_target(args.json)
        from thunderdome.output.headless import chatter_console, results_console, write_json
        from thunderdome.output.report import summary, warnings

        if args.speed is None:
            standings = _replayed_standings(args.file)
        else:
            standings = _played_in_time(args.file, args.speed)
        out = results_console(args.json)
        out.print(summary(standings, args.file, width=out.width))
        for warning in warnings(standings):
            chatter_console().print(warning)
        if args.json:
            write_json(standings.results(), args.json)
        return EXIT_OK
    from thunderdome.recording.replay import RecordingStream
    from thunderdome.tui.app import run_tui

    RecordingStream(args.file)  # only the header: a file that is no recording is refused before the TUI
    return run_tui(mode="replay", replay_path=args.file, speed=1.0 if args.speed is None else args.speed, presenter=args.big)


def cmd_tasks(args: argparse.Namespace) -> int:
    from rich.console import Console

    from thunderdome.output.fitted_table import Column, fitted_table
    from thunderdome.race.tasks import builtin_tasks
    from thunderdome.output.report import cell

    console = Console()
    columns = [Column("name"), Column("kind", keep=50), Column("rule", keep=40), Column("max tokens", "right", keep=30),
               Column("title", wrap=True)]
    rows = [[cell(task.name), cell(task.kind), cell(task.win_rule or "—"), str(task.max_tokens), cell(task.title)]
            for task in builtin_tasks()]
    console.print(fitted_table(columns, rows, console.width, title="built-in tasks", hint=" (a wider terminal has them)"))
    return EXIT_OK


def cmd_backends(args: argparse.Namespace) -> int:
    from rich.console import Console

    from thunderdome.config import find_backends_file
    from thunderdome.output.fitted_table import Column, fitted_table
    from thunderdome.output.report import cell
    from thunderdome.sim.profiles import PROFILES

    console = Console()
    path = args.backends or find_backends_file()
    rows: list[list] = []
    if path:
        from thunderdome.config import load_backends

        specs = load_backends(path, require_keys=False)
        for spec in specs:
            key = _key_column(spec) if spec.api_key_env else "—"
            where = spec.url or f"profile {spec.profile}"
            rows.append([cell(spec.name), cell(spec.kind), cell(spec.model), cell(where), cell(key)])
    for profile in PROFILES.values():
        rows.append([f"sim:{profile.name}", "sim", profile.name, "built-in emulator", "—"])
    columns = [Column("name"), Column("kind"), Column("model", wrap=True), Column("url / profile", wrap=True),
               Column("key", wrap=True)]
    console.print(fitted_table(columns, rows, console.width, title="backends"))
    if not path:
        print("thunderdome: no backends file found in . or ~/.config/thunderdome/", file=sys.stderr)
    if args.discover:
        import asyncio

        from thunderdome.core.discover import discover

        found = asyncio.run(discover())
        if not found:
            console.print("no local servers answered on the default ports")
        for spec in found:
            console.print(cell(f"found {spec.kind} at {spec.url}: {spec.model}"))
    return EXIT_OK


def cmd_sim_serve(args: argparse.Namespace) -> int:
    """The emulator, answering every built-in task's prompt with the task's
    reference (so lanes of any kind play Thunderdome tasks against it)."""
    from thunderdome.race.tasks import builtin_tasks
    from thunderdome.sim.launch import serve_main
    from thunderdome.sim.task_replies import TaskReplies

    argv = ["--host", args.host, "--port", str(args.port), "--time-scale", str(args.time_scale)]
    tasks = TaskReplies((task.user, task.reference) for task in builtin_tasks() if task.reference)
    return serve_main(argv, task_replies=tasks)


def cmd_sandbox(rest: list[str]) -> int:
    from thunderdome.sandbox.cli import sandbox_main

    return sandbox_main(rest)


def cmd_export(args: argparse.Namespace) -> int:
    from thunderdome.output.export import export_results

    text = export_results(_replayed_standings(args.file).results(), args.format)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    else:
        sys.stdout.write(text)
    return EXIT_OK

