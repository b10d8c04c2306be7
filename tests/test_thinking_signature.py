"""Anthropic thinking signatures go back with their thinking block on the next
turn, as the API requires for tool use with thinking. The emulator signs each
thinking block it streams and refuses, in Anthropic's words, a tool loop whose
last call comes back without its thinking, or thinking whose signature is not
its own. Proven over real loopback HTTP: a tool-mode race's turn 2, the
official anthropic SDK, and the request each protocol's client encodes."""

from __future__ import annotations

import json

import anthropic
import pytest

from _emulator import RawServer, chunked, collect, raw_spec  # type: ignore[import-not-found]
from thunderdome.backends import ChatRequest, make_backend
from thunderdome.core.events import ReasoningSigned, TokenDelta
from thunderdome.race.runner import run_race
from thunderdome.race.tasks import load_task
from thunderdome.race.tools_mode import BASH_TOOL, STOPPED
from thunderdome.sim import EmulatorServer
from thunderdome.sim.thinking import sign
from thunderdome.core.specs import BackendSpec

SCALE = 0.05
TOOLS = [{"name": "bash", "description": "Run a command", "input_schema": BASH_TOOL.parameters}]
ASK = [{"role": "user", "content": "Create greeting.txt"}]
SIM = {"thunderdome_sim": {"reply": "```bash\necho hi > greeting.txt\n```"}}


@pytest.fixture
async def emu():
    async with EmulatorServer(time_scale=SCALE) as server:
        yield server


async def test_turn_two_of_a_tool_race_carries_turn_ones_signed_thinking(emu) -> None:
    spec = BackendSpec(name="a", kind="sim", profile="thinker", model="thinker", protocol="anthropic",
                       options={"wrong_rate": 1.0})  # wrong on every turn: there is a turn 2
    events: list = []
    standings = await run_race(load_task("hello-file"), [spec], [events.append], sim_url=emu.url)
    lane = standings.lanes["a"]
    assert lane.status == "eliminated" and STOPPED in lane.reason  # turn 2 answered (its closing text), no 400
    turns = [r for r in emu.log if r["protocol"] == "anthropic"]
    assert [r["status"] for r in turns] == [200, 200]
    assert [r["signed_thinking"] for r in turns] == [0, 1]  # turn 2 sent turn 1's block back, verified
    signed = [e for e in events if isinstance(e, ReasoningSigned)]
    assert [e.turn for e in signed] == [1, 2]
    thought = "".join(e.text for e in events if isinstance(e, TokenDelta) and e.channel == "reasoning" and e.turn == 1)
    assert signed[0].signature == sign(thought) and not signed[0].redacted


async def test_the_official_sdk_round_trip_is_verified_and_a_missing_or_forged_block_refused(emu) -> None:
    client = anthropic.AsyncAnthropic(base_url=emu.url, api_key="x", max_retries=0)
    async with client.messages.stream(model="thinker", max_tokens=1000, messages=ASK, tools=TOOLS, extra_body=SIM) as stream:
        final = await stream.get_final_message()
    thinking, use = final.content
    assert thinking.type == "thinking" and thinking.signature == sign(thinking.thinking)

    def follow_up(*blocks: dict) -> list[dict]:
        result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "done"}]}
        return ASK + [{"role": "assistant", "content": list(blocks)}, result]

    kept = [b.model_dump() for b in final.content]
    closing = await client.messages.create(model="thinker", max_tokens=1000, messages=follow_up(*kept), tools=TOOLS, extra_body=SIM)
    assert closing.stop_reason == "end_turn" and emu.log[-1]["signed_thinking"] == 1

    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        await client.messages.create(model="thinker", max_tokens=1000, messages=follow_up(kept[1]), tools=TOOLS, extra_body=SIM)
    forged = dict(kept[0], thinking=kept[0]["thinking"] + " (edited)")
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature` in `thinking` block"):
        await client.messages.create(model="thinker", max_tokens=1000, messages=follow_up(forged, kept[1]), tools=TOOLS, extra_body=SIM)
    await client.close()


HISTORY = [
    {"role": "user", "content": "List the files."},
    {
        "role": "assistant",
        "content": "Listing.",
        "tool_calls": [{"id": "c0", "name": "bash", "arguments": '{"command": "ls"}'}],
        "signed_reasoning": [
            {"text": "Use ls.", "signature": "sig-1", "redacted": False},
            {"text": "", "signature": "opaque", "redacted": True},
        ],
    },
    {"role": "tool", "tool_call_id": "c0", "name": "bash", "content": "a.txt"},
]


@pytest.mark.parametrize("kind", ["anthropic", "openai", "ollama", "responses"])
async def test_each_client_sends_signed_reasoning_only_where_the_protocol_wants_it(kind: str) -> None:
    body = b'data: {"error": {"message": "enough"}}\n\n' if kind != "ollama" else b'{"error": "enough"}\n'
    async with RawServer(lambda seen: chunked([body])) as server:
        request = ChatRequest(messages=list(HISTORY), max_tokens=16, lane="lane", turn=2, tools=(BASH_TOOL,))
        await collect(make_backend(raw_spec(kind, server.url)), request)
    sent = json.loads(server.seen[0].body)
    text = json.dumps(sent)
    if kind == "anthropic":
        assert sent["messages"][1]["content"] == [
            {"type": "thinking", "thinking": "Use ls.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Listing."},
            {"type": "tool_use", "id": "c0", "name": "bash", "input": {"command": "ls"}},
        ]
    else:
        assert "signed_reasoning" not in text and "sig-1" not in text and "opaque" not in text
