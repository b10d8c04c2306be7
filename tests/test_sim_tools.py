"""Native tool calls from the emulator: which tool, which call, and the wire shape per protocol.

Over real loopback HTTP (the emulator on the test's loop), plus the pure choice
functions (``sim.tools``, ``sim.conversation``) on hand-made request bodies.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from thunderdome.race.extract import extract_command
from thunderdome.sim import EmulatorServer, get_profile, tokenize
from thunderdome.sim import conversation
from thunderdome.sim.tools import CLOSING_TEXT, ShellTool, ToolCallReply, call_for, choose_answer, find_shell_tool
from thunderdome.sim.thinking import sign

SCALE = 0.02
COMMAND = "kill -9 4242 4343"
REFERENCE = f"Here you go:\n```bash\n#!/bin/bash\n{COMMAND}\n```\n"
WRONG = "```bash\necho missed\n```"
ARGS = json.dumps({"command": COMMAND})
STRING_SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
ARGV_SCHEMA = {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}}
PATHS = {
    "openai": "/v1/chat/completions",
    "ollama": "/api/chat",
    "anthropic": "/v1/messages",
    "responses": "/v1/responses",
}


def offered(protocol: str, name: str = "bash", schema: dict = STRING_SCHEMA) -> list[dict]:
    """One tool, spelled as ``protocol`` spells it."""
    if protocol == "anthropic":
        return [{"name": name, "description": "run", "input_schema": schema}]
    if protocol == "responses":
        return [{"type": "function", "name": name, "parameters": schema}]
    return [{"type": "function", "function": {"name": name, "parameters": schema}}]


def body_for(protocol: str, *, tools: list | None, after_tool: bool = False, **extra) -> dict:
    """A request with one user turn (and, with ``after_tool``, a call and its result)."""
    body: dict = {"model": "fast-local", "stream": True, **extra}
    user = "Finish the fight"
    if protocol == "responses":
        items: list = [{"role": "user", "content": [{"type": "input_text", "text": user}]}]
        if after_tool:
            items += [
                {"type": "function_call", "call_id": "call_1", "name": "bash", "arguments": ARGS},
                {"type": "function_call_output", "call_id": "call_1", "output": "killed"},
            ]
        body["input"] = items
    elif protocol == "anthropic":
        msgs: list = [{"role": "user", "content": user}]
        if after_tool:
            msgs += [
                {"role": "assistant", "content": [  # a thinking model's call goes back with its signed thinking
                    {"type": "thinking", "thinking": "Think first.", "signature": sign("Think first.")},
                    {"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": COMMAND}},
                ]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "killed"}]},
            ]
        body.update(messages=msgs, max_tokens=500)
    else:
        msgs = [{"role": "user", "content": user}]
        if after_tool:
            call = {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": ARGS}}
            msgs += [{"role": "assistant", "content": None, "tool_calls": [call]}, {"role": "tool", "tool_call_id": "call_1", "content": "killed"}]
        body["messages"] = msgs
    if tools is not None:
        body["tools"] = tools
    body.setdefault("thunderdome_sim", {"reply": REFERENCE, "reasoning": "Think first."})
    return body


@pytest.fixture
async def emu():
    async with EmulatorServer(time_scale=SCALE) as server:
        yield server


@pytest.fixture
async def client(emu):
    async with httpx.AsyncClient(base_url=emu.url, timeout=30) as c:
        yield c


async def post_chunks(client: httpx.AsyncClient, path: str, body: dict) -> tuple[httpx.Response, list[bytes]]:
    """The response and its body as the HTTP chunks the server wrote."""
    async with client.stream("POST", path, json=body) as resp:
        chunks = [c async for c in resp.aiter_raw()]
    return resp, chunks


def sse_data(chunks: list[bytes]) -> list[dict]:
    """The JSON of each ``data:`` line (``[DONE]`` left out); each is compact,
    exactly as ``json.dumps`` writes it (the per-token templates cut no corner)."""
    out = []
    for line in b"".join(chunks).decode().split("\n"):
        if line.startswith("data: ") and line != "data: [DONE]":
            obj = json.loads(line[6:])
            assert json.dumps(obj, ensure_ascii=False, separators=(",", ":")) == line[6:]
            out.append(obj)
    return out


# --- which tool, which call (pure) ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", PATHS)
@pytest.mark.parametrize("name", ["bash", "shell", "Bash", "execute_command", "exec_command"])
def test_every_shell_name_is_found_in_every_protocol(protocol, name):
    tools = offered(protocol, "read_file", {"type": "object", "properties": {"path": {"type": "string"}}})
    tools += offered(protocol, name)
    assert find_shell_tool(protocol, tools) == ShellTool(name, argv=False)
    assert find_shell_tool(protocol, offered(protocol, name, ARGV_SCHEMA)) == ShellTool(name, argv=True)


def test_codex_exec_command_takes_its_command_in_cmd():
    schema = {"type": "object", "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}}}
    tool = find_shell_tool("responses", offered("responses", "write_stdin") + offered("responses", "exec_command", schema))
    assert tool == ShellTool("exec_command", argv=False, field="cmd")
    call = call_for(tool, "```bash\necho hi > a.txt\n```")
    assert call is not None and json.loads(call.arguments) == {"cmd": "echo hi > a.txt"}


def test_a_known_name_beats_another_tool_with_a_command_field_and_schema_matters():
    tools = offered("openai", "run_in_terminal") + offered("openai", "shell")
    assert find_shell_tool("openai", tools).name == "shell"
    assert find_shell_tool("openai", offered("openai", "run_in_terminal")).name == "run_in_terminal"
    no_command = {"type": "object", "properties": {"script": {"type": "string"}}}
    assert find_shell_tool("openai", offered("openai", "bash", no_command)) is None
    numeric = {"type": "object", "properties": {"command": {"type": "integer"}}}
    assert find_shell_tool("responses", offered("responses", "bash", numeric)) is None
    assert find_shell_tool("openai", None) is None and find_shell_tool("openai", ["x", 3]) is None
    assert find_shell_tool("anthropic", [{"type": "bash_20250124", "name": "bash"}]) == ShellTool("bash")
    # a tool spelled for another protocol is not found
    assert find_shell_tool("responses", offered("openai")) is None


def test_the_call_holds_the_command_the_race_would_extract():
    call = call_for(ShellTool("bash"), REFERENCE)
    assert call is not None and call.input == {"command": COMMAND} == json.loads(call.arguments)
    assert extract_command(REFERENCE) == COMMAND
    argv = call_for(ShellTool("shell", argv=True), REFERENCE)
    assert json.loads(argv.arguments) == {"command": ["bash", "-lc", COMMAND]}
    assert call_for(ShellTool("bash"), "I would rather not.") is None
    assert call_for(ShellTool("bash"), None) is None


def choice(**kw):
    base = dict(
        reply=REFERENCE, tokens=None, reasoning="", wrong_reply=None, wrong_rate=0.0, seed=0,
        profile_reply_tokens=50, profile_reasoning_tokens=0, max_tokens=None,
    )
    return {**base, **kw}


def drain(reply) -> tuple[str, list[str]]:
    toks = list(reply.tokens())
    return "".join(t for t, _, _ in toks), [c for _, c, _ in toks]


def test_choose_answer_tool_call_closing_text_and_plain_reply():
    tool = ShellTool("bash")
    reply = choose_answer(shell_tool=tool, after_tool_result=False, table_reply=None, **choice())
    assert isinstance(reply, ToolCallReply)
    text, channels = drain(reply)
    assert text == ARGS and set(channels) == {"tool"} and reply.finish_reason == "tool_calls"
    closing = choose_answer(shell_tool=tool, after_tool_result=True, table_reply=None, **choice())
    assert drain(closing) == (CLOSING_TEXT, ["answer"] * len(tokenize(CLOSING_TEXT)))
    assert closing.finish_reason == "stop"
    plain = choose_answer(shell_tool=None, after_tool_result=False, table_reply=None, **choice())
    assert drain(plain)[0] == REFERENCE
    # generated long text holds no command: the lane writes text even when offered tools
    essay = choose_answer(shell_tool=tool, after_tool_result=False, table_reply=None, **choice(reply=None, tokens=30))
    assert not isinstance(essay, ToolCallReply) and len(drain(essay)[1]) == 30
    # the server's reply table is a reference too
    table = choose_answer(shell_tool=tool, after_tool_result=False, table_reply=REFERENCE, **choice(reply=None))
    assert isinstance(table, ToolCallReply) and table.call.input == {"command": COMMAND}


def test_wrong_answers_call_the_wrong_command_with_the_seeded_draw():
    tool = ShellTool("bash")
    seen = {}
    for seed in range(40):
        reply = choose_answer(
            shell_tool=tool, after_tool_result=False, table_reply=None,
            **choice(wrong_reply=WRONG, wrong_rate=0.5, seed=seed),
        )
        text_reply = choose_answer(
            shell_tool=None, after_tool_result=False, table_reply=None,
            **choice(wrong_reply=WRONG, wrong_rate=0.5, seed=seed),
        )
        assert reply.wrong == text_reply.wrong  # the same draw as in text mode
        seen[reply.call.input["command"]] = reply.wrong
    assert seen == {COMMAND: False, "echo missed": True}


def test_max_tokens_cuts_the_arguments_with_length():
    reply = choose_answer(shell_tool=ShellTool("bash"), after_tool_result=False, table_reply=None, **choice(max_tokens=4))
    text, channels = drain(reply)
    assert text == "".join(tokenize(ARGS)[:4]) and reply.finish_reason == "length"


@pytest.mark.parametrize("protocol", PATHS)
def test_conversation_sees_the_tool_result_and_the_last_real_user_turn(protocol):
    fresh = conversation.read(protocol, body_for(protocol, tools=offered(protocol)))
    assert not fresh.after_tool_result and fresh.last_user == "Finish the fight"
    assert fresh.shell_tool == ShellTool("bash")
    after = conversation.read(protocol, body_for(protocol, tools=offered(protocol), after_tool=True))
    assert after.after_tool_result and after.last_user == "Finish the fight"
    assert after.prompt_tokens > fresh.prompt_tokens


def test_a_responses_input_that_is_neither_string_nor_items_is_refused():
    assert conversation.read("responses", {"input": "hi", "instructions": "Be terse."}).last_user == "hi"
    for bad in (3, {"role": "user"}, ["hi"]):
        with pytest.raises(ValueError, match="input"):
            conversation.read("responses", {"input": bad})


# --- the wire, per protocol ------------------------------------------------------------------------


async def test_openai_stream_opens_the_call_then_streams_its_arguments_one_token_per_chunk(emu, client):
    body = body_for("openai", tools=offered("openai"), stream_options={"include_usage": True})
    resp, chunks = await post_chunks(client, PATHS["openai"], body)
    frames = sse_data(chunks)
    deltas = [f["choices"][0]["delta"] for f in frames if f.get("choices")]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"
    assert calls[0]["function"] == {"name": "bash", "arguments": ""}
    assert all("id" not in c and "name" not in c["function"] for c in calls[1:])
    assert "".join(c["function"]["arguments"] for c in calls) == ARGS
    assert not any(d.get("content") for d in deltas)  # no text besides the call
    assert [f["choices"][0]["finish_reason"] for f in frames if f.get("choices")][-1] == "tool_calls"
    n_args, n_think = len(tokenize(ARGS)), len(tokenize("Think first."))
    assert frames[-1]["usage"]["completion_tokens"] == n_args + n_think
    # paced like text: one token per frame, each on the schedule (the call's head rides with the first)
    assert len(calls) == n_args + 1
    record = emu.log[-1]
    assert record["tool"] == "bash" and record["finish_reason"] == "tool_calls"
    assert record["tokens"] == n_args + n_think


async def test_ollama_sends_the_whole_call_in_one_line_once_its_arguments_are_generated(emu, client):
    resp, chunks = await post_chunks(client, PATHS["ollama"], body_for("ollama", tools=offered("ollama", "shell", ARGV_SCHEMA)))
    lines = [json.loads(line) for line in b"".join(chunks).decode().splitlines() if line]
    with_calls = [line for line in lines if line["message"].get("tool_calls")]
    assert len(with_calls) == 1 and not with_calls[0]["done"]
    call = with_calls[0]["message"]["tool_calls"][0]["function"]
    assert call == {"name": "shell", "arguments": {"command": ["bash", "-lc", COMMAND]}}
    final = lines[-1]
    assert final["done"] and final["done_reason"] == "stop"
    argv_args = json.dumps({"command": ["bash", "-lc", COMMAND]})
    assert final["eval_count"] == len(tokenize(argv_args)) + len(tokenize("Think first."))
    assert emu.log[-1]["tokens"] == final["eval_count"]


async def test_anthropic_opens_a_tool_use_block_after_the_signed_thinking_block(client):
    resp, chunks = await post_chunks(client, PATHS["anthropic"], body_for("anthropic", tools=offered("anthropic")))
    events = sse_data(chunks)
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["thinking", "tool_use"]
    block = starts[1]["content_block"]
    assert block["id"].startswith("toolu_") and block["name"] == "bash" and block["input"] == {}
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    kinds = [d["type"] for d in deltas]
    assert kinds.index("signature_delta") < kinds.index("input_json_delta")
    assert "".join(d["partial_json"] for d in deltas if d["type"] == "input_json_delta") == ARGS
    done = next(e for e in events if e["type"] == "message_delta")
    assert done["delta"]["stop_reason"] == "tool_use"
    assert done["usage"]["output_tokens"] == len(tokenize(ARGS)) + len(tokenize("Think first."))


@pytest.mark.parametrize("protocol", PATHS)
async def test_after_a_tool_result_every_protocol_closes_with_text_and_a_normal_stop(emu, client, protocol):
    body = body_for(protocol, tools=offered(protocol), after_tool=True, stream=False)
    resp = await client.post(PATHS[protocol], json=body)
    obj = resp.json()
    if protocol == "openai":
        choice = obj["choices"][0]
        assert choice["message"]["content"] == CLOSING_TEXT and choice["finish_reason"] == "stop"
        assert "tool_calls" not in choice["message"]
    elif protocol == "ollama":
        assert obj["message"]["content"] == CLOSING_TEXT and obj["done_reason"] == "stop"
    elif protocol == "anthropic":
        assert [b["type"] for b in obj["content"]] == ["thinking", "text"]
        assert obj["content"][1]["text"] == CLOSING_TEXT and obj["stop_reason"] == "end_turn"
    else:
        assert [i["type"] for i in obj["output"]] == ["reasoning", "message"]
        assert obj["output"][1]["content"][0]["text"] == CLOSING_TEXT and obj["status"] == "completed"
    assert emu.log[-1]["tool"] is None and emu.log[-1]["finish_reason"] == "stop"


@pytest.mark.parametrize("protocol", PATHS)
async def test_non_streaming_answers_carry_the_call(client, protocol):
    resp = await client.post(PATHS[protocol], json=body_for(protocol, tools=offered(protocol), stream=False))
    obj = resp.json()
    if protocol == "openai":
        choice = obj["choices"][0]
        call = choice["message"]["tool_calls"][0]
        assert call["function"] == {"name": "bash", "arguments": ARGS} and choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] is None
    elif protocol == "ollama":
        assert obj["message"]["tool_calls"][0]["function"]["arguments"] == {"command": COMMAND}
    elif protocol == "anthropic":
        assert obj["content"][-1]["type"] == "tool_use" and obj["content"][-1]["input"] == {"command": COMMAND}
        assert obj["stop_reason"] == "tool_use"
    else:
        item = obj["output"][-1]
        assert item["type"] == "function_call" and item["arguments"] == ARGS and item["call_id"].startswith("call_")


async def test_a_request_without_tools_still_gets_the_text_reply(client):
    resp, chunks = await post_chunks(client, PATHS["openai"], body_for("openai", tools=None))
    text = "".join(f["choices"][0]["delta"].get("content", "") for f in sse_data(chunks) if f.get("choices"))
    assert text == REFERENCE


async def test_max_tokens_inside_the_arguments_ends_with_length_and_a_partial_call(client):
    body = body_for("openai", tools=offered("openai"), max_tokens=6)
    body["thunderdome_sim"] = {"reply": REFERENCE, "reasoning": ""}
    resp, chunks = await post_chunks(client, PATHS["openai"], body)
    frames = [f for f in sse_data(chunks) if f.get("choices")]
    args = "".join(
        d["tool_calls"][0]["function"]["arguments"] for f in frames if "tool_calls" in (d := f["choices"][0]["delta"])
    )
    assert args == "".join(tokenize(ARGS)[:6]) and frames[-1]["choices"][0]["finish_reason"] == "length"


ARG_FRAME = {
    "openai": b'"arguments":',
    "ollama": b'"tool_calls":',
    "anthropic": b'"input_json_delta"',
    "responses": b'"response.function_call_arguments.delta"',
}
"""A marker found only in the frames that carry argument text."""


@pytest.mark.parametrize("protocol", PATHS)
async def test_argument_tokens_are_never_sent_before_the_profile_says(emu, client, protocol):
    """Token k of the arguments leaves no earlier than arrival + scale * due(k): the
    profile's TTFT, then its rate (Ollama: the whole call, at the last token's time)."""
    body = body_for(protocol, tools=offered(protocol))
    body["thunderdome_sim"] = {"reply": REFERENCE, "reasoning": "", "seed": 7}
    stamped: list[float] = []
    async with client.stream("POST", PATHS[protocol], json=body) as resp:
        buffer = b""
        async for piece in resp.aiter_raw():
            now = time.monotonic()
            buffer += piece
            *frames, buffer = buffer.split(b"\n" if protocol == "ollama" else b"\n\n")
            stamped += [now for f in frames if ARG_FRAME[protocol] in f and b'"arguments":""' not in f]
    record, due = emu.log[-1], get_profile("fast-local").schedule(7).due
    n = len(tokenize(ARGS))
    wanted = [n - 1] if protocol == "ollama" else list(range(n))
    assert len(stamped) == len(wanted) and record["tokens"] == n
    for t, k in zip(stamped, wanted):
        assert t >= record["t_arrival"] + SCALE * due(k)
