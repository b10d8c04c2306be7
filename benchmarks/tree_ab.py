"""Interleaved A/B of one benchmark across two source trees (before and after a change), or two flags.

Invariant: both sides run the very same benchmark command (plus only the
side's ``--a-extra`` / ``--b-extra`` arguments), with the same interpreter, each run in a fresh process whose ``PYTHONPATH`` and working
directory are its tree; runs alternate A B, B A, A B, ... so drift in the
machine's load hits both sides alike; every figure is the median over runs
of one number a run reported (``p50_ms``, ``p99_ms``, ``cpu_us_per_token``),
shown for A and B side by side. It is indicative on a shared machine: the
medians of several short runs, not a substitute for a long run on a quiet one.

    git archive <rev> | tar -x -C /tmp/tree-a      # the "before" tree
    python -m benchmarks.tree_ab --a /tmp/tree-a --b . --runs 6 -- \\
        ttft_fidelity --lanes 16 --tps 1000 --trials 3 --variants engine
    python -m benchmarks.tree_ab --a . --b . --b-extra=--no-record -- ttft_fidelity ...   # what recording costs
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import Figure, add_common_args, log, report

BENCH = "tree_ab"
FIELDS = ("p50_ms", "p99_ms", "cpu_us_per_token")
"""What a figure's data may hold that is compared (the others are ignored)."""


def run_in(tree: Path, module: str, args: list[str]) -> list[dict[str, Any]]:
    """One run of ``benchmarks.<module> args`` in ``tree``; its figures."""
    fd, out = tempfile.mkstemp(prefix=f"tree-ab-{module}-", suffix=".json")
    os.close(fd)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    try:
        subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args, "--json", out], cwd=tree, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        return json.loads(Path(out).read_text(encoding="utf-8"))["figures"]
    finally:
        os.unlink(out)


def measure(trees: dict[str, Path], module: str, args: dict[str, list[str]],
            runs: int) -> dict[str, dict[str, dict[str, list[float]]]]:
    """``{figure name: {field: {side: [value per run]}}}`` over ``runs`` interleaved pairs
    (``args``: each side's benchmark arguments)."""
    got: dict[str, dict[str, dict[str, list[float]]]] = {}
    for k in range(runs):
        for side in ("a", "b") if k % 2 == 0 else ("b", "a"):
            log(f"[{BENCH}] run {k + 1}/{runs}, tree {side.upper()} ({trees[side]})")
            for figure in run_in(trees[side], module, args[side]):
                for name in FIELDS:
                    value = figure["data"].get(name)
                    if isinstance(value, (int, float)):
                        got.setdefault(figure["name"], {}).setdefault(name, {"a": [], "b": []})[side].append(value)
    return got


def figures_for(got: dict[str, dict[str, dict[str, list[float]]]], trees: dict[str, Path], cmd: str) -> list[Figure]:
    out = []
    for name, fields in got.items():
        for field, sides in fields.items():
            if not sides["a"] or not sides["b"]:
                continue
            a, b = statistics.median(sides["a"]), statistics.median(sides["b"])
            unit = "us" if field.endswith("_us_per_token") else "ms"
            value = f"A {a:.2f} {unit} / B {b:.2f} {unit} (B-A {b - a:+.2f}; medians of {len(sides['a'])} runs)"
            data = {"field": field, "a": sides["a"], "b": sides["b"], "a_median": a, "b_median": b,
                    "tree_a": str(trees["a"]), "tree_b": str(trees["b"])}
            out.append(Figure(BENCH, f"{name}, {field}", value, "-", None, cmd, data))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{BENCH}", description=__doc__.split("\n")[0],
                                usage="%(prog)s --a TREE --b TREE [--runs N] [--json OUT] -- MODULE [ARGS ...]")
    p.add_argument("--a", required=True, type=Path, help="tree A (a checkout: git archive REV | tar -x -C DIR)")
    p.add_argument("--b", required=True, type=Path, help="tree B")
    p.add_argument("--runs", type=int, default=6, help="runs per tree, interleaved (default 6)")
    p.add_argument("--a-extra", default="", help="arguments only side A's runs get (e.g. --a-extra=--no-record)")
    p.add_argument("--b-extra", default="", help="arguments only side B's runs get")
    add_common_args(p)
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        p.error("give the benchmark after --: -- MODULE [ARGS ...]")
    cut = argv.index("--")
    args = p.parse_args(argv[:cut])
    bench = argv[cut + 1:]
    if not bench:
        p.error("no benchmark module after --")
    trees = {"a": args.a.resolve(), "b": args.b.resolve()}
    for side, tree in trees.items():
        if not (tree / "benchmarks" / f"{bench[0]}.py").is_file():
            p.error(f"tree {side.upper()} ({tree}) has no benchmarks/{bench[0]}.py")
    extra = {"a": shlex.split(args.a_extra), "b": shlex.split(args.b_extra)}
    flags = [f"--{side}-extra={shlex.quote(args.a_extra if side == 'a' else args.b_extra)}" for side in ("a", "b") if extra[side]]
    cmd = " ".join(["python -m benchmarks.tree_ab --a", str(args.a), "--b", str(args.b), *flags, "--runs",
                    str(args.runs), "--", *bench])
    got = measure(trees, bench[0], {side: bench[1:] + extra[side] for side in ("a", "b")}, args.runs)
    report(figures_for(got, trees, cmd), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
