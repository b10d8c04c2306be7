"""``python -m benchmarks``: the quick set, every figure against its goal.

Invariant: each benchmark runs in a fresh child process (so one benchmark's
threads, imports and garbage never disturb another's timings) by calling
its module's ``run()`` there; its figures come back as JSON and are printed
in one final table — benchmark | figure | measured | goal | met? — followed
by the command that reproduces each figure. A benchmark that fails becomes a
failed row with its one-line reason; the others still run. Every race a
benchmark runs records to a temporary file, as real races do (each module's
``--no-record`` compares). The quick set stays under ten minutes on a 2-core
machine; ``--long`` runs every module's long variant.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.common import REPO_ROOT, Figure, figures_table, machine, machine_line

ORDER = (
    "ttft_fidelity",
    "tui_ttft_fidelity",
    "render_capacity",
    "emulator_accuracy",
    "startup",
    "sandbox_overhead",
    "memory",
    "replay_speed",
    "ranking_cost",
    "recorder_cost",
    "sse_framing",
    "flood_isolation",
    "gateway_overhead",
)
CHILD_TIMEOUT_S = 900


def available(name: str) -> bool:
    return importlib.util.find_spec(f"benchmarks.{name}") is not None


def child(name: str, out: str, long: bool) -> int:
    """Run one benchmark here (a child of the runner) and write its figures."""
    module = importlib.import_module(f"benchmarks.{name}")
    run = getattr(module, "run", None)
    if run is None:  # a module without run(): its own command line
        return subprocess.call([sys.executable, "-m", f"benchmarks.{name}", "--json", out], cwd=REPO_ROOT)
    import inspect

    kwargs = {"quick": not long} if "quick" in inspect.signature(run).parameters else {}
    try:
        figures = run(**kwargs)
    except Exception as exc:  # the runner shows this line; the traceback goes to stderr
        import traceback

        traceback.print_exc()
        print(f"{type(exc).__name__}: {exc}", flush=True)
        return 1
    Path(out).write_text(json.dumps([asdict(f) for f in figures]), encoding="utf-8")
    return 0


def run_one(name: str, long: bool) -> tuple[list[Figure], float]:
    fd, out = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".json")
    os.close(fd)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-m", "benchmarks", "--child", name, out] + (["--long"] if long else [])
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=None, text=True,
                              timeout=CHILD_TIMEOUT_S)
        elapsed = time.monotonic() - start
        text = Path(out).read_text(encoding="utf-8")
        if proc.returncode != 0 or not text.strip():
            reason = (proc.stdout or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            raise RuntimeError(reason[0])
        data = json.loads(text)
        rows = data["figures"] if isinstance(data, dict) else data
        return [Figure.from_dict(r) for r in rows], elapsed
    except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        elapsed = time.monotonic() - start
        return [Figure(name, "run", f"FAILED: {exc}", "-", False, f"python -m benchmarks.{name}")], elapsed
    finally:
        os.unlink(out)


def tui_goal(figures: list[Figure]) -> list[Figure]:
    """The issue's TUI goal, across two benchmarks: with the TUI running, the
    8-lane p99 first-token error is <= 2 ms and <= the bare HTTP loop's p99
    (measured by ttft_fidelity) + 1 ms. One row per TUI variant."""
    bare = next((f for f in figures if f.benchmark == "ttft_fidelity" and f.data.get("baseline")
                 and f.data.get("lanes") == 8), None)
    tuis = [f for f in figures if f.benchmark == "tui_ttft_fidelity" and str(f.data.get("variant", "")).startswith("tui")
            and "p99_ms" in f.data and f.data.get("lanes") == 8]
    if bare is None:
        return []
    base = bare.data["p99_ms"]
    out = []
    for tui in tuis:
        p99 = tui.data["p99_ms"]
        met = p99 <= 2.0 and p99 <= base + 1.0
        out.append(Figure("ttft (issue goal)", f"8x{tui.data.get('tps', 200):g} {tui.data['variant']} p99 vs goal",
                          f"p99 {p99:.2f} ms; bare {bare.data['variant']} loop p99 {base:.2f} ms", "<= 2 ms and <= bare+1 ms", met,
                          f"{tui.command}  +  {bare.command}", {"tui_p99_ms": p99, "bare_p99_ms": base}))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--only", help=f"comma list of benchmarks (default: all of {', '.join(ORDER)})")
    p.add_argument("--skip", help="comma list of benchmarks to leave out")
    p.add_argument("--long", action="store_true", help="every module's long variant (takes much longer)")
    p.add_argument("--json", metavar="OUT", help="also write every figure as JSON to OUT")
    p.add_argument("--child", nargs=2, metavar=("NAME", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1], args.long)
    names = [n for n in (args.only.split(",") if args.only else ORDER) if n]
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    skip = set(args.skip.split(",")) if args.skip else set()
    print(f"Thunderdome benchmarks — {machine_line()}", flush=True)
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    total = time.monotonic()
    for name in names:
        if name in skip:
            continue
        if not available(name):
            print(f"[{name}] not present, skipped", file=sys.stderr, flush=True)
            continue
        got, elapsed = run_one(name, args.long)
        timings[name] = elapsed
        figures += got
        print(f"[{name}] done in {elapsed:.1f} s", file=sys.stderr, flush=True)
    figures += tui_goal(figures)
    total_s = time.monotonic() - total
    print()
    print(figures_table(figures, commands=True))
    print(f"\n{len(figures)} figures, {sum(1 for f in figures if f.met is False)} goals missed; "
          f"total {total_s:.0f} s (" + ", ".join(f"{n} {t:.0f} s" for n, t in timings.items()) + ")")
    if args.json:
        payload: dict[str, Any] = {"machine": machine(), "seconds": timings, "figures": [asdict(f) for f in figures]}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
