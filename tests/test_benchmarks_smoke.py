"""The benchmarks still run: a broken benchmark fails here, not on the lead's quiet machine.

Invariant: every benchmark module imports and has its command line
(``main``); every module in the quick set has the ``run()`` the runner
calls; every benchmark that runs a race has ``--no-record`` (its races
record by default, as real races do); and the configurations that finish in
about a second really run end to end, through ``python -m benchmarks`` too,
whose table names for each figure the command that reproduces it.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import benchmarks
from benchmarks.__main__ import ORDER

REPO_ROOT = Path(__file__).resolve().parents[1]
HELPERS = {"__main__", "common", "gateway_agent", "recording", "ttft_clients"}
"""Modules of the package that are not benchmarks (no command line of their own)."""
RECORDING = ("ttft_fidelity", "tui_ttft_fidelity", "render_capacity", "memory", "startup", "flood_isolation",
             "gateway_overhead", "gateway_callbacks")
"""The benchmarks whose races record unless told ``--no-record``."""
BENCHMARKS = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name not in HELPERS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_imports_with_its_command_line(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(getattr(module, "main", None)), f"benchmarks.{name} has no main()"


@pytest.mark.parametrize("name", ORDER)
def test_the_quick_set_is_benchmarks_with_run(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(getattr(module, "run", None)), f"benchmarks.{name} is in the quick set without run()"


@pytest.mark.parametrize("name", RECORDING)
def test_racing_benchmarks_have_a_no_record_switch(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit):
        module.main(["--help"])
    assert "--no-record" in capsys.readouterr().out


def _run_main(name: str, args: list[str], tmp_path: Path) -> list[dict]:
    out = tmp_path / f"{name}.json"
    module = importlib.import_module(f"benchmarks.{name}")
    assert module.main([*args, "--json", str(out)]) == 0
    figures = json.loads(out.read_text(encoding="utf-8"))["figures"]
    assert figures, f"benchmarks.{name} reported no figure"
    return figures


@pytest.mark.parametrize(("name", "args"), [
    ("memory", ["--lanes", "2", "--tokens", "300"]),
    ("ranking_cost", ["--lanes", "2", "--tokens", "200", "--rankings", "2"]),
    ("sse_framing", ["--tokens", "100", "--repeats", "1"]),
    ("gateway_overhead", ["--rounds", "2"]),
    ("gateway_overhead", ["--rounds", "2", "--lanes", "2"]),
    ("gateway_overhead", ["--rounds", "2", "--lanes", "2", "--floor-process"]),
    ("gateway_overhead", ["--rounds", "2", "--lanes", "2", "--floor", "native"]),
    ("gateway_overhead", ["--rounds", "2", "--lanes", "2", "--floor", "threads"]),
    ("gateway_overhead", ["--rounds", "2", "--lanes", "2", "--floor", "processes"]),
    ("gateway_callbacks", ["--rounds", "2", "--lanes", "2"]),
])
def test_small_configurations_run_and_their_commands_reproduce_them(name: str, args: list[str], tmp_path: Path) -> None:
    figures = _run_main(name, args, tmp_path)
    for figure in figures:
        argv = shlex.split(figure["command"])
        assert argv[:3] == ["python", "-m", f"benchmarks.{name}"], figure["command"]
    again = _run_main(name, shlex.split(figures[0]["command"])[3:], tmp_path)
    assert [f["name"] for f in again] == [f["name"] for f in figures]


def test_memory_records_unless_told_not_to() -> None:
    from benchmarks import memory

    recorded = memory.run(lanes=2, tokens=300)[0]
    bare = memory.run(lanes=2, tokens=300, record=False)[0]
    assert recorded.data["recording_bytes"] > 0
    assert bare.data["recording_bytes"] == 0
    assert "--no-record" in bare.command and "--no-record" not in recorded.command


def test_the_runner_names_each_figures_command(tmp_path: Path) -> None:
    out = tmp_path / "all.json"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "ranking_cost", "--json", str(out)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text(encoding="utf-8"))["figures"]
    assert figures and all(not f["value"].startswith("FAILED") for f in figures)
    table, _, reproduce = proc.stdout.partition("\nreproduce:\n")
    commands = {line.split("] ", 1)[0].strip() + "]": line.split("] ", 1)[1]
                for line in reproduce.splitlines() if line.strip().startswith("[")}
    for figure in figures:
        row = next(line for line in table.splitlines() if figure["name"] in line)
        assert commands[row.split()[-1]] == figure["command"]


def test_render_cost_times_each_hand_driven_frame_and_its_paint() -> None:
    from benchmarks.render_capacity import measure_cost

    m = measure_cost(2, 1000.0, frames=10)
    assert m["frames"] == 9  # the first tenth is warm-up
    assert m["frame_cpu_p50_ms"] > 0 and m["update_cpu_p50_ms"] > 0  # every frame brought text, and it was painted


def test_gateway_callbacks_times_every_agent_request_and_leaves_asyncio_as_it_was() -> None:
    from asyncio import selector_events

    from benchmarks import gateway_callbacks, gateway_overhead
    from thunderdome.backends.poll_stamps import PollStampSelector

    before = (PollStampSelector.select, selector_events._SelectorSocketTransport._read_ready,
              selector_events._SelectorSocketTransport.write)
    figures = gateway_callbacks.run(rounds=2, lanes=2, record=False)
    requests = (2 + gateway_overhead.WARM) * 2 * 2  # rounds x lanes x the two ways through a gateway
    by_key = {key: figure.data[key] for figure in figures for key in figure.data}
    assert len(by_key["send_s"]) >= requests  # a send upstream a request (more if a kept-alive one was retried)
    assert len(by_key["cpu_s"]) >= requests and len(by_key["queued_s"]) == len(by_key["wall_s"]) == len(by_key["cpu_s"])
    assert all(v >= 0 for v in by_key["queued_s"] + by_key["cpu_s"])
    assert (PollStampSelector.select, selector_events._SelectorSocketTransport._read_ready,
            selector_events._SelectorSocketTransport.write) == before
