"""Real coding agents race through the real CLI (marker ``real_agents``).

Invariant: each preset's real agent (Claude Code, Codex CLI, OpenCode, at the
versions ``.ci/agents.sh`` pins), on a sim backend through its gateway, runs
the command the emulator calls and finishes the built-in ``hello-file`` task
(``first_correct``) against a plain model lane: a winner is called, the
agent's lane shows its turns (a tool-calling turn, then the one after the
tool ran), and the recording replays to the same figures. In the ``sigkill``
race (``last_standing``) each agent's own process is its fighter in the one
arena: it is told its opponent's PID, runs the ``kill -9`` its emulator
calls, and wins; the model lane is "killed by" it. Without the agents
installed the tier fails under CI (``CI=true``) and skips elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from thunderdome.agents.binaries import agents_dir, find_agent
from thunderdome.agents.presets import PRESETS
from thunderdome.sandbox import detect_isolation

pytestmark = pytest.mark.real_agents

AGENTS = ("claude-code", "codex", "opencode")


def _thunderdome(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "thunderdome", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def _need(program: str) -> None:
    preset = PRESETS[program]
    reason = ""
    if find_agent(preset) is None:
        reason = f"{preset.binary} not installed (looked in {agents_dir()}/bin and PATH): run .ci/agents.sh first"
    elif detect_isolation().level != "bwrap":
        reason = "agent lanes need bubblewrap (bwrap) working here"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.mark.parametrize("program", AGENTS)
def test_a_real_agent_races_a_sim_backend_through_its_gateway(program, tmp_path):
    _need(program)
    (tmp_path / "backends.yaml").write_text(
        f"backends:\n"
        f"  - name: {program}\n    kind: sim\n    profile: cloud\n    program: {program}\n"
        f"  - name: model\n    kind: sim\n    profile: cloud\n    options: {{wrong_rate: 1}}\n"  # always wrong: it cannot win
    )
    live = _thunderdome("race", "--backends", "backends.yaml", "--task", "hello-file", "--headless",
                        "--json", "live.json", "--record", "race.jsonl", cwd=tmp_path)
    assert live.returncode == 0, live.stderr + live.stdout
    result = json.loads((tmp_path / "live.json").read_text())
    lane = next(entry for entry in result["lanes"] if entry["name"] == program)
    assert lane["status"] == "winner" and result["winner"] == program, lane
    assert lane["verdict"] == "check passed" and lane["error"] is None
    assert lane["program"] == program and lane["startup_s"] > 0  # its launch to its first request
    assert lane["turns"] >= 2  # the turn that called the tool, the turn after it ran
    calling = [turn for turn in lane["per_turn"] if turn["tta_s"] is not None]
    assert calling and calling[0]["ttft_s"] > 0 and lane["tool_s"] is not None
    events = [json.loads(line) for line in (tmp_path / "race.jsonl").read_text().splitlines()[1:]]
    commands = [e["command"] for e in events if e["type"] == "command_extracted" and e["lane"] == program]
    assert commands == ["echo 'Hello, Thunderdome!' > greeting.txt"]
    replay = _thunderdome("replay", "race.jsonl", "--headless", "--json", "replay.json", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    again = json.loads((tmp_path / "replay.json").read_text())
    assert again["lanes"] == result["lanes"] and again["winner"] == result["winner"]


@pytest.mark.parametrize("program", AGENTS)
def test_a_real_agent_wins_the_sigkill_race_by_killing_its_opponent(program, tmp_path):
    """The original race: the agent is told its opponent's PID, its gateway's
    emulator calls ``kill -9 <PID>`` as its tool, the agent runs it in the one
    arena, and the model lane (slowed twenty-fold: it cannot fire first) dies."""
    _need(program)
    (tmp_path / "backends.yaml").write_text(
        f"backends:\n"
        f"  - name: {program}\n    kind: sim\n    profile: cloud\n    program: {program}\n"
        f"  - name: model\n    kind: sim\n    profile: rtx4090-offload\n    options: {{time_scale: 20}}\n"
    )
    live = _thunderdome("race", "--backends", "backends.yaml", "--task", "sigkill", "--headless",
                        "--json", "live.json", "--record", "race.jsonl", cwd=tmp_path)
    assert live.returncode == 0, live.stderr + live.stdout
    result = json.loads((tmp_path / "live.json").read_text())
    lanes = {lane["name"]: lane for lane in result["lanes"]}
    assert result["winner"] == program and lanes[program]["status"] == "winner", lanes
    assert lanes[program]["verdict"] == "killed every opponent" and lanes[program]["error"] is None
    assert lanes["model"]["status"] == "eliminated"
    events = [json.loads(line) for line in (tmp_path / "race.jsonl").read_text().splitlines()[1:]]
    pids = {e["lane"]: e["pid"] for e in events if e["type"] == "fighter_spawned"}
    eliminated = [(e["lane"], e["reason"], e["by"]) for e in events if e["type"] == "lane_eliminated"]
    assert eliminated == [("model", f"killed by {program}", program)]
    commands = [e["command"] for e in events if e["type"] == "command_extracted" and e["lane"] == program]
    assert commands == [f"kill -9 {pids['model']}"]
    ends = [e for e in events if e["type"] in ("lane_finished", "lane_eliminated", "lane_failed", "lane_stopped")]
    assert sorted(e["lane"] for e in ends) == sorted(pids)  # one ending event per lane
    replay = _thunderdome("replay", "race.jsonl", "--headless", "--json", "replay.json", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    again = json.loads((tmp_path / "replay.json").read_text())
    assert again["lanes"] == result["lanes"] and again["winner"] == result["winner"]
