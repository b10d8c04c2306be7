"""``POST /v1/responses`` on the emulator: event shapes, ends, limits, and the faults that apply.

Raw SSE over real loopback HTTP, read as the wire sends it (the official SDK's
view is in ``test_sim_official_clients.py``).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from thunderdome.sim import EmulatorServer, tokenize

SCALE = 0.02
REPLY = "Sure — the answer is ```bash\nkill -9 4242\n``` and that's all. ✅"
THINK = "Let me think about the PIDs first."
PATH = "/v1/responses"
END_EVENTS = {"response.completed", "response.incomplete", "response.failed"}


@pytest.fixture
async def emu():
    async with EmulatorServer(time_scale=SCALE) as server:
        yield server


@pytest.fixture
async def client(emu):
    async with httpx.AsyncClient(base_url=emu.url, timeout=30) as c:
        yield c


def body(sim: dict | None = None, **extra) -> dict:
    out = {"model": "fast-local", "input": "Finish the fight", "stream": True, **extra}
    out["thunderdome_sim"] = {"reply": REPLY, "reasoning": THINK, **(sim or {})}
    return out


def events(raw: bytes) -> list[tuple[str, dict]]:
    """(event name, data) per SSE frame; asserts each frame's name equals its data's type
    and its data is compact JSON exactly as ``json.dumps`` writes it (templates cut no corner)."""
    out = []
    for block in raw.decode("utf-8").split("\n\n"):
        if not block or block.startswith(":"):
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: ") and len(lines) == 2, block
        name, data = lines[0][7:], json.loads(lines[1][6:])
        assert data["type"] == name
        assert json.dumps(data, ensure_ascii=False, separators=(",", ":")) == lines[1][6:]
        out.append((name, data))
    return out


async def stream(client: httpx.AsyncClient, request: dict) -> tuple[httpx.Response, bytes]:
    async with client.stream("POST", PATH, json=request) as resp:
        raw = b"".join([b async for b in resp.aiter_bytes()])
    return resp, raw


def deltas(evs: list[tuple[str, dict]], name: str) -> str:
    return "".join(d["delta"] for n, d in evs if n == name)


# --- a clean stream ------------------------------------------------------------------------------


async def test_a_stream_opens_at_once_numbers_every_event_and_ends_with_completed(client):
    resp, raw = await stream(client, body(instructions="Be terse."))
    assert resp.status_code == 200 and resp.headers["content-type"] == "text/event-stream"
    assert b"[DONE]" not in raw
    evs = events(raw)
    names = [n for n, _ in evs]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert [d["sequence_number"] for _, d in evs] == list(range(len(evs)))
    assert names[-1] == "response.completed" and sum(n in END_EVENTS for n in names) == 1
    assert deltas(evs, "response.reasoning_text.delta") == THINK
    assert deltas(evs, "response.output_text.delta") == REPLY
    # items open and close in order: reasoning (0) then message (1)
    added = [d["item"]["type"] for n, d in evs if n == "response.output_item.added"]
    done = [d["item"] for n, d in evs if n == "response.output_item.done"]
    assert added == ["reasoning", "message"] == [i["type"] for i in done]
    added_at = [i for i, n in enumerate(names) if n == "response.output_item.added"]
    done_at = [i for i, n in enumerate(names) if n == "response.output_item.done"]
    assert added_at[0] < done_at[0] < added_at[1] < done_at[1]
    final = evs[-1][1]["response"]
    assert final["status"] == "completed" and final["output"] == done
    assert final["output"][1]["content"][0]["text"] == REPLY
    assert final["instructions"] == "Be terse."
    usage = final["usage"]
    assert usage["output_tokens"] == len(tokenize(THINK)) + len(tokenize(REPLY))
    assert usage["output_tokens_details"]["reasoning_tokens"] == len(tokenize(THINK))
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert evs[0][1]["response"]["usage"] is None and evs[0][1]["response"]["output"] == []


async def test_created_and_in_progress_leave_before_the_first_token_is_due(client):
    """With token 0 held back for a minute (a stall at slot 0), both opening events still arrive."""
    request = body({"fault": "stall_after", "fault_at": 0, "stall_s": 60.0, "time_scale": 1.0})
    seen = b""
    async with client.stream("POST", PATH, json=request) as resp:
        pieces = resp.aiter_raw()
        while seen.count(b"\n\n") < 2:
            seen += await asyncio.wait_for(pieces.__anext__(), 10)
    assert [n for n, _ in events(seen)] == ["response.created", "response.in_progress"]


async def test_instructions_and_input_items_count_as_input_tokens(client):
    short = await client.post(PATH, json=body(stream=False))
    longer = await client.post(PATH, json=body(stream=False, instructions="You are a careful shell expert. " * 5))
    assert longer.json()["usage"]["input_tokens"] > short.json()["usage"]["input_tokens"]


async def test_deltas_carry_obfuscation_unless_it_is_turned_off(client):
    _, raw = await stream(client, body())
    delta_events = [d for n, d in events(raw) if n.endswith(".delta")]
    assert delta_events and all(isinstance(d["obfuscation"], str) and d["obfuscation"] for d in delta_events)
    assert not any("obfuscation" in d for n, d in events(raw) if not n.endswith(".delta"))
    _, raw = await stream(client, body(stream_options={"include_obfuscation": False}))
    delta_events = [d for n, d in events(raw) if n.endswith(".delta")]
    assert delta_events and not any("obfuscation" in d for d in delta_events)


async def test_a_reasoning_summary_request_streams_summary_events(client):
    _, raw = await stream(client, body(reasoning={"effort": "low", "summary": "auto"}))
    evs = events(raw)
    names = [n for n, _ in evs]
    assert deltas(evs, "response.reasoning_summary_text.delta") == THINK
    assert "response.reasoning_text.delta" not in names
    assert names.index("response.reasoning_summary_part.added") < names.index("response.reasoning_summary_text.done")
    final = evs[-1][1]["response"]
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": THINK}]
    assert final["reasoning"] == {"effort": "low", "summary": "auto"}


async def test_max_output_tokens_ends_with_incomplete(emu, client):
    _, raw = await stream(client, body(max_output_tokens=len(tokenize(THINK)) + 3))
    evs = events(raw)
    assert evs[-1][0] == "response.incomplete"
    final = evs[-1][1]["response"]
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][-1]["status"] == "incomplete"
    assert deltas(evs, "response.output_text.delta") == "".join(tokenize(REPLY)[:3])
    assert emu.log[-1]["finish_reason"] == "length" and emu.log[-1]["protocol"] == "responses"


async def test_a_tool_call_streams_function_call_argument_events(client):
    tools = [{"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}]
    _, raw = await stream(client, body(tools=tools))
    evs = events(raw)
    args = json.dumps({"command": "kill -9 4242"})
    assert deltas(evs, "response.function_call_arguments.delta") == args
    done = next(d for n, d in evs if n == "response.function_call_arguments.done")
    assert done["arguments"] == args
    item = next(d["item"] for n, d in evs if n == "response.output_item.added" and d["item"]["type"] == "function_call")
    assert item["name"] == "exec_command" and item["arguments"] == "" and item["call_id"].startswith("call_")
    final = evs[-1][1]["response"]
    assert evs[-1][0] == "response.completed" and final["output"][-1]["arguments"] == args
    assert final["tools"] == tools
    assert final["usage"]["output_tokens"] == len(tokenize(THINK)) + len(tokenize(args))


async def test_non_streaming_response_object(client):
    resp = await client.post(PATH, json=body(stream=False, max_output_tokens=500))
    obj = resp.json()
    assert resp.status_code == 200 and obj["object"] == "response" and obj["status"] == "completed"
    assert [i["type"] for i in obj["output"]] == ["reasoning", "message"]
    assert obj["output"][1]["content"][0]["text"] == REPLY
    assert obj["usage"]["output_tokens"] == len(tokenize(THINK)) + len(tokenize(REPLY))
    assert obj["max_output_tokens"] == 500


@pytest.mark.parametrize(
    ("request_body", "status", "needle"),
    [
        ({"model": "fast-local", "input": 42}, 400, "input"),
        ({"model": "fast-local", "input": "hi", "max_output_tokens": -1}, 400, "max_output_tokens"),
        ({"model": "gpt-nope", "input": "hi"}, 404, "gpt-nope"),
    ],
)
async def test_bad_requests_get_openai_shaped_errors(client, request_body, status, needle):
    resp = await client.post(PATH, json=request_body)
    assert resp.status_code == status
    assert needle in resp.json()["error"]["message"] and resp.json()["error"]["type"]


# --- faults and quirks on /v1/responses ------------------------------------------------------------


async def test_http_429_is_an_error_object_with_retry_after(emu, client):
    resp = await client.post(PATH, json=body({"fault": "http_429"}))
    assert resp.status_code == 429 and resp.headers["retry-after"] == "20"
    assert resp.json()["error"]["type"] == "rate_limit_error"
    assert emu.log[-1]["status"] == 429


async def test_drop_mid_aborts_before_any_end_event(client):
    seen = b""
    with pytest.raises(httpx.RemoteProtocolError):
        async with client.stream("POST", PATH, json=body({"fault": "drop_mid", "fault_at": 3})) as resp:
            async for piece in resp.aiter_bytes():
                seen += piece
    names = [n for n, _ in events(seen)]
    assert names.count("response.reasoning_text.delta") == 3
    assert not END_EVENTS & set(names)


async def test_cut_closes_the_open_item_and_sends_no_end_event(client):
    resp, raw = await stream(client, body({"fault": "cut", "fault_at": 2}))
    evs = events(raw)
    names = [n for n, _ in evs]
    assert resp.status_code == 200 and not END_EVENTS & set(names)
    assert names[-1] == "response.output_item.done" and deltas(evs, "response.reasoning_text.delta") == "".join(tokenize(THINK)[:2])


async def test_stall_after_resumes_and_completes(client):
    resp, raw = await stream(client, body({"fault": "stall_after", "fault_at": 2, "stall_s": 0.5}))
    evs = events(raw)
    assert evs[-1][0] == "response.completed" and deltas(evs, "response.output_text.delta") == REPLY


async def test_bad_json_is_one_broken_frame_then_the_stream_goes_on(client):
    _, raw = await stream(client, body({"fault": "bad_json", "fault_at": 2}))
    blocks = [b for b in raw.decode().split("\n\n") if b]
    broken = [b for b in blocks if not _parses(b)]
    assert len(broken) == 1 and broken[0].startswith("event: response.output_text.delta")
    good = events("\n\n".join(b for b in blocks if _parses(b)).encode() + b"\n\n")
    assert good[-1][0] == "response.completed"
    assert [d["sequence_number"] for _, d in good] == list(range(len(good)))


def _parses(block: str) -> bool:
    try:
        json.loads(block.split("\n", 1)[1][6:])
    except ValueError:
        return False
    return True


async def test_no_usage_leaves_usage_null_on_the_final_response(client):
    _, raw = await stream(client, body({"fault": "no_usage"}))
    evs = events(raw)
    assert evs[-1][0] == "response.completed" and evs[-1][1]["response"]["usage"] is None
    whole = await client.post(PATH, json=body({"fault": "no_usage"}, stream=False))
    assert whole.json()["usage"] is None


async def test_error_frame_is_response_failed_with_an_error_object(client):
    resp, raw = await stream(client, body({"fault": "error_frame", "fault_at": 2}))
    evs = events(raw)
    assert resp.status_code == 200 and evs[-1][0] == "response.failed"
    failed = evs[-1][1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert "overloaded" in failed["error"]["message"]


async def test_keepalive_comments_do_not_disturb_the_events(client):
    _, raw = await stream(client, body({"fault": "keepalive"}))
    assert b": keep-alive\n\n" in raw
    evs = events(raw)
    assert evs[-1][0] == "response.completed" and deltas(evs, "response.output_text.delta") == REPLY


@pytest.mark.parametrize("argv", [["sim", "serve", "--help"], ["--help"]])
def test_sim_serve_help_lists_the_responses_endpoint(capsys, argv):
    """Both ways in: ``thunderdome sim serve`` and the emulator's own command."""
    from thunderdome.cli import main
    from thunderdome.sim import serve_main

    run = main if argv[0] == "sim" else serve_main
    try:
        code = run(argv)
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None)
    listed = capsys.readouterr().out
    assert all(path in listed for path in ("/v1/responses", "/v1/chat/completions", "/api/chat", "/v1/messages"))
