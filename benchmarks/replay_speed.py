"""Replay speed: a recorded sim race replayed at 4x takes a quarter of its time, in order.

Invariant: the recording is made here, for real — ``run_race`` on sim lanes
(emulator in its own process) with ``thunderdome.record.Recorder`` as a
sink — then loaded with ``load_recording`` and replayed with
``replay_events(events, emit, speed)``. Measured: the replay's wall time
(start of the call to the last emit) against ``recording.duration / speed``,
whether the emitted events equal the recorded ones in the recorded order, and
each event's lateness (emit time - its due time ``start + t / speed``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from typing import Any

from benchmarks.common import Figure, add_common_args, command, log, pct, report

BENCH = "replay_speed"
GOAL_PCT = 1.0
LANES = (("cloud", 300), ("fast-local", 300), ("thinker", 300))
"""(profile, tokens): ~2.3 s, ~2.6 s and ~4.5 s lanes (thinker reasons first)."""


async def record_race(path: str, scale: float) -> None:
    from thunderdome.race.runner import run_race
    from thunderdome.record import Recorder
    from thunderdome.specs import BackendSpec, TaskSpec

    task = TaskSpec(name="replay-speed", title="replay speed", kind="long", user="Write an essay.",
                    max_tokens=2000, timeout=300.0)
    specs = [BackendSpec(name=p, kind="sim", profile=p, model=p, protocol=proto, options={"tokens": n})
             for (p, n), proto in zip(LANES, ("openai", "ollama", "anthropic"))]
    async with Recorder(path) as recorder:
        await run_race(task, specs, [recorder], time_scale=scale)


async def replay(events: list[Any], speed: float) -> tuple[float, list[tuple[Any, float]]]:
    from thunderdome.sources.replay import replay_events

    got: list[tuple[Any, float]] = []
    start = time.monotonic()
    await replay_events(events, lambda e: got.append((e, time.monotonic())), speed=speed)
    return start, got


def measure(speed: float, scale: float) -> dict[str, Any]:
    from thunderdome.replay import load_recording

    fd, path = tempfile.mkstemp(prefix="bench-replay-", suffix=".jsonl")
    os.close(fd)
    try:
        asyncio.run(record_race(path, scale))
        recording = load_recording(path)
    finally:
        os.unlink(path)
    events = recording.events
    start, got = asyncio.run(replay(events, speed))
    wall = got[-1][1] - start
    expected = recording.duration / speed
    late = [at - (start + e.t / speed) for e, at in got]
    return {
        "events": len(events),
        "recording_s": recording.duration,
        "replay_s": wall,
        "expected_s": expected,
        "error_pct": (wall - expected) / expected * 100,
        "in_order": [e for e, _ in got] == list(events),
        "late_p50_ms": pct(late, 50) * 1000,
        "late_p99_ms": pct(late, 99) * 1000,
        "late_max_ms": max(late) * 1000,
        "notices": recording.notices,
    }


def run(*, quick: bool = True, speed: float = 4.0, scale: float = 1.0) -> list[Figure]:
    scale = scale if quick else scale * 4
    log(f"[replay_speed] record a 3-lane sim race (time_scale {scale:g}), replay it at {speed:g}x")
    m = measure(speed, scale)
    args = ["--speed", f"{speed:g}", "--time-scale", f"{scale:g}"]
    value = (f"{m['replay_s']:.3f} s for a {m['recording_s']:.3f} s race ({m['error_pct']:+.2f}% vs 1/{speed:g}); "
             f"{m['events']} events {'in order' if m['in_order'] else 'OUT OF ORDER'}; "
             f"lateness p99 {m['late_p99_ms']:.2f} ms")
    met = abs(m["error_pct"]) <= GOAL_PCT and m["in_order"]
    return [Figure(BENCH, f"replay at {speed:g}x", value, f"within {GOAL_PCT:g}% of 1/{speed:g}, in order", met,
                   command("replay_speed", args), m)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.replay_speed", description=__doc__.split("\n")[0])
    p.add_argument("--speed", type=float, default=4.0)
    p.add_argument("--time-scale", type=float, default=1.0, help="the recorded race's sim time scale")
    p.add_argument("--long", action="store_true", help="a 4x longer recording")
    add_common_args(p)
    args = p.parse_args(argv)
    report(run(quick=not args.long, speed=args.speed, scale=args.time_scale), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
