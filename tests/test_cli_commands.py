"""Every subcommand and flag that ``--help`` lists, through the real entry
point (``python -m thunderdome`` in a subprocess), as a user meets it.

Invariant: ``COVERED`` names a test for every option of every subcommand the
parser builds; ``test_every_flag_in_help_has_a_test`` fails when a flag is
added without one.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thunderdome.cli import build_parser

FAST = ("--time-scale", "0.05", "--seed", "3")

COVERED: dict[str, set[str]] = {
    "": {"--help", "--version"},
    "demo": {"--help", "--task", "--headless", "--json", "--record", "--no-record", "--max-tokens", "--time-scale", "--seed",
             "--big"},  # --big, and --trials in the TUI: tests/test_cli_big.py
    "race": {"--help", "--backends", "--task", "--trials", "--headless", "--json", "--record", "--no-record",
             "--max-tokens", "--time-scale", "--seed", "--big"},
    "replay": {"--help", "file", "--speed", "--headless", "--json", "--big"},
    "tasks": {"--help"},
    "backends": {"--help", "--backends", "--discover"},
    "sim": {"--help"},
    "sim serve": {"--help", "--host", "--port", "--time-scale"},
    "sandbox": {"--help", "rest"},
    "export": {"--help", "file", "--format", "--output"},
}


def run_cli(*args: str, timeout: float = 180, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "thunderdome", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


def _options(parser: argparse.ArgumentParser, prefix: str, found: dict[str, set[str]]) -> None:
    names = found.setdefault(prefix, set())
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                _options(sub, f"{prefix} {name}".strip(), found)
        elif action.option_strings:
            names.add(max(action.option_strings, key=len))
        else:
            names.add(action.dest)


def test_every_flag_in_help_has_a_test():
    found: dict[str, set[str]] = {}
    _options(build_parser(), "", found)
    assert found == COVERED


@pytest.mark.parametrize("command", [c for c in COVERED if c])
def test_help_of_each_subcommand(command):
    result = run_cli(*command.split(), "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: thunderdome" in result.stdout


def test_version():
    result = run_cli("--version", timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("thunderdome ")


def test_demo_one_task_with_every_output_flag(tmp_path):
    out, rec = tmp_path / "demo.json", tmp_path / "demo.jsonl"
    # sigkill at the demo's own pace: squeezed 20x, the three kills land too close to call a winner reliably
    result = run_cli("demo", "--task", "sigkill", "--headless", "--json", str(out), "--record", str(rec),
                     "--max-tokens", "80", "--time-scale", "1", "--seed", "3")
    assert result.returncode == 0, result.stderr
    race = json.loads(out.read_text())
    assert race["race"]["task"] == "sigkill" and race["winner"]
    assert rec.read_text().startswith('{"format":"thunderdome-recording"')


def test_demo_no_record_writes_no_recording(tmp_path):
    result = run_cli("demo", "--task", "hello-file", "--headless", "--no-record", "--json", "-", *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["race"]["task"] == "hello-file"
    assert not list(tmp_path.rglob("*.jsonl"))


@pytest.fixture
def backends_file(tmp_path: Path) -> Path:
    path = tmp_path / "backends.yaml"
    path.write_text(
        "backends:\n"
        "  - {name: quick, kind: sim, profile: instant}\n"
        "  - {name: steady, kind: sim, profile: fast-local, protocol: anthropic}\n",
        encoding="utf-8",
    )
    return path


def test_race_trials_record_and_json(tmp_path, backends_file):
    out, rec = tmp_path / "race.json", tmp_path / "race.jsonl"
    result = run_cli("race", "--backends", str(backends_file), "--task", "long-essay", "--trials", "2", "--headless",
                     "--json", str(out), "--record", str(rec), "--max-tokens", "40", *FAST)
    assert result.returncode == 0, result.stderr
    payload = json.loads(out.read_text())
    assert len(payload["races"]) == 2 and {r["winner"] for r in payload["races"]} <= {"quick", "steady"}
    assert all(lane["tokens"] <= 40 for race in payload["races"] for lane in race["lanes"])
    assert len(list(tmp_path.glob("race*.jsonl"))) == 2


def test_race_no_record(tmp_path, backends_file):
    result = run_cli("race", "--backends", str(backends_file), "--task", "hello-file", "--headless", "--no-record",
                     *FAST, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.rglob("*.jsonl"))


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rec")
    backends = folder / "b.yaml"
    backends.write_text("backends:\n  - {name: quick, kind: sim, profile: instant}\n", encoding="utf-8")
    path = folder / "race.jsonl"
    result = run_cli("race", "--backends", str(backends), "--task", "long-essay", "--headless", "--record", str(path),
                     "--max-tokens", "30", "--json", str(folder / "live.json"), *FAST)
    assert result.returncode == 0, result.stderr
    return path


def test_replay_headless_json_matches_the_live_race(recording, tmp_path):
    out = tmp_path / "replayed.json"
    result = run_cli("replay", str(recording), "--headless", "--speed", "4", "--json", str(out))
    assert result.returncode == 0, result.stderr
    live = json.loads((recording.parent / "live.json").read_text())
    assert json.loads(out.read_text())["lanes"] == live["lanes"]


@pytest.mark.parametrize("fmt", ["json", "csv", "md"])
def test_export_each_format_to_stdout_and_file(recording, tmp_path, fmt):
    to_stdout = run_cli("export", str(recording), "--format", fmt, timeout=60)
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert "quick" in to_stdout.stdout
    target = tmp_path / f"out.{fmt}"
    to_file = run_cli("export", str(recording), "--format", fmt, "--output", str(target), timeout=60)
    assert to_file.returncode == 0 and to_file.stdout == ""
    assert target.read_text() == to_stdout.stdout


def test_tasks_lists_the_built_in_tasks():
    result = run_cli("tasks", timeout=60)
    assert result.returncode == 0, result.stderr
    for name in ("sigkill", "long-essay", "hello-file"):
        assert name in result.stdout


def test_backends_lists_a_file_and_the_sim_profiles(backends_file):
    result = run_cli("backends", "--backends", str(backends_file), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "quick" in result.stdout and "sim:dgx-spark" in result.stdout


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "thunderdome", "sim", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while _free(port):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the emulator never listened"
        time.sleep(0.05)


def test_backends_discover_finds_a_server_on_a_default_port(tmp_path):
    port = next((p for p in (30000, 1337, 9931) if _free(p)), None)
    if port is None:
        pytest.skip("every candidate default port is taken on this machine")
    server = _serve("--port", str(port))
    try:
        _wait_for(port, server)
        result = run_cli("backends", "--discover", cwd=tmp_path, timeout=60)
    finally:
        server.terminate()
        server.communicate(timeout=10)
    assert result.returncode == 0, result.stderr
    assert f"found openai at http://127.0.0.1:{port}/v1" in result.stdout


def test_sim_serve_host_port_time_scale():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = _serve("--host", "127.0.0.1", "--port", str(port), "--time-scale", "0.5")
    try:
        _wait_for(port, server)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v1/models")
        response = conn.getresponse()
        models = json.loads(response.read())
    finally:
        server.terminate()
        server.communicate(timeout=10)
    assert response.status == 200
    assert "dgx-spark" in {m["id"] for m in models["data"]}


def test_sandbox_runs_a_command_and_prints_json():
    result = run_cli("sandbox", "--", "echo hi; exit 3", timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["exit_code"] == 3 and out["stdout"] == "hi\n"


def test_replay_headless_with_speed_plays_in_time_then_prints_the_results():
    """``--speed`` is honoured headless (#14.7): the moments come on stderr as
    the replay reaches them, no sooner than race time / speed; without
    ``--speed`` the results come at once, with no moment lines."""
    recording = Path(__file__).resolve().parent / "fixtures" / "long-sim.jsonl"
    last_t = json.loads(recording.read_text(encoding="utf-8").splitlines()[-1])["t"]
    speed = 0.5
    started = time.monotonic()
    timed = run_cli("replay", str(recording), "--headless", "--speed", str(speed))
    took = time.monotonic() - started
    assert timed.returncode == 0, timed.stderr
    assert took >= last_t / speed  # a lower bound only: it cannot have played faster than asked
    moments = [line for line in timed.stderr.splitlines() if " first token (TTFT " in line]
    assert len(moments) >= 2, timed.stderr
    assert "🏆 winner: fast" in timed.stdout and "🏆" not in timed.stderr
    at_once = run_cli("replay", str(recording), "--headless")
    assert at_once.returncode == 0 and " first token (TTFT " not in at_once.stderr, at_once.stderr
    assert "winner: fast" in at_once.stdout
