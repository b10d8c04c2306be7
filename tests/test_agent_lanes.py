"""Agent lanes in a real race: a program in its bwrap sandbox, reaching only its gateway.

The agent here is a ``program: command`` lane running a probe (Python, in the
sandbox's own ``python3``) that tries every door it can think of and reports
what it found in the one request it can send: through its gateway to the
lane's backend, a recording server on the host's loopback that also sees the
key the gateway added. Real bwrap, real loopback HTTP, the real race.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap

import pytest

from _script_agent import AGENT as SCRIPTED_AGENT  # type: ignore[import-not-found]
from test_gateway import REAL, recorder  # noqa: F401  # type: ignore[import-not-found]  # the fixture
from thunderdome.agents.presets import AGENT_KEY, PRESETS
from thunderdome.core.events import (
    CommandExtracted,
    Event,
    LaneFailed,
    LaneFinished,
    Notice,
    RequestRelayed,
    RequestSent,
    StreamEnded,
    Verdict,
)
from thunderdome.race.runner import RaceSetupError, run_race
from thunderdome.race.tasks import load_task
from thunderdome.sandbox import detect_isolation
from thunderdome.core.specs import BackendSpec, Check, TaskSpec

PROBE = textwrap.dedent(
    """
    import json, os, socket, sys, urllib.request
    base, key, port, outside = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    found = {"env": dict(os.environ), "home": {}}
    found["models"] = urllib.request.urlopen(base + "/v1/models", timeout=10).status
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        found["port"] = "open"
    except OSError as exc:
        found["port"] = type(exc).__name__
    try:
        found["outside"] = open(outside).read()
    except OSError as exc:
        found["outside"] = type(exc).__name__
    try:
        open("/opt/thunderdome/door.py", "a").close()
        found["door"] = "writable"
    except OSError as exc:
        found["door"] = type(exc).__name__
    found["handover"] = os.path.exists("/opt/thunderdome/gateway.sock")
    found["procs"] = [open(f"/proc/{pid}/cmdline").read() for pid in os.listdir("/proc") if pid.isdigit()]
    for root, _, files in os.walk(os.environ["HOME"]):
        for name in files:
            found["home"][os.path.join(root, name)] = open(os.path.join(root, name)).read()
    body = {"model": "mine", "stream": True, "messages": [{"role": "user", "content": json.dumps(found)}]}
    request = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json", "authorization": "Bearer " + key})
    reply = urllib.request.urlopen(request, timeout=10).read().decode()
    open("done.txt", "w").write("ok" if "[DONE]" in reply else reply)
    """
)


def _task(**extra: object) -> TaskSpec:
    return TaskSpec(name="probe", title="probe", kind="thunderdome", user="Probe your walls.", win_rule="first_correct",
                    timeout=60, exec_timeout=10, setup_files={"probe.py": PROBE},
                    checks=(Check(kind="file_equals", path="done.txt", value="ok"),), **extra)  # type: ignore[arg-type]


@pytest.fixture
def bwrap() -> None:
    if detect_isolation().level != "bwrap":
        pytest.skip("agent lanes need bubblewrap (bwrap) working here")


async def test_an_agent_reaches_its_gateway_and_nothing_else_and_never_holds_the_real_key(
    bwrap, recorder, monkeypatch, tmp_path  # noqa: F811
):
    monkeypatch.setenv("TD_TEST_REAL_KEY", REAL)
    outside = tmp_path / "secret.txt"
    outside.write_text("host secret")
    outside.chmod(0o644)
    port = int(recorder.url.split(":")[2].split("/")[0])
    spec = BackendSpec(name="probe", kind="openai", url=recorder.url, model="lane-model", api_key_env="TD_TEST_REAL_KEY",
                       program="command", command=f"python3 probe.py {{base_url}} {{api_key}} {port} {outside}")
    events: list[Event] = []
    await run_race(_task(), [spec], [events.append])
    ends = [e for e in events if isinstance(e, (LaneFinished, LaneFailed))]
    assert isinstance(ends[0], LaneFinished), ends
    chats = [s for s in recorder.seen if s["method"] == "POST"]
    assert len(chats) == 1 and chats[0]["headers"]["authorization"] == f"Bearer {REAL}"
    assert chats[0]["body"]["model"] == "lane-model"
    found = json.loads(chats[0]["body"]["messages"][0]["content"])
    assert found["models"] == 200  # its gateway answers on its own loopback
    assert found["port"] == "ConnectionRefusedError"  # the host's loopback is not its loopback
    assert found["outside"] == "FileNotFoundError"  # nothing outside its work dir, HOME and door
    assert found["door"] in ("PermissionError", "OSError")  # it cannot replace the door script
    assert found["handover"] is False  # the door was handed over before it started, then removed
    assert not any("/opt/thunderdome/door.py" in cmdline.split("\0") for cmdline in found["procs"])  # none relays
    assert found["env"]["OPENAI_API_KEY"] == AGENT_KEY and found["env"]["HOME"] == "/home/sandbox"
    assert REAL not in json.dumps(found)  # not in its environment, its HOME or anything it could read
    assert [type(e) for e in events if getattr(e, "lane", "") == "probe" and isinstance(e, (RequestSent, Verdict))] == [
        RequestSent, Verdict]
    extra = [(e.method, e.path, e.status, e.chat) for e in events if isinstance(e, RequestRelayed)]
    assert extra == [("GET", "/v1/models", 200, False)]  # a fact of its own, not a turn
    note = next(e for e in events if isinstance(e, Notice) and e.message.startswith("gateway relayed"))
    assert "1 x GET /v1/models" in note.message and "1 x POST /v1/chat/completions (streamed)" in note.message


async def test_a_missing_agent_is_one_line_naming_its_install_command(bwrap, monkeypatch, tmp_path):
    monkeypatch.setenv("THUNDERDOME_AGENTS", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    spec = BackendSpec(name="cc", kind="sim", profile="instant", model="instant", protocol="anthropic", program="claude-code")
    events: list[Event] = []
    await run_race(_task(), [spec], [events.append], emulator="thread")
    failed = [e for e in events if isinstance(e, LaneFailed)]
    assert len(failed) == 1 and "\n" not in failed[0].reason
    assert failed[0].reason == f"claude not found: install it with `npm install -g {PRESETS['claude-code'].package}`"


async def test_a_scripted_agent_on_a_sim_lane_runs_the_command_the_emulator_called(bwrap):
    task = dataclasses.replace(load_task("hello-file"), setup_files={"agent.py": SCRIPTED_AGENT, "prompt.txt": "say hi"})
    spec = BackendSpec(name="script", kind="sim", profile="instant", model="instant", program="command",
                       command="python3 agent.py {base_url} {api_key}")
    events: list[Event] = []
    await run_race(task, [spec], [events.append], emulator="thread")
    finished = [e for e in events if isinstance(e, LaneFinished)]
    # the checks read files only: they ran when it asked again after its tool call, and passed then
    assert finished and finished[0].reason == "solved after the tools of turn 1: command stopped"
    commands = [e for e in events if isinstance(e, CommandExtracted)]
    assert [(c.turn, c.command) for c in commands] == [(1, "echo 'Hello, Thunderdome!' > greeting.txt")]
    assert [e.turn for e in events if isinstance(e, RequestSent)] == [1, 2]
    verdicts = [e for e in events if isinstance(e, Verdict)]
    times = [e.t for e in events if getattr(e, "lane", "") == "script"]
    assert times == sorted(times)  # a lane's clock never goes backwards: the recording replays whole
    second = next(e for e in events if isinstance(e, RequestSent) and e.turn == 2)
    assert len(verdicts) == 1 and verdicts[0].passed and verdicts[0].turn == 1
    assert second.t <= verdicts[0].t <= finished[0].t  # judged the moment it asked again
    assert not any(isinstance(e, StreamEnded) and e.turn == 2 for e in events)  # then stopped


async def test_agent_lanes_race_first_correct_tasks_only():
    spec = BackendSpec(name="cc", kind="sim", profile="instant", program="claude-code", protocol="anthropic")
    with pytest.raises(RaceSetupError, match="first_correct"):
        await run_race(load_task("long-essay"), [spec], [], emulator="thread")
