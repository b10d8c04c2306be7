"""Narrow terminals stay readable (issue #11.15), through the real CLI.

At 60 and 80 columns no line is wider than the terminal, a reason is never
cut (it wraps, whole, and ``--json`` has it too), and a column that does not
fit is left out only with a caption naming it."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

STANDINGS_HEADERS = ("#", "lane", "model", "status", "TTFT s", "TTFA s", "e2e s", "tokens", "tok/s", "srv tok/s",
                     "ITL p50/p99 ms", "note")


def cli(args: list[str], columns: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, "-m", "thunderdome", *args], capture_output=True, text=True,
                            timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return result


def squeezed(text: str) -> str:
    return "".join(text.split())


def assert_readable(table: str, width: int, headers: tuple[str, ...]) -> None:
    """No line wider than ``width``; every header is in the table's head or
    named in the caption of columns left out (and only those are named)."""
    lines = table.splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(line for line in lines if len(line) > width)
    rule = next(i for i, line in enumerate(lines) if "───" in line)
    head = " ".join(lines[:rule]).split()
    caption = re.search(rf"not shown at {width} columns: (.*?) \(", " ".join(" ".join(lines[rule:]).split()))
    left_out = caption.group(1).split(", ") if caption else []
    for header in headers:
        shown = all(word in head for word in header.split())
        assert shown != (header in left_out), (header, head, left_out)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("columns", [60, 80])
def test_a_long_reason_wraps_whole_and_left_out_columns_are_named(tmp_path: Path, columns: int) -> None:
    backends = tmp_path / "b.yaml"
    backends.write_text(
        "backends:\n"
        "  - {name: quick, kind: sim, profile: instant}\n"
        "  - {name: broken-lane-with-a-long-name, kind: sim, profile: instant, options: {fault: http_500}}\n"
        f"  - {{name: gone, kind: openai, url: 'http://127.0.0.1:{closed_port()}/v1', model: some-model}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.json"
    result = cli(["race", "--backends", str(backends), "--task", "long-essay", "--headless", "--no-record",
                  "--max-tokens", "10", "--json", str(out)], columns)
    lanes = {lane["name"]: lane for lane in json.loads(out.read_text())["lanes"]}
    reasons = [lanes[name]["error"] for name in ("broken-lane-with-a-long-name", "gone")]
    assert len(reasons[0]) > 40 and re.fullmatch(r"connection refused at 127\.0\.0\.1:\d+", reasons[1]), reasons
    table = result.stdout
    assert_readable(table, columns, STANDINGS_HEADERS)
    for reason in reasons:  # whole, wrapped over lines
        assert squeezed(reason) in squeezed(table), (reason, table)
    assert "…" not in table


@pytest.mark.parametrize("columns", [60, 80])
def test_tasks_and_backends_fit_a_narrow_terminal(columns: int) -> None:
    tasks = cli(["tasks"], columns).stdout
    assert_readable(tasks, columns, ("name", "kind", "rule", "max tokens", "title"))
    from thunderdome.race.tasks import builtin_tasks

    for task in builtin_tasks():
        assert re.search(rf"^\s+{re.escape(task.name)}\s", tasks, re.M), task.name
        assert squeezed(task.title) in squeezed(tasks)
    backends = cli(["backends"], columns).stdout
    assert_readable(backends, columns, ("name", "kind", "model", "url / profile", "key"))
    assert "sim:rtx4090-offload" in backends


@pytest.mark.parametrize("columns", [60, 80])
def test_a_trials_summary_fits_a_narrow_terminal(tmp_path: Path, columns: int) -> None:
    backends = tmp_path / "b.yaml"
    backends.write_text("backends:\n  - {name: q, kind: sim, profile: instant}\n"
                        "  - {name: s, kind: sim, profile: fast-local}\n", encoding="utf-8")
    result = cli(["race", "--backends", str(backends), "--task", "long-essay", "--headless", "--trials", "2",
                  "--max-tokens", "10", "--time-scale", "0.1", "--no-record"], columns)
    trials = result.stdout[result.stdout.index("2 trials"):]
    assert_readable(trials, columns, ("lane", "wins", "TTFT s", "tok/s", "e2e s", "done s"))
    assert re.search(r"^\s+q\s+\d", trials, re.M) and re.search(r"^\s+s\s+\d", trials, re.M)
