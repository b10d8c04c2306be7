"""Anthropic Messages client: parser on hand-made events, then real loopback
HTTP against the emulator and a scripted raw server."""

from __future__ import annotations

import json

import pytest

from _emulator import (  # type: ignore[import-not-found]
    RawServer,
    assert_well_ordered,
    chunked,
    collect,
    emulator,
    raw_spec,
    request,
    sim_backend,
    take_chunk,
)
from thunderdome.backends import BackendError, make_backend
from thunderdome.backends.anthropic import AnthropicBackend, AnthropicParser
from thunderdome.core.events import StreamEnded, TokenDelta, Usage

pytestmark = pytest.mark.both_loops  # every test on the default loop and on the race loop

__all__ = ["emulator"]

REPLY = "Hello wörld 😀 — the quick brown fox jumps over the lazy dog."


def events(parser: AnthropicParser, *pairs: tuple[str, dict]) -> list:
    body = "".join(f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n" for name, data in pairs)
    return take_chunk(parser, AnthropicBackend.decoder_class(), body.encode(), 3.0)


# --- parser ------------------------------------------------------------------------------


def test_cumulative_usage_is_assigned_and_thinking_is_reasoning() -> None:
    p = AnthropicParser("l", 1)
    out = events(
        p,
        ("message_start", {"message": {"usage": {"input_tokens": 25, "output_tokens": 1}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "signature_delta", "signature": "abc"}}),
        ("content_block_stop", {"index": 0}),
        ("ping", {}),
        ("content_block_start", {"index": 1, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": "Hi"}}),
        ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}}),
        ("message_delta", {"delta": {}, "usage": {"output_tokens": 17}}),
        ("message_stop", {}),
    )
    assert [(e.text, e.channel) for e in out if isinstance(e, TokenDelta)] == [("hmm", "reasoning"), ("Hi", "answer")]
    assert [(u.output_tokens, u.input_tokens) for u in out if isinstance(u, Usage)] == [(15, 25), (17, 25)]  # message_start's placeholder 1 is not a count
    assert out[-1] == StreamEnded(t=3.0, lane="l", turn=1, finish_reason="end_turn")


def test_error_event() -> None:
    p = AnthropicParser("l", 1)
    with pytest.raises(BackendError, match=r"^server error mid-stream: overloaded_error: Overloaded$"):
        events(p, ("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))


# --- against the emulator ---------------------------------------------------------------------
# (what every protocol does alike, quirks, max tokens, reasoning, a cut stream: test_backend_protocols.py)


async def test_full_reply_usage_and_order(emulator) -> None:
    out = await collect(sim_backend(emulator.url, "anthropic", {"reply": REPLY}))
    assert_well_ordered(out)
    assert out.answer == REPLY and out.reasoning == ""
    assert out.ended.finish_reason == "end_turn"
    assert out.usages[-1].output_tokens == len(out.deltas)
    assert out.usages[-1].input_tokens and out.usages[-1].input_tokens > 0


# --- against a scripted raw server -------------------------------------------------------------


async def test_request_shape_headers_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TD_ANTHROPIC_KEY", "sk-ant-secret-456")
    stream = [
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":3,"output_tokens":1}}}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"ok"}}\n\n',
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
        b'"usage":{"output_tokens":2}}\n\n',
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ]
    async with RawServer(lambda seen: chunked(stream)) as server:
        spec = raw_spec("anthropic", server.url, api_key_env="TD_ANTHROPIC_KEY", options={"temperature": 0})
        backend = make_backend(spec)
        assert isinstance(backend, AnthropicBackend)
        out = await collect(backend, request(max_tokens=21))
    assert_well_ordered(out)
    assert out.answer == "ok" and out.usages[-1].output_tokens == 2
    (seen,) = server.seen
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == "sk-ant-secret-456"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers
    body = json.loads(seen.body)
    assert body["system"] == "You are terse."
    assert body["messages"] == [{"role": "user", "content": "Say hello."}]
    assert body["stream"] is True and body["max_tokens"] == 21 and body["temperature"] == 0
    assert "sk-ant-secret-456" not in repr(backend)
