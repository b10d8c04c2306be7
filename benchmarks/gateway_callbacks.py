"""Gateway callbacks: where an agent request's time goes on the race's loop, at 8 lanes (a diagnostic).

Invariant: runs ``gateway_overhead``'s measurement unchanged (the same ways,
lanes, schedule and emulator) with the race's loop instrumented, and reports,
for each agent request the gateways read (``AgentLink``'s socket callback,
which reads the request and forwards it upstream at once):

- how long after its poll the callback ran: the time it waited behind the
  callbacks queued ahead of it in that loop iteration (mostly the other
  lanes' requests, when eight agents send at once);
- the callback's own wall and CPU time (its ``recv``, the HTTP read, the
  ``send`` upstream); and the mean time of that ``send`` alone (the kernel's
  loopback TCP on this machine: a cost any relay on one thread pays lane
  after lane).

The instrumentation costs time of its own, so these figures explain
``gateway_overhead``'s and never stand in for them; none has a goal.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from asyncio import selector_events
from collections.abc import Iterator
from typing import Any

from benchmarks import gateway_overhead
from benchmarks.common import Figure, add_common_args, command, log, pct, report
from benchmarks.recording import RECORD_HELP

BENCH = "gateway_callbacks"


@contextlib.contextmanager
def instrumented() -> Iterator[dict[str, list[float]]]:
    """The race loop's polls, agent-request callbacks and upstream writes
    timed while inside; the lists of seconds they fill."""
    from thunderdome.backends.poll_stamps import PollStampSelector
    from thunderdome.gateway.agent_link import AgentLink
    from thunderdome.gateway.upstream import _Wire

    got: dict[str, list[float]] = {"queued_s": [], "wall_s": [], "cpu_s": [], "send_s": []}
    last_poll = [0.0]
    select, read_ready, write = (PollStampSelector.select, selector_events._SelectorSocketTransport._read_ready,
                                 selector_events._SelectorSocketTransport.write)

    def timed_select(self: PollStampSelector, timeout: float | None = None) -> Any:
        ready = select(self, timeout)
        last_poll[0] = time.monotonic()
        return ready

    def timed_read_ready(self: Any) -> None:
        if not isinstance(self._protocol, AgentLink):
            return read_ready(self)
        wall, cpu = time.monotonic(), time.thread_time()
        got["queued_s"].append(wall - last_poll[0])
        try:
            return read_ready(self)
        finally:
            got["wall_s"].append(time.monotonic() - wall)
            got["cpu_s"].append(time.thread_time() - cpu)

    def timed_write(self: Any, data: Any) -> None:
        if not isinstance(self._protocol, _Wire):
            return write(self, data)
        start = time.monotonic()
        try:
            return write(self, data)
        finally:
            got["send_s"].append(time.monotonic() - start)

    PollStampSelector.select = timed_select  # type: ignore[method-assign]
    selector_events._SelectorSocketTransport._read_ready = timed_read_ready  # type: ignore[method-assign]
    selector_events._SelectorSocketTransport.write = timed_write  # type: ignore[method-assign]
    try:
        yield got
    finally:
        PollStampSelector.select = select  # type: ignore[method-assign]
        selector_events._SelectorSocketTransport._read_ready = read_ready  # type: ignore[method-assign]
        selector_events._SelectorSocketTransport.write = write  # type: ignore[method-assign]


def _ms(values: list[float]) -> str:
    return f"p50 {pct(values, 50) * 1000:.3f} / p90 {pct(values, 90) * 1000:.3f} / mean {sum(values) / len(values) * 1000:.3f} ms"


def run(*, quick: bool = True, rounds: int | None = None, lanes: int = gateway_overhead.LANES,
        record: bool = True) -> list[Figure]:
    rounds = rounds or (40 if quick else 250)
    log(f"[{BENCH}] gateway_overhead's {rounds} rounds x {lanes} lanes, its race loop instrumented")
    with instrumented() as got:
        gateway_overhead.run(rounds=rounds, lanes=lanes, record=record)
    cmd = command(BENCH, ["--rounds", str(rounds)] + ([] if lanes == gateway_overhead.LANES else ["--lanes", str(lanes)])
                  + ([] if record else ["--no-record"]))
    rows = (("agent request: waited after its poll", "queued_s"), ("agent request: its callback, wall", "wall_s"),
            ("agent request: its callback, CPU", "cpu_s"), ("in it: the send upstream", "send_s"))
    return [Figure(BENCH, f"{name} ({len(got[key])} requests)", _ms(got[key]), "-", None, cmd, {key: got[key]})
            for name, key in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="gateway_overhead's rounds")
    parser.add_argument("--lanes", type=int, default=gateway_overhead.LANES, help="lanes in flight together")
    parser.add_argument("--long", action="store_true", help="250 rounds")
    parser.add_argument("--no-record", action="store_true", help=RECORD_HELP)
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.lanes < 1:
        parser.error("--lanes must be at least 1")
    report(run(quick=not args.long, rounds=args.rounds, lanes=args.lanes, record=not args.no_record), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
