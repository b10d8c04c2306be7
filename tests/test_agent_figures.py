"""An agent lane's figures: which program ran it, its start-up, turns, model
time vs tool time, time to first action and completion, in ``--json``, the
headless summary, every export and the TUI lane header.

A scripted agent (``program: command``, the scripted agent of
``test_agent_lanes``) that waits before its first request and after running
its tool, and sends a model-list probe and a ``stream: false`` chat beside its
turns, races a sim backend through its gateway, over real loopback HTTP, with
the real CLI and bwrap; its figures are checked against the recording's
events, reduced here by hand: start-up = its first request − its lane's start,
requests = its turns + every relayed request, model time = each ended turn's
request → end + the non-streamed chat's whole reply, tool time = a
tool-calling turn's end → the next request, less that chat (it ran there).
The recording replays to the live figures, in every export.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from _pilot import wait_for  # type: ignore[import-not-found]
from test_agent_lanes import SCRIPTED_AGENT  # type: ignore[import-not-found]
from thunderdome.core.metrics import Standings
from thunderdome.recording.replay import load_recording
from thunderdome.sandbox import detect_isolation
from thunderdome.tui import numbers
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen

ROOT = Path(__file__).resolve().parents[1]
STARTUP_PAUSE = 0.3
TOOL_PAUSE = 0.2
"""What the agent waits (seconds): its start-up and its tool can take no less."""


def _thunderdome(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "thunderdome", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def _by_hand(events: list[dict], lane: str) -> dict[str, float]:
    """The figures reduced from the recording's events of ``lane``."""
    mine = [e for e in events if e.get("lane") == lane]
    start = next(e["t"] for e in mine if e["type"] == "lane_started")
    sent = {e["turn"]: e["t"] for e in mine if e["type"] == "request_sent"}
    ended = {e["turn"]: e["t"] for e in mine if e["type"] == "stream_ended"}
    calling = {e["turn"] for e in mine if e["type"] == "tool_call_done"}
    relayed = [e for e in mine if e["type"] == "request_relayed"]
    chats = [e for e in relayed if e["chat"]]
    # the agent sends its chat after its tool, before it asks again: inside turn 1's tool gap
    assert all(ended[1] <= chat["t"] - chat["seconds"] and chat["t"] <= sent[2] for chat in chats)
    side = sum(chat["seconds"] for chat in chats)
    return {
        "startup_s": sent[1] - start,
        "model_s": sum(ended[turn] - sent[turn] for turn in ended) + side,
        "tool_s": sum(sent[turn + 1] - ended[turn] for turn in calling if turn in ended and turn + 1 in sent) - side,
        "turns": len(sent),
        "requests": len(sent) + len(relayed),
        "chats": len(chats),
    }


@pytest.fixture(scope="module")
def raced(tmp_path_factory) -> Path:
    if detect_isolation().level != "bwrap":
        pytest.skip("agent lanes need bubblewrap (bwrap) working here")
    tmp = tmp_path_factory.mktemp("agent-figures")
    task = (ROOT / "tasks" / "hello-file.yaml").read_text()
    setup = json.dumps({"agent.py": SCRIPTED_AGENT, "prompt.txt": "say hi"})
    (tmp / "task.yaml").write_text(task.replace("name: hello-file", "name: scripted") + f"setup_files: {setup}\n")
    command = f"sleep {STARTUP_PAUSE}; TOOL_PAUSE={TOOL_PAUSE} SIDE_REQUESTS=1 python3 agent.py {{base_url}} {{api_key}}"
    (tmp / "backends.yaml").write_text(
        "backends:\n"
        f"  - name: script\n    kind: sim\n    profile: instant\n    program: command\n    command: {json.dumps(command)}\n"
        "  - name: model\n    kind: sim\n    profile: instant\n    options: {wrong_rate: 1}\n"  # always wrong
    )
    live = _thunderdome("race", "--backends", "backends.yaml", "--task", "task.yaml", "--headless",
                        "--json", "live.json", "--record", "race.jsonl", cwd=tmp)
    assert live.returncode == 0, live.stderr + live.stdout
    (tmp / "summary.txt").write_text(live.stdout)
    return tmp


def test_an_agent_lanes_figures_are_its_events(raced):
    result = json.loads((raced / "live.json").read_text())
    lanes = {lane["name"]: lane for lane in result["lanes"]}
    script, model = lanes["script"], lanes["model"]
    assert result["winner"] == "script" and script["program"] == "command" and model["program"] is None
    events = [json.loads(line) for line in (raced / "race.jsonl").read_text().splitlines()[1:]]
    hand = _by_hand(events, "script")
    assert script["turns"] == hand["turns"] == 2  # the tool-calling turn, and the one after its tool ran
    assert script["requests"] == hand["requests"] == 4 and hand["chats"] == 1  # + the probe and the side chat
    assert model["requests"] == model["turns"]  # a plain lane's requests are its turns
    for name in ("startup_s", "model_s", "tool_s"):
        assert script[name] == pytest.approx(hand[name], abs=1e-3), name
    assert script["startup_s"] >= STARTUP_PAUSE and script["tool_s"] >= TOOL_PAUSE
    assert script["tta_s"] is not None and script["completion_s"] is not None
    # start-up, model time and tool time never overlap: together they fit in the completion
    assert script["startup_s"] + script["model_s"] + script["tool_s"] <= script["completion_s"] + 1e-3
    assert model["startup_s"] is None  # no program, no start-up of its own


def test_the_summary_and_every_export_name_the_program(raced):
    summary = (raced / "summary.txt").read_text()
    assert "⚒ script (command): start-up " in summary
    assert " · 2 turns of 4 requests · " in " ".join(summary.split())  # the console wraps the line
    rows = list(csv.DictReader(io.StringIO(_thunderdome("export", "race.jsonl", "--format", "csv", cwd=raced).stdout)))
    assert {row["lane"]: row["program"] for row in rows} == {"script": "command", "model": ""}
    assert float(next(row for row in rows if row["lane"] == "script")["startup_s"]) >= STARTUP_PAUSE
    md = _thunderdome("export", "race.jsonl", "--format", "md", cwd=raced).stdout
    rows_md = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("|")]
    cells = rows_md[0]
    assert "agent" in cells and "start-up s" in cells
    agents = {row[cells.index("lane")]: row[cells.index("agent")] for row in rows_md[2:]}
    assert agents == {"script": "command", "model": "—"}
    live = {lane["name"]: lane for lane in json.loads((raced / "live.json").read_text())["lanes"]}
    for row in rows:  # the CSV, replayed from the recording, says the live figures
        for name in ("requests", "turns", "model_s", "tool_s", "startup_s"):
            assert (float(row[name]) if row[name] else None) == live[row["lane"]][name], name
    md_rows = {row[cells.index("lane")]: row for row in rows_md[2:]}
    assert md_rows["script"][cells.index("requests")] == str(live["script"]["requests"])
    assert md_rows["script"][cells.index("model s")] == f"{live['script']['model_s']:.3f}"
    exported = json.loads(_thunderdome("export", "race.jsonl", "--format", "json", cwd=raced).stdout)
    assert [lane["program"] for lane in exported["lanes"]] == [lane["program"] for lane in live.values()]
    assert exported["lanes"] == list(live.values())  # the recording replays to identical figures


async def test_the_replayed_lane_header_shows_the_agents_start_up(raced):
    app = make_app(mode="replay", replay_path=raced / "race.jsonl", speed=4.0, output_dir=str(raced))
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RaceScreen) and app.screen.over, what="replay end")
        await pilot.pause()
        script, model = (app.screen.lanes[name].info.render().plain for name in ("script", "model"))
        await pilot.press("q")
    truth = Standings().apply_all(load_recording(raced / "race.jsonl").events)
    startup = next(s.startup_s for s in truth.ranked(truth.finished_t) if s.name == "script")
    assert f"start-up {numbers.seconds(startup).strip()}" in script and "start-up" not in model
