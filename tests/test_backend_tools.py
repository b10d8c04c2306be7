"""Tool calls streamed over real loopback HTTP, in the OpenAI, Anthropic and
Ollama wire formats: scripted servers (``RawServer``) speak each format
exactly, cut into small chunks so frames split across reads; the requests
they receive show how tools and tool messages are encoded; the events fold
into the figures (TTFT, time to first tool call, time to action)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from _emulator import RawServer, chunked, collect, raw_spec  # type: ignore[import-not-found]
from thunderdome.backends import ChatRequest, make_backend
from thunderdome.backends.base import ToolSpec
from thunderdome.core.events import RequestSent, TokenDelta, ToolCallDelta, ToolCallDone, ToolCallStarted
from thunderdome.core.metrics import Standings

SHELL = ToolSpec(
    name="shell",
    description="Run a shell command.",
    parameters={"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
)
HISTORY = [
    {"role": "system", "content": "You run commands."},
    {"role": "user", "content": "List the files."},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c0", "name": "shell", "arguments": '{"cmd": "ls"}'}]},
    {"role": "tool", "tool_call_id": "c0", "name": "shell", "content": "a.txt"},
    {"role": "user", "content": "Now count them, and show the date."},
]
ARGS = ['{"cmd"', ': "wc', " -l", ' a.txt"}']
ARGS_2 = ['{"cmd":', ' "date"}']


def tool_request() -> ChatRequest:
    return ChatRequest(messages=list(HISTORY), max_tokens=64, lane="lane", turn=2, tools=(SHELL,))


def pieces(body: bytes, size: int = 7) -> list[bytes]:
    """The body cut into ``size``-byte HTTP chunks (frames split across them)."""
    return [body[i : i + size] for i in range(0, len(body), size)]


def sse(*objs: dict[str, Any], named: bool = False) -> bytes:
    out = ""
    for obj in objs:
        out += (f"event: {obj['type']}\n" if named else "") + f"data: {json.dumps(obj)}\n\n"
    return out.encode()


def calls(out: Any) -> tuple[list[ToolCallStarted], dict[int, str], list[ToolCallDone]]:
    started = [e for e in out.events if isinstance(e, ToolCallStarted)]
    args: dict[int, str] = {}
    for e in out.events:
        if isinstance(e, ToolCallDelta):
            args[e.index] = args.get(e.index, "") + e.text
    return started, args, [e for e in out.events if isinstance(e, ToolCallDone)]


async def run(
    kind: str, body: bytes, path: str = "", content_type: str = "text/event-stream", size: int = 7
) -> tuple[Any, Any]:
    async with RawServer(lambda seen: chunked(pieces(body, size), content_type)) as server:
        out = await collect(make_backend(raw_spec(kind, server.url + path)), tool_request())
    return out, json.loads(server.seen[0].body)


def folded(out: Any) -> dict[str, Any]:
    standings = Standings().apply_all(out.events)
    (lane,) = standings.results()["lanes"]
    return lane


# --- OpenAI Chat Completions ---------------------------------------------------------------


def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def openai_call(index: int, fragment: str, *, id: str | None = None, name: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": fragment}}
    if id is not None:
        call.update(id=id, type="function")
        call["function"]["name"] = name
    return openai_chunk({"tool_calls": [call]})


def openai_body(*, cut: bool = False) -> bytes:
    frames = [openai_chunk({"role": "assistant", "content": None})]
    frames.append(openai_call(0, "", id="call_a", name="shell"))
    frames += [openai_call(0, part) for part in ARGS]
    frames.append(openai_call(1, "", id="call_b", name="shell"))
    if cut:
        return sse(*frames, openai_call(1, ARGS_2[0]))
    frames += [openai_call(1, part) for part in ARGS_2]
    frames.append(openai_chunk({}, "tool_calls"))
    frames.append({"choices": [], "usage": {"completion_tokens": 21, "prompt_tokens": 90}})
    return sse(*frames) + b"data: [DONE]\n\n"


async def test_openai_two_tool_calls_in_fragments() -> None:
    out, sent = await run("openai", openai_body(), "/v1")
    assert out.error is None, out.error
    started, args, done = calls(out)
    assert [(s.call_id, s.name, s.index) for s in started] == [("call_a", "shell", 0), ("call_b", "shell", 1)]
    assert args == {0: "".join(ARGS), 1: "".join(ARGS_2)}
    assert [(d.call_id, d.arguments, d.index) for d in done] == [("call_a", "".join(ARGS), 0), ("call_b", "".join(ARGS_2), 1)]
    kinds = [type(e).__name__ for e in out.events]
    assert kinds.index("ToolCallDone") < kinds.index("ToolCallStarted", kinds.index("ToolCallStarted") + 1)  # call 0 is complete when call 1 starts
    assert out.ended.finish_reason == "tool_calls"
    assert sent["tools"] == [{"type": "function", "function": {"name": "shell", "description": SHELL.description, "parameters": SHELL.parameters}}]
    assert sent["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c0", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "ls"}'}}],
    }
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": "c0", "content": "a.txt"}


async def test_tool_deltas_count_for_ttft_and_the_action_figures() -> None:
    out, _ = await run("openai", openai_body(), "/v1")
    lane = folded(out)
    sent = next(e for e in out.events if isinstance(e, RequestSent)).t
    first_delta = next(e for e in out.events if isinstance(e, ToolCallDelta)).t
    first_call = next(e for e in out.events if isinstance(e, ToolCallStarted)).t
    first_done = next(e for e in out.events if isinstance(e, ToolCallDone)).t
    assert not any(isinstance(e, TokenDelta) for e in out.events)
    assert lane["ttft_s"] == round(first_delta - sent, 4)
    assert lane["ttftc_s"] == round(first_call - sent, 4)
    assert lane["tta_s"] == round(first_done - sent, 4)
    assert lane["tokens"] == 21 and lane["tokens_source"] == "usage"
    assert lane["per_turn"][0]["turn"] == 2 and lane["per_turn"][0]["tta_s"] == lane["tta_s"]


async def test_openai_cut_mid_arguments_has_no_done() -> None:
    out, _ = await run("openai", openai_body(cut=True), "/v1")
    started, args, done = calls(out)
    assert [s.call_id for s in started] == ["call_a", "call_b"]
    assert [d.call_id for d in done] == ["call_a"]  # the cut call never completes
    assert args[1] == ARGS_2[0]
    assert out.error is not None and "in the middle of tool call 'shell'" in out.error.reason
    assert folded(out)["per_turn"][0]["tool_s"] is None


# --- Anthropic Messages --------------------------------------------------------------------


def anthropic_body(*, cut: bool = False) -> bytes:
    frames: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 40, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Count with wc."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "ping"},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Counting."}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {}}},
    ]
    frames += [
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": part}}
        for part in ARGS
    ]
    if cut:
        return sse(*frames, named=True)
    frames += [
        {"type": "content_block_stop", "index": 2},
        {"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "shell", "input": {}}},
        *({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": p}} for p in ARGS_2),
        {"type": "content_block_stop", "index": 3},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 33}},
        {"type": "message_stop"},
    ]
    return sse(*frames, named=True)


async def test_anthropic_thinking_signature_and_two_tool_uses() -> None:
    out, sent = await run("anthropic", anthropic_body())
    assert out.error is None, out.error
    assert out.reasoning == "Count with wc." and out.answer == "Counting."  # the signature is no output
    started, args, done = calls(out)
    assert [(s.call_id, s.index) for s in started] == [("toolu_1", 0), ("toolu_2", 1)]
    assert args == {0: "".join(ARGS), 1: "".join(ARGS_2)}
    assert [json.loads(d.arguments) for d in done] == [{"cmd": "wc -l a.txt"}, {"cmd": "date"}]
    assert out.ended.finish_reason == "tool_use"
    assert out.usages[-1].output_tokens == 33
    assert sent["tools"] == [{"name": "shell", "description": SHELL.description, "input_schema": SHELL.parameters}]
    assert sent["system"] == "You run commands."
    assert sent["messages"][1] == {"role": "assistant", "content": [{"type": "tool_use", "id": "c0", "name": "shell", "input": {"cmd": "ls"}}]}
    assert sent["messages"][2] == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c0", "content": "a.txt"}]}


async def test_anthropic_cut_mid_arguments() -> None:
    out, _ = await run("anthropic", anthropic_body(cut=True))
    started, _, done = calls(out)
    assert [s.call_id for s in started] == ["toolu_1"] and done == []
    assert out.error is not None and "message_stop" in out.error.reason and "tool call 'shell'" in out.error.reason


# --- Ollama /api/chat ---------------------------------------------------------------------------


async def test_ollama_whole_calls_in_one_line() -> None:
    lines = [
        {"message": {"role": "assistant", "content": "", "thinking": "wc it"}, "done": False},
        {
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "shell", "arguments": {"cmd": "wc -l a.txt"}}},
                    {"function": {"name": "shell", "arguments": {"cmd": "date"}}},
                ],
            },
            "done": False,
        },
        {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop", "eval_count": 19},
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    out, sent = await run("ollama", body, content_type="application/x-ndjson")
    assert out.error is None, out.error
    started, args, done = calls(out)
    assert [(s.name, s.index) for s in started] == [("shell", 0), ("shell", 1)]
    assert len({s.call_id for s in started}) == 2 and all(s.call_id for s in started)  # made up: Ollama sends none
    assert [json.loads(args[i]) for i in (0, 1)] == [{"cmd": "wc -l a.txt"}, {"cmd": "date"}]
    assert [d.arguments for d in done] == [args[0], args[1]]
    assert sent["tools"][0]["function"]["name"] == "shell"
    assert sent["messages"][2]["tool_calls"] == [{"function": {"name": "shell", "arguments": {"cmd": "ls"}}}]
    assert sent["messages"][3] == {"role": "tool", "tool_name": "shell", "content": "a.txt"}


async def test_arguments_that_are_not_an_object_are_refused_before_sending() -> None:
    bad = [{"role": "assistant", "content": "", "tool_calls": [{"id": "x", "name": "shell", "arguments": "[1"}]}]
    async with RawServer(lambda seen: chunked([b"{}\n"], "application/x-ndjson")) as server:
        backend = make_backend(raw_spec("anthropic", server.url))
        out = await collect(backend, ChatRequest(messages=bad, max_tokens=8, lane="lane", tools=(SHELL,)))
    assert out.error is not None and "not a JSON object" in out.error.reason
    assert server.seen == []


@pytest.mark.parametrize("kind", ["openai", "ollama", "anthropic"])
async def test_no_tools_no_tools_field(kind: str) -> None:
    async with RawServer(lambda seen: chunked([b""])) as server:
        backend = make_backend(raw_spec(kind, server.url))
        await collect(backend, ChatRequest(messages=HISTORY[:2], max_tokens=8, lane="lane"))
    assert "tools" not in json.loads(server.seen[0].body)


# --- the events on record, and the model/tool split -------------------------------------------


async def test_tool_events_round_trip_through_json() -> None:
    from thunderdome.core.events import event_from_dict

    out, _ = await run("openai", openai_body(), "/v1")
    tool_events = [e for e in out.events if isinstance(e, (ToolCallStarted, ToolCallDelta, ToolCallDone))]
    assert len(tool_events) == 2 + len(ARGS) + len(ARGS_2) + 2
    assert [event_from_dict(json.loads(json.dumps(e.to_dict()))) for e in tool_events] == tool_events


@pytest.mark.parametrize("exec_s", [None, 0.25])
async def test_completion_splits_into_model_time_and_tool_time(exec_s: float | None) -> None:
    from thunderdome.core.events import ExecFinished, StreamEnded

    out, _ = await run("openai", openai_body(), "/v1")
    events = list(out.events)
    last_done = [e for e in events if isinstance(e, ToolCallDone)][-1]
    ended = next(e for e in events if isinstance(e, StreamEnded))
    assert last_done.t <= ended.t
    if exec_s is not None:
        events.append(ExecFinished(t=ended.t + 0.3, lane="lane", turn=2, exit_code=0, duration=exec_s))
    events.append(RequestSent(t=ended.t + 0.5, lane="lane", turn=3))
    lane = folded(type(out)(events, None))
    sent = events[0].t
    turn = lane["per_turn"][0]
    assert turn["model_s"] == round(ended.t - sent, 4) == lane["model_s"]
    # no commands run by Thunderdome: the turn's end to the next request (never inside its model time)
    expected_tool = exec_s if exec_s is not None else ended.t + 0.5 - ended.t
    assert turn["tool_s"] == round(expected_tool, 4) == lane["tool_s"]
    assert lane["per_turn"][1] == {"turn": 3, "ttft_s": None, "ttftc_s": None, "tta_s": None, "model_s": None, "tool_s": None}


async def test_endless_arguments_end_the_lane() -> None:
    from thunderdome.backends.http import MAX_ARGUMENTS

    piece = "x" * 100_000
    frames = [openai_call(0, "", id="call_a", name="shell")]
    frames += [openai_call(0, piece) for _ in range(MAX_ARGUMENTS // len(piece) + 1)]
    out, _ = await run("openai", sse(*frames) + b"data: [DONE]\n\n", "/v1", size=64 * 1024)
    assert out.error is not None and out.error.reason == "tool call 'shell': arguments over 1 MB: cut"
    assert not any(isinstance(e, ToolCallDone) for e in out.events)
