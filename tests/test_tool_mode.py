"""Tool mode: every built-in Thunderdome task is won by a sim lane in tool and
text mode over every protocol (the real CLI, the emulator over real HTTP);
malformed arguments run nothing and go back as a tool error; a call cut
mid-arguments runs nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from thunderdome.backends.base import ChatRequest
from thunderdome.core.events import FeedbackSent, StreamEnded, ToolCallDone, ToolCallStarted
from thunderdome.race.agent import FirstCorrectRace
from thunderdome.race.engine import Race
from thunderdome.race.tasks import builtin_tasks
from thunderdome.race.tools_mode import CUT_MID_ARGUMENTS
from thunderdome.core.specs import BackendSpec, Check, TaskSpec

TASKS = [t for t in builtin_tasks() if t.kind == "thunderdome"]
PROTOCOLS = ("openai", "ollama", "anthropic", "responses")


def backends_yaml(protocol: str, agent: str, lanes: int) -> str:
    lane = [("a", "instant")] + [(f"opp{i}", "slow-start") for i in range(1, lanes)]  # the opponents are slower
    return "backends:\n" + "".join(
        f"  - name: {n}\n    kind: sim\n    profile: {p}\n    protocol: {protocol}\n    agent: {agent}\n" for n, p in lane
    )


@pytest.mark.parametrize("agent", ["tools", "text"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_every_builtin_task_is_won_in_both_modes(tmp_path: Path, task: TaskSpec, protocol: str, agent: str) -> None:
    lanes = 3 if task.win_rule == "last_standing" else 1
    backends = tmp_path / "b.yaml"
    backends.write_text(backends_yaml(protocol, agent, lanes))
    out, rec = tmp_path / "out.json", tmp_path / "race.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends), "--task", task.name,
         "--headless", "--json", str(out), "--record", str(rec), "--time-scale", "0.05"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    winner = json.loads(out.read_text())["winner"]
    assert winner == "a"
    types = [json.loads(line).get("type") for line in rec.read_text().splitlines() if line.strip()]
    assert ("tool_call_done" in types) == (agent == "tools")


class ScriptedBackend:
    """A backend that streams given events (one list per turn)."""

    def __init__(self, turns: list[list[object]]) -> None:
        self.turns = turns
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest, clock):  # noqa: ANN001
        self.requests.append(request)
        for event in self.turns[len(self.requests) - 1]:
            yield event


def race_with(turns: list[list[object]]) -> tuple[Race, ScriptedBackend, list[object]]:
    task = TaskSpec(name="t", title="t", kind="thunderdome", win_rule="first_correct", user="make a file",
                    checks=(Check(kind="stdout_contains", value="never"),), max_turns=2, timeout=20)
    backend = ScriptedBackend(turns)
    spec = BackendSpec(name="a", kind="sim", profile="instant")
    events: list[object] = []
    race = Race(task, [(spec, backend)], FirstCorrectRace(isolation="rlimits"), [events.append])
    return race, backend, events


def call(arguments: str, ended: bool = True) -> list[object]:
    events: list[object] = [ToolCallStarted(t=0.0, lane="a", call_id="c1", name="bash")]
    if ended:
        events.append(ToolCallDone(t=0.0, lane="a", call_id="c1", name="bash", arguments=arguments))
    events.append(StreamEnded(t=0.0, lane="a", finish_reason="tool_calls" if ended else "length"))
    return events


def test_malformed_arguments_run_nothing_and_go_back_as_a_tool_error(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    bad = json.dumps({"cmd": f"touch {marker}"})
    race, backend, events = race_with([call(bad), [StreamEnded(t=0.0, lane="a", finish_reason="stop")]])
    asyncio.run(race.run())
    assert not marker.exists()
    tool = backend.requests[1].messages[-1]
    assert tool["role"] == "tool" and "malformed arguments" in tool["content"]
    sent = [e for e in events if isinstance(e, FeedbackSent)]
    assert [(e.turn, e.role, e.text) for e in sent] == [(1, "tool", tool["content"])]  # the tool result, as sent
    verdicts = [e for e in events if getattr(e, "type", "") == "verdict"]
    assert "malformed" in verdicts[0].detail and "stopped" in verdicts[1].detail


def test_a_call_cut_mid_arguments_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    race, backend, events = race_with([call(json.dumps({"command": f"touch {marker}"}), ended=False)] * 2)
    asyncio.run(race.run())
    assert not marker.exists()
    verdicts = [e for e in events if getattr(e, "type", "") == "verdict"]
    assert verdicts and all(CUT_MID_ARGUMENTS in v.detail for v in verdicts)


@pytest.mark.parametrize(("task_agent", "backend_agent", "tools"), [("text", None, False), ("text", "tools", True), (None, None, True)])
def test_the_tasks_agent_applies_to_lanes_whose_backend_does_not_say(
    tmp_path: Path, task_agent: str | None, backend_agent: str | None, tools: bool
) -> None:
    source = Path(next(t.source for t in TASKS if t.name == "hello-file")).read_text()
    task = tmp_path / "task.yaml"
    task.write_text(source + (f"agent: {task_agent}\n" if task_agent else ""))
    backends = tmp_path / "b.yaml"
    backends.write_text(
        "backends:\n  - name: a\n    kind: sim\n    profile: instant\n    protocol: anthropic\n"
        + (f"    agent: {backend_agent}\n" if backend_agent else "")
    )
    rec = tmp_path / "race.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(backends), "--task", str(task),
         "--headless", "--record", str(rec), "--time-scale", "0.05"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    types = [json.loads(line).get("type") for line in rec.read_text().splitlines() if line.strip()]
    assert "verdict" in types
    assert ("tool_call_done" in types) == tools
