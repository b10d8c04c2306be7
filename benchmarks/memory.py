"""Memory: peak RSS of the process running a race of 8 lanes x 100k tokens.

Invariant: the race runs in a fresh child process (``--child``) so the peak
is the race's own: ``record_race`` (what ``thunderdome race`` runs) with the
emulator in its own process (its memory is not counted), the engine's
``Standings`` and, by default, the ``Recorder`` writing the JSONL file to a
temporary folder (a real race records by default; ``--no-record`` to compare). The
child reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after the race,
and its RSS just before it (imports done) for scale. Lanes use the
``instant`` profile with directive ``tokens`` and a tiny time scale, so the
tokens come as fast as the two processes can move them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO_ROOT, Figure, add_common_args, command, log, report
from benchmarks.recording import RECORD_HELP, check_recording, temp_recording_path

BENCH = "memory"
GOAL_MB = 300.0


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _child_race(lanes: int, tokens: int, record: bool, scale: float) -> dict[str, Any]:
    from thunderdome.sources.recorded_race import record_race
    from thunderdome.core.specs import BackendSpec, TaskSpec

    task = TaskSpec(name="memory", title="memory", kind="long", user="Write a very long essay.",
                    max_tokens=tokens, timeout=1800.0)
    specs = [BackendSpec(name=f"lane{i}", kind="sim", profile="instant", model="instant", protocol="openai",
                         options={"tokens": tokens, "seed": i}) for i in range(lanes)]
    with temp_recording_path(record, prefix="bench-memory-") as path:
        before = _rss_kb()
        start = time.monotonic()
        standings, status = await record_race(task, specs, record_path=path, time_scale=scale)
        elapsed = time.monotonic() - start
        if status is not None:
            check_recording(status.error, status.events)
        size = os.path.getsize(path) if path else 0
    got = sum(lane.tokens for lane in standings.lanes.values())
    statuses = sorted({lane.status for lane in standings.lanes.values()})
    return {"rss_before_kb": before, "elapsed_s": elapsed, "tokens": got, "recording_bytes": size,
            "statuses": statuses}


def child_main(lanes: int, tokens: int, record: bool, scale: float) -> int:
    import thunderdome.backends.openai  # noqa: F401  (imports counted in the baseline, not the race)
    import thunderdome.race.runner  # noqa: F401
    import thunderdome.sources.recorded_race  # noqa: F401

    out = asyncio.run(_child_race(lanes, tokens, record, scale))
    out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out), flush=True)
    return 0


def measure(lanes: int, tokens: int, record: bool, scale: float) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-m", "benchmarks.memory", "--child", "--lanes", str(lanes), "--tokens", str(tokens),
            "--time-scale", repr(scale)] + ([] if record else ["--no-record"])
    proc = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(*, quick: bool = True, lanes: int = 8, tokens: int = 100_000, record: bool = True,
        scale: float = 0.0001) -> list[Figure]:
    log(f"[memory] {lanes} lanes x {tokens} tokens in a child process (recorder {'on' if record else 'off'})")
    m = measure(lanes, tokens, record, scale)
    peak_mb = m["maxrss_kb"] / 1024
    base_mb = m["rss_before_kb"] / 1024
    want = lanes * tokens
    if m["tokens"] != want or m["statuses"] != ["finished"] and m["statuses"] != ["finished", "winner"]:
        raise RuntimeError(f"the race did not deliver: {m['tokens']} of {want} tokens, statuses {m['statuses']}")
    args = ["--lanes", str(lanes), "--tokens", str(tokens)] + ([] if record else ["--no-record"])
    value = (f"peak RSS {peak_mb:.0f} MB (before the race {base_mb:.0f} MB; "
             f"{m['tokens'] / m['elapsed_s']:.0f} tok/s moved)")
    data = dict(m, peak_mb=peak_mb, base_mb=base_mb, per_token_bytes=(m["maxrss_kb"] - m["rss_before_kb"]) * 1024 / want)
    name = f"{lanes} lanes x {f'{tokens // 1000}k' if tokens >= 1000 else tokens} tokens" + (" (recording)" if record else "")
    return [Figure(BENCH, name, value, f"< {GOAL_MB:g} MB", peak_mb < GOAL_MB, command("memory", args), data)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.split("\n")[0])
    p.add_argument("--lanes", type=int, default=8)
    p.add_argument("--tokens", type=int, default=100_000, help="tokens per lane")
    p.add_argument("--no-record", action="store_true", help=RECORD_HELP)
    p.add_argument("--time-scale", type=float, default=0.0001, help="emulator delay multiplier")
    p.add_argument("--child", action="store_true", help="(internal) run the race here and print JSON")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args.lanes, args.tokens, not args.no_record, args.time_scale)
    report(run(lanes=args.lanes, tokens=args.tokens, record=not args.no_record, scale=args.time_scale), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
