"""Ranking cost: what one live ranking (``Standings.ranked(now)``) costs as a race grows.

Invariant: the reducer is fed synthetic long-race events (every lane
running, ``max_tokens`` above what was streamed, so each lane has a projected
finish), token by token through ``Standings.apply`` as a source would; before
each measured ranking every lane streams ``--step`` more tokens (a 20 Hz
frame at 1000 tok/s per lane), so nothing is measured on a reducer that has
not changed since its last read. Two figures per size: the ranking alone
(what the TUI's leaderboard and lane headers read every frame) and the
ranking plus the ITL p50/p99 of every lane (what the headless live table
shows). Only the reads are timed, never the folding.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from benchmarks.common import Figure, add_common_args, command, log, pct, report

BENCH = "ranking_cost"
STEP = 50
"""Tokens per lane between two rankings: one 20 Hz frame at 1000 tok/s."""


def lane_times(index: int, tokens: int, rng: random.Random) -> list[float]:
    """Token arrival times of lane ``index``: a 0.2-0.5 s TTFT, then jittered gaps at its own pace."""
    t = 0.2 + 0.02 * index
    mean_gap = 1.0 / (500 + 40 * index)
    times = []
    for _ in range(tokens):
        times.append(t)
        t += mean_gap * rng.uniform(0.5, 1.5)
    return times


def build(lanes: int, tokens: int, extra: int) -> tuple[Any, list[list[float]]]:
    """A reducer fed ``tokens`` tokens per lane, and each lane's next ``extra`` token times."""
    from thunderdome.core.events import LaneStarted, RaceStarted, RequestSent, TokenDelta
    from thunderdome.core.metrics import Standings

    rng = random.Random(7)
    names = [f"lane-{i:02d}" for i in range(lanes)]
    standings = Standings()
    standings.apply(RaceStarted(t=0.0, task="ranking-cost", kind="long", max_tokens=4 * (tokens + extra),
                                lanes=tuple({"name": n, "kind": "sim", "model": n} for n in names)))
    for name in names:
        standings.apply(LaneStarted(t=0.0, lane=name))
        standings.apply(RequestSent(t=0.0, lane=name))
    times = [lane_times(i, tokens + extra, rng) for i in range(lanes)]
    stream = sorted((t, name) for name, ts in zip(names, times) for t in ts[:tokens])
    for t, name in stream:
        standings.apply(TokenDelta(t=t, lane=name, text="tok "))
    return standings, [ts[tokens:] for ts in times]


def measure(lanes: int, tokens: int, rankings: int, step: int) -> dict[str, Any]:
    from thunderdome.core.events import TokenDelta

    standings, rest = build(lanes, tokens, rankings * step)
    names = list(standings.lanes)
    rank_s: list[float] = []
    itl_s: list[float] = []
    for k in range(rankings):
        for name, ts in zip(names, rest):
            for t in ts[k * step:(k + 1) * step]:
                standings.apply(TokenDelta(t=t, lane=name, text="tok "))
        now = standings.last_t
        start = time.perf_counter()
        ranked = standings.ranked(now)
        mid = time.perf_counter()
        shown = [(s.itl_p50_ms, s.itl_p99_ms) for s in ranked]
        end = time.perf_counter()
        assert len(shown) == lanes and all(p50 is not None for p50, _ in shown)
        rank_s.append(mid - start)
        itl_s.append(end - start)
    return {
        "lanes": lanes,
        "tokens": tokens,
        "rankings": rankings,
        "step": step,
        "ranked_p50_ms": pct(rank_s, 50) * 1000,
        "ranked_p90_ms": pct(rank_s, 90) * 1000,
        "ranked_itl_p50_ms": pct(itl_s, 50) * 1000,
        "ranked_itl_p90_ms": pct(itl_s, 90) * 1000,
    }


def run(*, quick: bool = True, lanes: tuple[int, ...] = (8, 16), tokens: int = 10_000,
        rankings: int = 0, step: int = STEP) -> list[Figure]:
    rankings = rankings or (20 if quick else 100)
    figures = []
    for n in lanes:
        log(f"[{BENCH}] {n} lanes x {tokens} tokens, {rankings} rankings, {step} new tokens per lane before each")
        m = measure(n, tokens, rankings, step)
        args = ["--lanes", str(n), "--tokens", str(tokens), "--rankings", str(rankings), "--step", str(step)]
        value = (f"ranked(now) p50 {m['ranked_p50_ms']:.3f} ms (p90 {m['ranked_p90_ms']:.3f}); "
                 f"with ITL p50/p99 read p50 {m['ranked_itl_p50_ms']:.3f} ms (p90 {m['ranked_itl_p90_ms']:.3f})")
        figures.append(Figure(BENCH, f"{n} lanes x {tokens} tokens, per ranking", value, "-", None,
                              command(BENCH, args), m))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{BENCH}", description=__doc__.split("\n")[0])
    p.add_argument("--lanes", default="8,16", help="comma list of lane counts")
    p.add_argument("--tokens", type=int, default=10_000, help="tokens per lane already streamed")
    p.add_argument("--rankings", type=int, default=0, help="rankings measured per size (default 20; --long 100)")
    p.add_argument("--step", type=int, default=STEP, help="new tokens per lane before each ranking")
    p.add_argument("--long", action="store_true", help="more rankings per size")
    add_common_args(p)
    args = p.parse_args(argv)
    lanes = tuple(int(x) for x in args.lanes.split(",") if x)
    report(run(quick=not args.long, lanes=lanes, tokens=args.tokens, rankings=args.rankings, step=args.step), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
