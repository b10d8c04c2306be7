"""The ``responses`` kind (OpenAI Responses API, ``POST /v1/responses``)
over real loopback HTTP: a scripted server speaks its event stream exactly
(named SSE events, cut into small chunks), and the client's request, events,
end reasons and figures are checked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from _emulator import RawServer, chunked, collect, raw_spec  # type: ignore[import-not-found]
from test_backend_tools import ARGS, SHELL, calls, folded, pieces, sse, tool_request  # type: ignore[import-not-found]
from thunderdome.backends import make_backend
from thunderdome.config import load_backends
from thunderdome.core.events import FirstByte, RequestSent, TokenDelta

ACCEPTED = [
    {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "status": "in_progress", "output": []}},
    {"type": "response.in_progress", "sequence_number": 1, "response": {"id": "resp_1", "status": "in_progress"}},
]


def delta(kind: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "item_id": "rs_1", "output_index": 0, "delta": text, "obfuscation": "", **extra}


def function_call(done: bool = False) -> list[dict[str, Any]]:
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "shell", "arguments": "", "status": "in_progress"}
    frames = [{"type": "response.output_item.added", "output_index": 2, "item": item}]
    frames += [
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": part}
        for part in ARGS
    ]
    if done:
        whole = "".join(ARGS)
        frames += [
            {"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 2, "arguments": whole},
            {"type": "response.output_item.done", "output_index": 2, "item": {**item, "arguments": whole, "status": "completed"}},
        ]
    return frames


def ending(kind: str = "response.completed", **response: Any) -> dict[str, Any]:
    usage = {"input_tokens": 70, "output_tokens": 26, "output_tokens_details": {"reasoning_tokens": 9}}
    return {"type": kind, "response": {"id": "resp_1", "status": kind.rsplit(".", 1)[1], "usage": usage, **response}}


def full_body() -> bytes:
    frames = [
        delta("response.reasoning_summary_text.delta", "Plan: "),
        delta("response.reasoning_text.delta", "count lines"),
        delta("response.output_text.delta", "Running wc."),
        *function_call(done=True),
        ending(),
    ]
    return sse(*frames, named=True)


async def run(respond: Any) -> tuple[Any, RawServer]:
    async with RawServer(respond) as server:
        out = await collect(make_backend(raw_spec("responses", server.url + "/v1")), tool_request())
    return out, server


async def test_reasoning_text_and_a_function_call() -> None:
    out, server = await run(lambda seen: chunked(pieces(full_body()), "text/event-stream"))
    assert out.error is None, out.error
    assert server.seen[0].path == "/v1/responses"
    sent = json.loads(server.seen[0].body)
    assert sent["stream"] is True and sent["stream_options"] == {"include_obfuscation": False}
    assert sent["max_output_tokens"] == 64
    assert sent["tools"] == [{"type": "function", "name": "shell", "description": SHELL.description, "parameters": SHELL.parameters}]
    assert sent["input"][2:4] == [
        {"type": "function_call", "call_id": "c0", "name": "shell", "arguments": '{"cmd": "ls"}'},
        {"type": "function_call_output", "call_id": "c0", "output": "a.txt"},
    ]
    assert out.reasoning == "Plan: count lines" and out.answer == "Running wc."
    started, args, done = calls(out)
    assert [(s.call_id, s.name, s.index) for s in started] == [("call_9", "shell", 0)]
    assert args == {0: "".join(ARGS)}
    assert [(d.call_id, d.arguments) for d in done] == [("call_9", "".join(ARGS))]  # once, though two events end it
    assert out.usages[-1].output_tokens == 26 and out.usages[-1].input_tokens == 70
    assert out.ended.finish_reason == "tool_calls"


async def test_created_and_in_progress_are_never_a_first_token() -> None:
    script = lambda seen: chunked([sse(*ACCEPTED, named=True), full_body()], "text/event-stream")  # noqa: E731
    script_with_pause = lambda seen: [*script(seen)[:2], 0.05, *script(seen)[2:]]  # noqa: E731
    out, _ = await run(script_with_pause)
    assert out.error is None, out.error
    first_byte = next(e for e in out.events if isinstance(e, FirstByte))
    first_token = next(e for e in out.events if isinstance(e, TokenDelta))
    assert first_token.t > first_byte.t  # the accepted events came a chunk earlier and made no output
    sent = next(e for e in out.events if isinstance(e, RequestSent)).t
    lane = folded(out)
    assert lane["ttft_s"] == round(first_token.t - sent, 4)
    assert lane["ttfb_s"] == round(first_byte.t - sent, 4)


@pytest.mark.parametrize(
    ("details", "reason"), [({"reason": "max_output_tokens"}, "length"), ({"reason": "content_filter"}, "content_filter")]
)
async def test_incomplete_is_a_finish_reason(details: dict[str, Any], reason: str) -> None:
    body = sse(*ACCEPTED, delta("response.output_text.delta", "Half"), ending("response.incomplete", incomplete_details=details), named=True)
    out, _ = await run(lambda seen: chunked(pieces(body), "text/event-stream"))
    assert out.error is None and out.ended.finish_reason == reason and out.answer == "Half"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (ending("response.failed", error={"code": "server_error", "message": "The model crashed"}), "server_error: The model crashed"),
        ({"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": None}, "Slow down"),
    ],
)
async def test_failed_and_error_end_the_lane_with_the_servers_words(frame: dict[str, Any], reason: str) -> None:
    body = sse(*ACCEPTED, delta("response.output_text.delta", "So"), frame, named=True)
    out, _ = await run(lambda seen: chunked(pieces(body), "text/event-stream"))
    assert out.answer == "So"  # the output before the failure is kept
    assert out.error is not None and out.error.reason == f"server error mid-stream: {reason}"


async def test_cut_mid_arguments_is_a_cut_stream() -> None:
    body = sse(*ACCEPTED, *function_call(done=False), named=True)
    out, _ = await run(lambda seen: chunked(pieces(body), "text/event-stream"))
    started, _, done = calls(out)
    assert len(started) == 1 and done == []
    assert out.error is not None
    assert out.error.reason.startswith("stream ended without response.completed") and "tool call 'shell'" in out.error.reason


async def test_config_knows_the_kind(tmp_path: Any) -> None:
    path = tmp_path / "backends.yaml"
    path.write_text("backends:\n  - {name: r, kind: responses, url: 'https://api.example.com/v1', model: m}\n")
    (spec,) = load_backends(path)
    backend = make_backend(spec)
    assert spec.kind == "responses" and type(backend).__name__ == "ResponsesBackend"
    await backend.aclose()


@pytest.mark.parametrize(("url", "off"), [("https://api.openai.com/v1", True), ("http://127.0.0.1:8000/v1", False)])
async def test_chat_completions_turn_obfuscation_off_only_where_accepted(url: str, off: bool) -> None:
    from thunderdome.backends.base import ChatRequest

    backend = make_backend(raw_spec("openai", url))
    body = backend.body(ChatRequest(messages=[], max_tokens=4, lane="lane"))
    await backend.aclose()
    assert body["stream_options"] == ({"include_usage": True, "include_obfuscation": False} if off else {"include_usage": True})


def test_an_assistants_text_goes_as_a_typed_message_item() -> None:
    """llama-server's /v1/responses refuses an untyped assistant item ("Cannot
    determine type of 'item'"); the typed form is what the API itself echoes."""
    from thunderdome.backends.messages import responses_input

    items = responses_input([
        {"role": "user", "content": "Do it."},
        {"role": "assistant", "content": "```bash\nls\n```"},
        {"role": "user", "content": "Again."},
    ])
    assert items == [
        {"role": "user", "content": "Do it."},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "```bash\nls\n```"}]},
        {"role": "user", "content": "Again."},
    ]
