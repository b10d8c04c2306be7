"""Headless races: run, show a live table, record, and write the results.

Invariant: the headless run is one more consumer of the event stream — a
``Standings`` reducer shared with the engine, the optional recorder and the
live table; the JSON it writes is ``Standings.results()``. Races are run and
recorded by ``sources.record_race``, as in the TUI: a recording that fails
leaves the race running, is said under the summary, and makes the exit code
``EXIT_FAILED``.

Results and chatter never share a stream: the summaries, the trials table
and ``--json -`` go to stdout (``results_console``; when ``--json -`` holds
stdout, the summaries move to stderr so the JSON stays whole); the live
table (on a terminal), the moment lines (in a pipe), notices and warnings go
to stderr (``chatter_console``). ``thunderdome demo --headless > out.txt``
leaves the results in ``out.txt``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from thunderdome.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, exit_code
from thunderdome.core.metrics import Standings
from thunderdome.sources.base import OnRecording, RecordingStatus
from thunderdome.core.specs import BackendSpec, TaskSpec


def results_console(json_out: str | None = None):
    """Where summaries and tables go: stdout, unless ``--json -`` goes there (then stderr)."""
    from rich.console import Console

    return Console(stderr=json_out == "-", highlight=False)


def chatter_console():
    """Where the live table, progress, notices and warnings go: stderr."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


async def run_one(
    task: TaskSpec,
    specs: list[BackendSpec],
    *,
    record: str | Path | None,
    console,
    out=None,
    time_scale: float = 1.0,
    max_tokens: int | None = None,
    seed: int | None = None,
    show_live: bool = True,
    on_recording: OnRecording | None = None,
) -> tuple[dict[str, Any], RecordingStatus | None]:
    """Run one race headless; return (results, the recording's status or None).
    ``console``: the chatter (live table, warnings); ``out``: the summary
    (default: ``console``). A recording that fails is said on ``console`` as
    soon as it is seen and again, with where it stops, after the summary;
    the race goes on."""
    from thunderdome.output.report import LiveReporter, RaceClock, cell, summary, warnings
    from thunderdome.sources.recorded_race import record_race

    standings = Standings()
    clock = RaceClock()

    def recording_changed(status: RecordingStatus) -> None:
        if not status.complete and not status.final:
            console.print(cell(status.describe(), "bold red"))
        if on_recording is not None:
            on_recording(status)

    reporter = LiveReporter(standings, console, clock) if show_live else None
    if reporter is not None:
        reporter.start()
    try:
        _, status = await record_race(
            task,
            specs,
            [clock.sink],
            record_path=record,
            on_recording=recording_changed,
            time_scale=time_scale,
            max_tokens=max_tokens,
            seed=seed,
            standings=standings,
        )
    finally:
        if reporter is not None:
            await reporter.stop()
    out = console if out is None else out
    out.print(summary(standings, status.path if status else None, width=out.width))
    for warning in warnings(standings):
        console.print(warning)
    if status is not None and not status.complete:
        console.print(cell(status.describe(), "bold red"))
    return standings.results(), status


async def play_in_time(stream, speed: float, console) -> Standings:
    """Replay ``stream`` (a ``RecordingStream``) headless in race time ×
    ``speed``: the live table (or the moment lines, in a pipe) shows it on
    ``console`` as it happens; returns the folded standings."""
    from thunderdome.output.report import LiveReporter
    from thunderdome.sources.replay import PlayClock

    standings = Standings()
    clock = PlayClock(speed)
    reporter = LiveReporter(standings, console, clock.time)
    reporter.start()
    try:
        for n, event in enumerate(stream.events()):
            delay = clock.due(event.t) - time.monotonic()
            if delay > 0 or n % 512 == 0:  # behind time, the live table still gets its turn
                await asyncio.sleep(max(delay, 0.0))
            standings.apply(event)
    finally:
        await reporter.stop()
    return standings


def write_json(payload: dict[str, Any], out: str) -> None:
    """``payload`` as JSON to ``out`` (``-``: stdout), with no raw control byte."""
    from thunderdome.core.visible import json_safe

    text = json_safe(json.dumps(payload, indent=2, ensure_ascii=False)) + "\n"
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
    recordings: list[RecordingStatus] | None = None,
) -> int:
    """Run tasks one after another (the demo) or one task several times.
    ``recordings``: each race's recording status is appended as the race
    starts and replaced as it changes. Exit code: ``EXIT_FAILED`` if a
    recording is incomplete, else ``EXIT_OK``."""
    from thunderdome.recording.record import default_recording_path
    from thunderdome.output.report import cell

    console = chatter_console()
    out = results_console(json_out)
    results: list[dict[str, Any]] = []
    incomplete: list[RecordingStatus] = []
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
            on_recording = None
            if path is not None and recordings is not None:
                recordings.append(RecordingStatus(str(path)))
                slot = len(recordings) - 1
                on_recording = functools.partial(recordings.__setitem__, slot)
            if trials > 1:
                out.rule(cell(f"{task.name} — trial {trial + 1}/{trials}"))
            result, status = await run_one(
                task,
                specs,
                record=path,
                console=console,
                out=out,
                time_scale=time_scale,
                max_tokens=max_tokens,
                seed=None if seed is None else seed + trial,
                on_recording=on_recording,
            )
            if status is not None:
                result["recording"] = status.path
                if not status.complete:
                    result["recording_incomplete"] = status.describe()
                    incomplete.append(status)
            results.append(result)
    payload: dict[str, Any] = results[0] if len(results) == 1 else {"races": results}
    if trials > 1:
        from thunderdome.output.report import trials_table
        from thunderdome.core.trials import summarise_trials

        payload["summary"] = summarise_trials(results)
        out.print(trials_table(payload["summary"], tasks[0].name, width=out.width))
    if json_out:
        write_json(payload, json_out)
    return EXIT_FAILED if incomplete else EXIT_OK


def say(message: str) -> None:
    """``thunderdome: MESSAGE`` on stderr, as one redacted, visible line."""
    from thunderdome.core.redact import redact
    from thunderdome.core.visible import visible_line

    print(f"thunderdome: {visible_line(redact(message))}", file=sys.stderr)


def run_headless(**kwargs: Any) -> int:
    """Run ``run_many`` and map failures to exit codes. Ctrl-C stops the race
    cleanly (exit 130): the first SIGINT cancels it, so lanes end "race
    interrupted", sandboxes and the emulator are closed and the recording is
    flushed (SIGTERM and SIGHUP do the same); signals after the first are ignored, so an impatient second
    Ctrl-C cannot cut that clean-up short or print a traceback."""
    from thunderdome.backends.poll_stamps import run_on_race_loop
    from thunderdome.race.runner import RaceSetupError
    from thunderdome.core.stop_signals import StopSignals

    interrupted = False
    recordings: list[RecordingStatus] = []
    # A shell starts background jobs with SIGINT ignored: keep it that way.
    own_sigint = signal.getsignal(signal.SIGINT) is signal.default_int_handler

    async def main() -> int:
        nonlocal interrupted
        task = asyncio.current_task()
        assert task is not None
        # SIGTERM / SIGHUP (closed terminal) stop as cleanly as Ctrl-C; one ignored (nohup) stays ignored.
        stops = [sig for sig in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(sig) is not signal.SIG_IGN]
        signals = StopSignals(stops + ([signal.SIGINT] if own_sigint else []), task.cancel)
        signals.install()  # where it cannot (not the main thread), asyncio.run's own Ctrl-C handling applies
        try:
            return await run_many(**kwargs, recordings=recordings)
        finally:
            signals.uninstall()
            interrupted = interrupted or signals.stopped

    code = EXIT_OK
    try:
        code = run_on_race_loop(main())
    except RaceSetupError as exc:
        say(f"race could not run: {exc}")
        return exit_code(exc)
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    if interrupted:
        if own_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # leaving anyway: a late Ctrl-C must not interrupt that
        last = recordings[-1] if recordings else None
        kept = "" if last is None else f"; the race so far is recorded in {last.path}" if last.complete else f"; {last.describe()}"
        say(f"interrupted{kept}")
        return EXIT_INTERRUPTED
    return code
