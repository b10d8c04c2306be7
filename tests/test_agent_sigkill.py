"""The ``sigkill`` race with agent lanes: each agent's own process is its lane's fighter.

The agents here are ``program: command`` lanes running a tiny Python agent
(``_script_agent.py``, the sandbox's own ``python3``, no npm): real bwrap, the
real arena (one PID namespace), real loopback HTTP through each lane's
gateway to the emulator, the real race and CLI.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _script_agent import inline_command  # type: ignore[import-not-found]
from test_gateway import REAL, recorder  # noqa: F401  # type: ignore[import-not-found]  # the fixture
from thunderdome.agents.presets import AGENT_KEY
from thunderdome.core.events import (
    LANE_END_TYPES,
    CommandExtracted,
    Event,
    FighterSpawned,
    LaneEliminated,
    LaneFailed,
    LaneFinished,
    RequestSent,
    WinnerDecided,
)
from thunderdome.race.runner import run_race
from thunderdome.race.tasks import load_task
from thunderdome.sandbox import Arena, SandboxLimits, detect_isolation
from thunderdome.sandbox.guest import ArenaGuest
from thunderdome.core.specs import BackendSpec


@pytest.fixture
def bwrap() -> None:
    if detect_isolation().level != "bwrap":
        pytest.skip("agent fighters need bubblewrap (bwrap) working here")


def _agent(name: str, profile: str) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", profile=profile, program="command", command=inline_command())


def _ends(events: list[Event]) -> dict[str, list[Event]]:
    ends: dict[str, list[Event]] = {}
    for event in events:
        if isinstance(event, LANE_END_TYPES):
            ends.setdefault(event.lane, []).append(event)
    return ends


async def test_a_guest_joins_the_arena_from_its_own_sandbox_and_its_whole_tree_dies_with_it(bwrap, tmp_path):
    async with Arena(limits=SandboxLimits(max_procs=256)) as arena:
        await arena.start(["plain"])
        (arena.workdir / "go.sh").write_text("(setsid sleep 600 &)\necho started > started\nexec sleep 600\n")
        guest = ArenaGuest(arena, "guest", arena.workdir, "/work/go.sh")
        try:
            pid = await guest.start()
            assert arena.pids == {"plain": arena.pids["plain"], "guest": pid} and pid != arena.pids["plain"]
            seen = await arena.run("plain", f"kill -0 {pid} && echo seen")  # one PID namespace: visible, killable
            assert seen.stdout.strip() == "seen"
            assert not (arena.workdir / "started").exists()  # held until released
            guest.release()
            for _ in range(500):
                if (arena.workdir / "started").exists() and len(guest.processes()) >= 2:
                    break
                await asyncio.sleep(0.01)
            assert len(guest.processes()) >= 2  # its program (the same PID) and the daemon it left
            assert (await arena.run("plain", f"kill -9 {pid}")).exit_code == 0
            assert await arena.wait_death(timeout=5) == "guest"
            assert arena.alive() == {"plain": True, "guest": False}
            await guest.kill()
            assert guest.processes() == []  # the daemon it reparented to the arena's init went too
        finally:
            await guest.kill()


async def test_two_agents_and_a_model_fight_and_the_last_one_standing_wins(bwrap):
    specs = [_agent("quick", "instant"), _agent("slow", "rtx4090-offload"),
             BackendSpec(name="model", kind="sim", profile="rtx4090-offload")]
    events: list[Event] = []
    await run_race(load_task("sigkill"), specs, [events.append], emulator="thread")
    pids = {e.lane: e.pid for e in events if isinstance(e, FighterSpawned)}
    assert set(pids) == {"quick", "slow", "model"} and len(set(pids.values())) == 3
    ends = _ends(events)
    assert all(len(ended) == 1 for ended in ends.values()) and set(ends) == set(pids)  # one ending event each
    winner = next(e.winner for e in events if isinstance(e, WinnerDecided))
    assert winner == "quick"  # instant replies: it fires seconds before the others can
    assert isinstance(ends["quick"][0], LaneFinished) and ends["quick"][0].reason == "killed every opponent"
    for loser in ("slow", "model"):
        end = ends[loser][0]
        assert isinstance(end, LaneEliminated) and end.reason == "killed by quick" and end.by == "quick"
    # its command as the gateway saw it: the kill the emulator called, with its opponents' PIDs
    commands = [e.command for e in events if isinstance(e, CommandExtracted) and e.lane == "quick"]
    assert commands == [f"kill -9 {pids['slow']} {pids['model']}"]
    for lane in pids:
        times = [e.t for e in events if getattr(e, "lane", None) == lane]
        assert times == sorted(times)


PROBE = r"""
import json, os, re, socket, sys, urllib.request
base, key, port, prompt = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
opponent = re.search(r"PIDs (\d+)", prompt).group(1)
found = {"pid": os.getpid(), "models": urllib.request.urlopen(base + "/v1/models", timeout=10).status,
         "key": key, "env": dict(os.environ)}
def attempt(name, action):
    try:
        action()
        found[name] = "open"
    except OSError as exc:
        found[name] = type(exc).__name__
attempt("host_port", lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close())
attempt("opponent_proc", lambda: os.stat(f"/proc/{opponent}"))
attempt("opponent_files", lambda: os.listdir(f"/proc/{opponent}/root/work"))
attempt("opponent_gateway", lambda: socket.socket(socket.AF_UNIX).connect(
    f"/proc/{opponent}/root/opt/thunderdome/gateway.sock"))
body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": json.dumps(found)}]}
request = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", "authorization": "Bearer " + key})
urllib.request.urlopen(request, timeout=10).read()
"""


async def test_what_an_agent_in_the_arena_can_reach(bwrap, recorder, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TD_TEST_REAL_KEY", REAL)
    port = int(recorder.url.split(":")[2].split("/")[0])
    probe = BackendSpec(name="probe", kind="openai", url=recorder.url, model="m", api_key_env="TD_TEST_REAL_KEY",
                        program="command",
                        command=f"exec python3 - {{base_url}} {{api_key}} {port} {{prompt}} <<'PY'\n{PROBE}\nPY\n")
    target = BackendSpec(name="target", kind="sim", profile="instant", program="command", command="exec sleep 600")
    events: list[Event] = []
    await run_race(load_task("sigkill"), [probe, target], [events.append], emulator="thread")
    chats = [s for s in recorder.seen if s["method"] == "POST"]
    assert len(chats) == 1 and chats[0]["headers"]["authorization"] == f"Bearer {REAL}"
    found = json.loads(chats[0]["body"]["messages"][0]["content"])
    pids = {e.lane: e.pid for e in events if isinstance(e, FighterSpawned)}
    assert found["pid"] == pids["probe"]  # the agent's own process is its fighter
    assert found["models"] == 200  # its own gateway, on its own loopback
    assert found["key"] == AGENT_KEY and REAL not in json.dumps(found)  # only the throwaway key
    assert found["host_port"] == "ConnectionRefusedError"  # not the host's loopback, nor another lane's
    assert found["opponent_proc"] == "open"  # one PID namespace: it sees (and may kill) its opponents
    # Sharing the arena's uid, it may also look into an opponent's sandbox
    # through /proc/PID/root (its files), but not its gateway: the door hands
    # its socket over and removes it, so none is left at DOOR/gateway.sock.
    assert found["opponent_files"] == "open"
    assert found["opponent_gateway"] == "FileNotFoundError"
    assert [type(e) for e in events if getattr(e, "lane", "") == "probe" and isinstance(e, RequestSent)] == [RequestSent]
    ends = _ends(events)
    assert isinstance(ends["probe"][0], LaneEliminated) and ends["probe"][0].reason.startswith("command exited")
    assert isinstance(ends["target"][0], LaneFinished) and ends["target"][0].reason == "last fighter standing"


async def test_a_missing_agent_fails_in_one_line_and_a_plain_fighter_stands_in(bwrap, monkeypatch, tmp_path):
    monkeypatch.setenv("THUNDERDOME_AGENTS", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    specs = [BackendSpec(name="cc", kind="sim", profile="instant", protocol="anthropic", program="claude-code"),
             BackendSpec(name="model", kind="sim", profile="instant")]
    events: list[Event] = []
    await run_race(load_task("sigkill"), specs, [events.append], emulator="thread")
    ends = _ends(events)
    assert isinstance(ends["cc"][0], LaneFailed) and ends["cc"][0].reason.startswith("claude not found: install it")
    assert isinstance(ends["model"][0], LaneFinished) and ends["model"][0].reason == "killed every opponent"
    pids = {e.lane: e.pid for e in events if isinstance(e, FighterSpawned)}
    assert [e.command for e in events if isinstance(e, CommandExtracted)] == [f"kill -9 {pids['cc']}"]


def test_the_cli_races_sigkill_with_an_agent_lane_and_the_recording_replays_the_same(bwrap, tmp_path: Path):
    (tmp_path / "backends.yaml").write_text(yaml.safe_dump({"backends": [
        {"name": "agent", "kind": "sim", "profile": "cloud", "program": "command", "command": inline_command()},
        {"name": "model", "kind": "sim", "profile": "rtx4090-offload"},
    ]}, sort_keys=False))

    def thunderdome(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "thunderdome", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)

    live = thunderdome("race", "--backends", "backends.yaml", "--task", "sigkill", "--headless",
                       "--json", "live.json", "--record", "race.jsonl")
    assert live.returncode == 0, live.stderr + live.stdout
    result = json.loads((tmp_path / "live.json").read_text())
    lanes = {lane["name"]: lane for lane in result["lanes"]}
    assert result["winner"] == "agent" and lanes["agent"]["status"] == "winner"
    assert lanes["model"]["status"] == "eliminated"
    recorded = [json.loads(line) for line in (tmp_path / "race.jsonl").read_text().splitlines()[1:]]
    eliminated = [e for e in recorded if e["type"] == "lane_eliminated"]
    assert [(e["lane"], e["reason"], e["by"]) for e in eliminated] == [("model", "killed by agent", "agent")]
    replay = thunderdome("replay", "race.jsonl", "--headless", "--json", "replay.json")
    assert replay.returncode == 0, replay.stderr
    again = json.loads((tmp_path / "replay.json").read_text())
    assert again["lanes"] == result["lanes"] and again["winner"] == result["winner"]


def test_sim_serve_answers_an_agent_whose_message_holds_the_sigkill_prompt():
    """An agent on ``thunderdome sim serve`` (no directive) sends the task's
    prompt inside its own framing: the reference still comes back, rendered
    with the PIDs that prompt names; a message that only quotes part of it does not."""
    from thunderdome.race.engine import build_messages
    from thunderdome.sim.task_replies import TaskReplies

    task = load_task("sigkill")
    replies = TaskReplies([(task.user, task.reference)])
    prompt = "\n\n".join(m["content"] for m in build_messages(task, {"pid": 4, "opponents": "2 3"}))
    framed = f"<task>\n{prompt}</task>\nWorking directory: /work"
    assert replies.answer(framed) == "```bash\nkill -9 2 3\n```"
    assert replies.answer(prompt) == "```bash\nkill -9 2 3\n```"
    assert replies.answer(framed.replace("Do not kill yourself.", "")) is None
    assert replies.answer(f"quoting: {task.user}".replace("{pid}", "4")) is None  # not from a line's start


async def test_an_agent_whose_command_kills_itself_is_out_and_its_opponent_stands(bwrap):
    # always wrong: the emulator calls the task's wrong answer, ``kill {pid}`` (the agent's own PID)
    wrong = BackendSpec(name="wrong", kind="sim", profile="instant", program="command", command=inline_command(),
                        options={"wrong_rate": 1})
    events: list[Event] = []
    await run_race(load_task("sigkill"), [wrong, BackendSpec(name="model", kind="sim", profile="rtx4090-offload",
                                                             options={"time_scale": 20})], [events.append],
                   emulator="thread")
    pids = {e.lane: e.pid for e in events if isinstance(e, FighterSpawned)}
    assert [e.command for e in events if isinstance(e, CommandExtracted)] == [f"kill {pids['wrong']}"]
    ends = _ends(events)
    assert isinstance(ends["wrong"][0], LaneEliminated) and ends["wrong"][0].reason == "killed by its own command"
    assert ends["wrong"][0].by is None
    assert isinstance(ends["model"][0], LaneFinished) and ends["model"][0].reason == "last fighter standing"
