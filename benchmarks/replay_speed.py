"""Replay speed, on the path the app plays: ``replay_source(path, speed)`` — a
``ReplaySource`` reading a ``RecordingStream`` as it plays.

Invariant: both recordings are made here and deleted after. (1) A real sim
race (``run_race`` on sim lanes, ``Recorder`` as a sink) replayed at
``--speed``: its wall time (``start()`` to the last recorded event) against
``duration / speed``, whether the events equal ``load_recording``'s in order,
and each event's lateness (emit time - due time). (2) A long recording
(``benchmarks.big_recording``: 8 lanes of token deltas, ``--events``) played
at max speed in a child process, each event folded into ``Standings`` as the
TUI's reducer does: time from ``replay_source()`` to the first event, events
per second, and the child's peak RSS (``ru_maxrss``). ``--before`` also times
the old path (``load_recording`` whole before the first event).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks.common import Figure, add_common_args, command, log, pct, report

BENCH = "replay_speed"
GOAL_PCT = 1.0
FIRST_EVENT_GOAL_S = 2.0
RSS_GOAL_MB = 200.0
MAX_SPEED = 1e9
"""As fast as the file reads (the source's clock needs a finite speed)."""
LANES = (("cloud", 300), ("fast-local", 300), ("thinker", 300))
"""(profile, tokens): ~2.3 s, ~2.6 s and ~4.5 s lanes (thinker reasons first)."""


async def record_race(path: str, scale: float) -> None:
    from thunderdome.race.runner import run_race
    from thunderdome.recording.record import Recorder
    from thunderdome.core.specs import BackendSpec, TaskSpec

    task = TaskSpec(name="replay-speed", title="replay speed", kind="long", user="Write an essay.",
                    max_tokens=2000, timeout=300.0)
    specs = [BackendSpec(name=p, kind="sim", profile=p, model=p, protocol=proto, options={"tokens": n})
             for (p, n), proto in zip(LANES, ("openai", "ollama", "anthropic"))]
    async with Recorder(path) as recorder:
        await run_race(task, specs, [recorder], time_scale=scale)


def play(path: str, speed: float, on_event: Any = None) -> dict[str, Any]:
    """Play ``path`` through ``replay_source`` to its end; stamps of every event."""
    from thunderdome.sources.replay import replay_source

    stamps: list[float] = []
    got: list[Any] = []

    def sink(event: Any) -> None:
        stamps.append(time.monotonic())
        if on_event is None:
            got.append(event)
        else:
            on_event(event)

    opened = time.monotonic()
    source = replay_source(path, speed)
    source.start(sink)
    try:
        if not source.at_end.wait(3600):
            raise RuntimeError("the replay did not reach its end within an hour")
    finally:
        source.stop()
    if source.error:
        raise RuntimeError(source.error)
    return {"opened": opened, "stamps": stamps, "events": got, "peak_buffered": source.peak_buffered,
            "window": source.window}


def measure_timed(speed: float, scale: float) -> dict[str, Any]:
    from thunderdome.recording.replay import load_recording

    fd, path = tempfile.mkstemp(prefix="bench-replay-", suffix=".jsonl")
    os.close(fd)
    try:
        asyncio.run(record_race(path, scale))
        recording = load_recording(path)
        m = play(path, speed)
    finally:
        os.unlink(path)
    events, stamps = recording.events, m["stamps"]
    start = m["opened"]
    wall = stamps[len(events) - 1] - start
    expected = recording.duration / speed
    late = [at - (start + e.t / speed) for e, at in zip(events, stamps)]
    return {
        "events": len(events),
        "recording_s": recording.duration,
        "replay_s": wall,
        "expected_s": expected,
        "error_pct": (wall - expected) / expected * 100,
        "in_order": m["events"][: len(events)] == events,
        "late_p50_ms": pct(late, 50) * 1000,
        "late_p99_ms": pct(late, 99) * 1000,
        "late_max_ms": max(late) * 1000,
        "notices": recording.notices,
    }


def child_max_speed(path: str) -> dict[str, Any]:
    """In a fresh process: play ``path`` at max speed into Standings."""
    from thunderdome.core.metrics import Standings

    standings = Standings()
    m = play(path, MAX_SPEED, standings.apply)
    stamps = m["stamps"]
    return {
        "events": len(stamps),
        "first_event_s": stamps[0] - m["opened"],
        "wall_s": stamps[-1] - m["opened"],
        "events_per_s": len(stamps) / (stamps[-1] - m["opened"]),
        "peak_buffered": m["peak_buffered"],
        "window": m["window"],
        "winner": standings.winner,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def child_before(path: str) -> dict[str, Any]:
    """In a fresh process: the old TUI path, the whole file loaded before the first event."""
    from thunderdome.recording.replay import load_recording

    start = time.monotonic()
    events = load_recording(path).events
    return {"events": len(events), "first_event_s": time.monotonic() - start,
            "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def in_child(kind: str, path: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.replay_speed", f"--child-{kind}", path],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def run(*, quick: bool = True, speed: float = 4.0, scale: float = 1.0, events: int = 200_000,
        before: bool = False) -> list[Figure]:
    from benchmarks.big_recording import write_recording

    scale = scale if quick else scale * 4
    args = ["--speed", f"{speed:g}", "--time-scale", f"{scale:g}", "--events", str(events)]
    log(f"[replay_speed] record a 3-lane sim race (time_scale {scale:g}), replay it at {speed:g}x")
    m = measure_timed(speed, scale)
    value = (f"{m['replay_s']:.3f} s for a {m['recording_s']:.3f} s race ({m['error_pct']:+.2f}% vs 1/{speed:g}); "
             f"{m['events']} events {'in order' if m['in_order'] else 'OUT OF ORDER'}; "
             f"lateness p99 {m['late_p99_ms']:.2f} ms")
    met = abs(m["error_pct"]) <= GOAL_PCT and m["in_order"]
    figures = [Figure(BENCH, f"replay at {speed:g}x", value, f"within {GOAL_PCT:g}% of 1/{speed:g}, in order", met,
                      command("replay_speed", args), m)]
    fd, path = tempfile.mkstemp(prefix="bench-replay-big-", suffix=".jsonl")
    os.close(fd)
    try:
        log(f"[replay_speed] write a {events}-event recording, play it at max speed in a child")
        write_recording(path, events)
        size_mb = os.path.getsize(path) / 1e6
        big = in_child("max", path)
        old = in_child("before", path) if before else None
    finally:
        os.unlink(path)
    rss_mb = big["maxrss_kb"] / 1024
    label = f"{events} events ({size_mb:.0f} MB file)"
    cmd = command("replay_speed", args + (["--before"] if before else []))
    figures.append(Figure(BENCH, f"{label} at max speed", f"{big['events_per_s']:,.0f} events/s "
                          f"({big['wall_s']:.1f} s, winner {big['winner']})", "-", None, cmd, big))
    first = f"{big['first_event_s'] * 1000:.0f} ms" + (f" (before: {old['first_event_s']:.1f} s)" if old else "")
    figures.append(Figure(BENCH, f"{label}: time to first event", first, f"< {FIRST_EVENT_GOAL_S:g} s",
                          big["first_event_s"] < FIRST_EVENT_GOAL_S, cmd, big))
    rss = (f"{rss_mb:.0f} MB (read-ahead peak {big['peak_buffered']} of {big['window']} events)"
           + (f" (before: {old['maxrss_kb'] / 1024:.0f} MB)" if old else ""))
    figures.append(Figure(BENCH, f"{label}: peak RSS, source + Standings", rss, f"< {RSS_GOAL_MB:g} MB",
                          rss_mb < RSS_GOAL_MB, cmd, dict(big, before=old)))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.replay_speed", description=__doc__.split("\n")[0])
    p.add_argument("--speed", type=float, default=4.0)
    p.add_argument("--time-scale", type=float, default=1.0, help="the recorded race's sim time scale")
    p.add_argument("--events", type=int, default=200_000, help="events in the long recording")
    p.add_argument("--before", action="store_true", help="also time the old path (whole file loaded first)")
    p.add_argument("--long", action="store_true", help="a 4x longer recorded race")
    p.add_argument("--child-max", metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--child-before", metavar="PATH", help=argparse.SUPPRESS)
    add_common_args(p)
    args = p.parse_args(argv)
    if args.child_max or args.child_before:
        result = child_max_speed(args.child_max) if args.child_max else child_before(args.child_before)
        print(json.dumps(result))
        return 0
    report(run(quick=not args.long, speed=args.speed, scale=args.time_scale, events=args.events,
               before=args.before), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
