"""Shared helpers of the benchmark suite: figures, tables, percentiles, the machine.

Invariant: a benchmark reports only ``Figure`` rows — a measured value with
its goal, whether the goal was met (None: no goal, informative) and the exact
command that reproduces it — so ``python -m benchmarks`` can print every
module's figures in one table and nothing is reported without its command.
Nothing here measures anything.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from thunderdome.core.metrics import percentile

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Figure:
    """One measured figure against its goal."""

    benchmark: str
    name: str
    value: str
    """The measured figure, formatted for people (with its unit)."""
    goal: str
    """The goal as text; ``-`` when the issue set none."""
    met: bool | None
    """True / False against the goal; None for informative figures."""
    command: str
    """The command that reproduces it (run from the repository root)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Raw numbers behind the figure (for the JSON output)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Figure":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def pct(values: Sequence[float], q: float) -> float:
    """``thunderdome.core.metrics.percentile``, NaN for an empty list."""
    value = percentile(list(values), q)
    return float("nan") if value is None else value


def summary_ms(values_s: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max / n of a list of seconds, in milliseconds."""
    ms = [v * 1000.0 for v in values_s]
    return {
        "n": len(ms),
        "p50_ms": pct(ms, 50),
        "p99_ms": pct(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "min_ms": min(ms) if ms else float("nan"),
    }


def met_text(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "n/a"}[met]


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table (monospace), first column left-aligned, others too."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for k, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def figures_table(figures: Sequence[Figure], *, commands: bool = False) -> str:
    """The figures as a table; ``commands``: each row names, in a last column
    ``cmd``, the numbered command below the table that reproduces it."""
    headers = ["benchmark", "figure", "measured", "goal", "met?"]
    rows = [[f.benchmark, f.name, f.value, f.goal, met_text(f.met)] for f in figures]
    if not commands:
        return table(headers, rows)
    seen: list[str] = []
    for f, row in zip(figures, rows):
        if f.command not in seen:
            seen.append(f.command)
        row.append(f"[{seen.index(f.command) + 1}]")
    text = table(headers + ["cmd"], rows)
    return text + "\n\nreproduce:\n" + "\n".join(f"  [{k}] {c}" for k, c in enumerate(seen, 1))


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    try:
        load = tuple(round(x, 2) for x in os.getloadavg())
    except OSError:  # pragma: no cover
        load = None
    return {
        "nproc": usable,
        "loadavg": load,
        "cpu": cpu or platform.processor() or "unknown",
        "ram_gib": ram_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line() -> str:
    m = machine()
    return (
        f"{m['date']} · nproc {m['nproc']} · {m['cpu']} · RAM {m['ram_gib']} GiB · "
        f"Python {m['python']} · {m['platform']} · load average {m['loadavg']}"
    )


def command(module: str, args: Sequence[str] = ()) -> str:
    """The shell command that reproduces a figure (from the repo root)."""
    return " ".join(["python -m", f"benchmarks.{module}", *args]).strip()


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON to OUT ('-' for stdout)")


def report(figures: Sequence[Figure], json_out: str | None = None) -> None:
    """Print the figures as a table (stdout) and optionally write JSON."""
    print(figures_table(figures, commands=True), flush=True)
    if json_out:
        payload = {"machine": machine(), "figures": [asdict(f) for f in figures]}
        text = json.dumps(payload, indent=2, default=_json_default) + "\n"
        if json_out == "-":
            sys.stdout.write(text)
        else:
            Path(json_out).write_text(text, encoding="utf-8")


def _json_default(obj: Any) -> Any:
    return str(obj)


def fmt_ms(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f} ms"


def log(message: str) -> None:
    """Progress lines go to stderr so stdout stays the table (or JSON)."""
    print(message, file=sys.stderr, flush=True)


__all__ = [
    "Figure",
    "REPO_ROOT",
    "add_common_args",
    "command",
    "figures_table",
    "fmt_ms",
    "log",
    "machine",
    "machine_line",
    "met_text",
    "pct",
    "report",
    "summary_ms",
    "table",
]
