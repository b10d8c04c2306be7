"""Sandbox overhead: what running one model command costs at each isolation level.

Invariant: every level is timed on the same command (``true``) through the
same public API (``Sandbox.run``, one sandbox per level, so work-dir and uid
set-up happen once, as in a race), ``N`` times, and compared with the floor:
the same shell run as a plain asyncio subprocess. The figure is the median
wall time of ``await box.run("true")`` (spawn, namespaces, limits, output
capture, tree kill and sweep) minus the floor's median. Each level is the
exact variant (``isolation_variant``), never a fallback; a level this machine
cannot give is reported as unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from benchmarks.common import Figure, add_common_args, command, log, pct, report

BENCH = "sandbox_overhead"


async def _floor(shell: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.monotonic()
        proc = await asyncio.create_subprocess_exec(shell, "-c", "true", stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        await proc.communicate()
        out.append(time.monotonic() - start)
    return out


async def _level(name: str, runs: int) -> dict[str, Any]:
    from thunderdome.sandbox import Sandbox
    from thunderdome.sandbox.isolation import IsolationUnavailable, isolation_variant

    try:
        iso = isolation_variant(name)
    except (IsolationUnavailable, RuntimeError) as exc:
        return {"name": name, "unavailable": str(exc)}
    walls, durations = [], []
    async with Sandbox(isolation=iso) as box:
        await box.run("true")  # first run: page cache, bwrap's first exec
        for _ in range(runs):
            start = time.monotonic()
            result = await box.run("true")
            walls.append(time.monotonic() - start)
            durations.append(result.duration)
            if result.exit_code != 0:
                raise RuntimeError(f"{name}: `true` exited {result.exit_code}: {result.reason or result.stderr}")
    return {"name": name, "wall_s": walls, "duration_s": durations, "shell": iso.shell}


async def _measure(levels: tuple[str, ...], runs: int) -> tuple[list[float], list[dict[str, Any]]]:
    got = [await _level(name, runs) for name in levels]
    shell = next((g["shell"] for g in got if "shell" in g), "/bin/sh")
    floor = await _floor(shell, runs)
    return floor, got


def run(*, quick: bool = True, runs: int | None = None, levels: tuple[str, ...] | None = None) -> list[Figure]:
    from thunderdome.sandbox.isolation import VARIANTS

    runs = runs or (20 if quick else 200)
    levels = levels or VARIANTS
    log(f"[sandbox_overhead] `true` x{runs} at {', '.join(levels)} and as a plain subprocess")
    floor, got = asyncio.run(_measure(levels, runs))
    from thunderdome.sandbox import detect_isolation

    default = detect_isolation()
    default_name = "bwrap-root" if default.level == "bwrap" and default.mode == "root" else default.level
    floor_med = pct(floor, 50)
    cmd = command("sandbox_overhead", ["--runs", str(runs)])
    figures = [Figure(BENCH, "plain subprocess (floor)", f"{floor_med * 1000:.1f} ms median", "-", None, cmd,
                      {"floor_s": floor})]
    for g in got:
        if "unavailable" in g:
            figures.append(Figure(BENCH, f"{g['name']} per command", "unavailable here", "-", None, cmd, g))
            continue
        med = pct(g["wall_s"], 50)
        value = (f"{med * 1000:.1f} ms median (+{(med - floor_med) * 1000:.1f} ms over the floor; "
                 f"p99 {pct(g['wall_s'], 99) * 1000:.1f} ms)")
        data = dict(g, median_s=med, overhead_s=med - floor_med)
        label = f"{g['name']} per command" + (" (the default here)" if g["name"] == default_name else "")
        figures.append(Figure(BENCH, label, value, "- (no goal set)", None, cmd, data))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sandbox_overhead", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, help="runs per level (default 20; --long 200)")
    p.add_argument("--levels", help="comma list of bwrap, bwrap-root, unshare, rlimits (default all)")
    p.add_argument("--long", action="store_true")
    add_common_args(p)
    args = p.parse_args(argv)
    levels = tuple(args.levels.split(",")) if args.levels else None
    report(run(quick=not args.long, runs=args.runs, levels=levels), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
