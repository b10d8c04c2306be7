"""Headless races: run, show a live table, record, and write the results.

Invariant: the headless run is one more consumer of the event stream — a
``Standings`` reducer shared with the engine, the optional recorder and the
live table; the JSON it writes is ``Standings.results()``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from thunderdome.errors import EXIT_INTERRUPTED, EXIT_OK, UsageError, exit_code
from thunderdome.metrics import Standings
from thunderdome.specs import BackendSpec, TaskSpec


class RecordingPathError(UsageError):
    """The recording file cannot be created (exit code 2)."""


def human_console():
    """Where human-readable output goes: stdout, unless JSON goes there."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


async def run_one(
    task: TaskSpec,
    specs: list[BackendSpec],
    *,
    record: str | Path | None,
    console,
    time_scale: float = 1.0,
    max_tokens: int | None = None,
    seed: int | None = None,
    show_live: bool = True,
) -> tuple[dict[str, Any], str | None]:
    """Run one race headless; return (results, recording path or None)."""
    from thunderdome.race.runner import run_race
    from thunderdome.report import LiveReporter, RaceClock, summary

    standings = Standings()
    clock = RaceClock()
    sinks: list = [clock.sink]
    recorder = None
    if record is not None:
        from thunderdome.record import Recorder

        recorder = Recorder(Path(record))
        try:
            await recorder.start()
        except OSError as exc:
            raise RecordingPathError(f"cannot record to {record}: {exc.strerror or exc}") from None
        sinks.append(recorder)
    reporter = LiveReporter(standings, console, clock) if show_live else None
    if reporter is not None:
        reporter.start()
    try:
        await run_race(
            task,
            specs,
            sinks,
            time_scale=time_scale,
            max_tokens=max_tokens,
            seed=seed,
            standings=standings,
        )
    finally:
        if reporter is not None:
            await reporter.stop()
        if recorder is not None:
            await recorder.close()
            if recorder.error:
                console.print(f"[bold red]recording incomplete:[/] {recorder.error}")
    recording = str(record) if record is not None else None
    console.print(summary(standings, recording, width=console.width))
    return standings.results(), recording


def write_json(payload: dict[str, Any], out: str) -> None:
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    if out == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(out).write_text(text, encoding="utf-8")


async def run_many(
    tasks: list[TaskSpec],
    specs: list[BackendSpec],
    *,
    record: str | None,
    no_record: bool,
    json_out: str | None,
    time_scale: float,
    max_tokens: int | None,
    seed: int | None,
    trials: int = 1,
    recordings: list[str] | None = None,
) -> int:
    """Run tasks one after another (the demo) or one task several times.
    ``recordings``: each race's recording path is appended as the race starts."""
    from thunderdome.record import default_recording_path

    console = human_console()
    results: list[dict[str, Any]] = []
    for task in tasks:
        for trial in range(trials):
            if no_record:
                path = None
            elif record and len(tasks) * trials == 1:
                path = record
            elif record:
                base = Path(record)
                path = base.with_name(f"{base.stem}-{task.name}-{trial + 1}{base.suffix or '.jsonl'}")
            else:
                path = default_recording_path(task.name)
            if path is not None and recordings is not None:
                recordings.append(str(path))
            if trials > 1:
                console.rule(f"{task.name} — trial {trial + 1}/{trials}")
            result, recording = await run_one(
                task,
                specs,
                record=path,
                console=console,
                time_scale=time_scale,
                max_tokens=max_tokens,
                seed=None if seed is None else seed + trial,
            )
            if recording:
                result["recording"] = recording
            results.append(result)
    payload: dict[str, Any] = results[0] if len(results) == 1 else {"races": results}
    if trials > 1:
        from thunderdome.report import trials_table
        from thunderdome.trials import summarise_trials

        payload["summary"] = summarise_trials(results)
        console.print(trials_table(payload["summary"], tasks[0].name))
    if json_out:
        write_json(payload, json_out)
    return EXIT_OK


def run_headless(**kwargs: Any) -> int:
    """Run ``run_many`` and map failures to exit codes. Ctrl-C stops the race
    cleanly (exit 130): the first SIGINT cancels it, so lanes end "race
    interrupted", sandboxes and the emulator are closed and the recording is
    flushed (SIGTERM and SIGHUP do the same); signals after the first are ignored, so an impatient second
    Ctrl-C cannot cut that clean-up short or print a traceback."""
    from thunderdome.race.runner import RaceSetupError

    interrupted = False
    recordings: list[str] = []
    # A shell starts background jobs with SIGINT ignored: keep it that way.
    own_sigint = signal.getsignal(signal.SIGINT) is signal.default_int_handler

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None

        def on_sigint() -> None:
            nonlocal interrupted
            if not interrupted:
                interrupted = True
                task.cancel()

        loop = asyncio.get_running_loop()
        stops = [signal.SIGTERM, signal.SIGHUP] + ([signal.SIGINT] if own_sigint else [])
        for sig in stops:  # SIGTERM / SIGHUP (closed terminal) stop as cleanly as Ctrl-C
            if sig != signal.SIGINT and signal.getsignal(sig) is signal.SIG_IGN:
                continue
            try:
                loop.add_signal_handler(sig, on_sigint)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # no loop signal handlers here: asyncio.run's own Ctrl-C handling applies
        return await run_many(**kwargs, recordings=recordings)

    code = EXIT_OK
    try:
        code = asyncio.run(main())
    except RaceSetupError as exc:
        print(f"thunderdome: race could not run: {exc}", file=sys.stderr)
        return exit_code(exc)
    except RecordingPathError as exc:
        print(f"thunderdome: {exc}", file=sys.stderr)
        return exit_code(exc)
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    if interrupted:
        if own_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # leaving anyway: a late Ctrl-C must not interrupt that
        kept = f"; the race so far is recorded in {recordings[-1]}" if recordings else ""
        print(f"thunderdome: interrupted{kept}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code
