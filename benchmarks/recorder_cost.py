"""Recorder cost: CPU the recorder takes from the event loop that stamps tokens, per event.

Invariant: the real ``thunderdome.recording.record.Recorder`` records a paced stream of
real events (three lanes of ``TokenDelta`` at ~3000 events/s, with secret
variables set so the scrubber is active) to a real file, on a real asyncio
loop. Measured: the CPU time of the loop's thread (``time.thread_time``) from
``start()`` to ``close()``, minus the same paced stream fed to a sink that does
nothing, divided by the number of events — the microseconds per event that the
recorder takes from the loop — and, for honesty, the recorder's whole CPU cost
per event on every thread (``time.process_time``) and how much later the
loop wakes (p99) while the recorder runs (the writer thread shares the GIL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from statistics import median
from typing import Any, Callable

from benchmarks.common import Figure, add_common_args, command, log, pct, report

BENCH = "recorder_cost"
GOAL_US = 5.0
"""Loop CPU per recorded event: under the cost of parsing one SSE frame."""
BURST = 12
"""Events fed per loop wake-up (a frame's worth of deltas from three lanes)."""
RATE = 3000.0
"""Events per second offered."""


def make_events(n: int) -> list[Any]:
    from thunderdome.core.events import RaceStarted, TokenDelta

    lanes = ({"name": "a", "kind": "sim", "api_key_env": "BENCH_API_KEY"}, {"name": "b", "kind": "sim"},
             {"name": "c", "kind": "sim"})
    words = ("the ", "quick ", "brown ", "fox ", "jumps ", "over ", "a ", "lazy ", "dog, ", "sk ")
    events: list[Any] = [RaceStarted(t=0.0, task="bench", lanes=lanes)]
    for i in range(n):
        events.append(TokenDelta(t=i / RATE, lane="abc"[i % 3], text=words[i % len(words)] * (1 + i % 3)))
    return events


async def feed(events: list[Any], sink: Callable[[Any], None]) -> list[float]:
    """Offer ``events`` at ``RATE``, ``BURST`` at a time, as a race would;
    return how late (s) the loop woke for each burst."""
    start = time.monotonic()
    late: list[float] = []
    for i in range(0, len(events), BURST):
        for event in events[i : i + BURST]:
            sink(event)
        due = start + (i + BURST) / RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        late.append(max(0.0, time.monotonic() - due))
    return late


async def cpu_of(events: list[Any], path: str | None) -> tuple[float, float, float]:
    """(loop-thread CPU, process CPU, p99 wake-up lateness) in seconds,
    recording to ``path`` (None: a no-op sink)."""
    from thunderdome.recording.record import Recorder

    thread0, proc0 = time.thread_time(), time.process_time()
    if path is None:
        late = await feed(events, lambda event: None)
    else:
        recorder = Recorder(path)
        await recorder.start()
        late = await feed(events, recorder)
        await recorder.close()
        assert recorder.error is None, recorder.error
    return time.thread_time() - thread0, time.process_time() - proc0, pct(late, 99)


def measure(n: int, rounds: int) -> dict[str, Any]:
    os.environ["BENCH_API_KEY"] = "sk-bench-0123456789abcdef"
    events = make_events(n)
    loop_us: list[float] = []
    all_us: list[float] = []
    late_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-recorder-") as folder:
        for k in range(rounds):
            base_loop, base_all, base_late = asyncio.run(cpu_of(events, None))
            path = os.path.join(folder, f"r{k}.jsonl")
            rec_loop, rec_all, rec_late = asyncio.run(cpu_of(events, path))
            os.unlink(path)
            loop_us.append((rec_loop - base_loop) / len(events) * 1e6)
            all_us.append((rec_all - base_all) / len(events) * 1e6)
            late_ms.append((rec_late - base_late) * 1e3)
            log(f"{BENCH}: round {k + 1}: loop {loop_us[-1]:.2f} µs/event, all threads {all_us[-1]:.2f} µs/event, "
                f"extra p99 wake-up lateness {late_ms[-1]:.2f} ms")
    return {"events": len(events), "rounds": rounds, "loop_us": median(loop_us), "all_us": median(all_us),
            "late_ms": median(late_ms), "loop_us_all": loop_us, "all_us_all": all_us, "late_ms_all": late_ms}


def run(*, quick: bool = True, events: int | None = None, rounds: int | None = None) -> list[Figure]:
    n = events or (6000 if quick else 30000)
    r = rounds or (3 if quick else 7)
    data = measure(n, r)
    args = [] if quick else ["--long"]
    cmd = command(BENCH, args)
    return [
        Figure(BENCH, "loop CPU per recorded event (median of rounds)", f"{data['loop_us']:.2f} µs", f"< {GOAL_US:g} µs",
               data["loop_us"] < GOAL_US, cmd, data),
        Figure(BENCH, "recorder CPU per event, all threads", f"{data['all_us']:.2f} µs", "-", None, cmd, data),
        Figure(BENCH, "extra p99 loop wake-up lateness while recording", f"{data['late_ms']:.2f} ms", "-", None, cmd,
               data),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recorder_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="more events and rounds")
    add_common_args(parser)
    args = parser.parse_args(argv)
    report(run(quick=not args.long), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
