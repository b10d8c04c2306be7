"""OpenAI chat-completions client: parser on hand-made frames, then real
loopback HTTP against the emulator and a scripted raw server."""

from __future__ import annotations

import json

import pytest

from _emulator import (  # type: ignore[import-not-found]
    CLOSE,
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
from thunderdome.backends.openai import OpenAIBackend, OpenAIParser
from thunderdome.core.events import StreamEnded, TokenDelta, Usage
from thunderdome.core.specs import BackendSpec

pytestmark = pytest.mark.both_loops  # every test on the default loop and on the race loop

__all__ = ["emulator"]

REPLY = "Hello wörld 😀 — the quick brown fox jumps over the lazy dog."


def frames(parser: OpenAIParser, *objs: object, t: float = 1.0) -> list:
    body = "".join(f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n" for obj in objs)
    return take_chunk(parser, OpenAIBackend.decoder_class(), body.encode(), t)


# --- parser ------------------------------------------------------------------------------


def test_role_only_and_empty_chunks_yield_no_delta() -> None:
    p = OpenAIParser("l", 1)
    out = frames(
        p,
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {}}]},
        {"choices": [{"index": 0, "delta": {"content": None}}]},
        {"choices": []},
        {"choices": None, "usage": None},
        {"id": "x"},
    )
    assert out == [] and p.tokens == 0


def test_deltas_reasoning_usage_and_end() -> None:
    p = OpenAIParser("l", 2)
    out = frames(
        p,
        {"choices": [{"index": 0, "delta": {"reasoning_content": "think "}}]},
        {"choices": [{"index": 0, "delta": {"reasoning": "more"}}]},
        {"choices": [{"index": 0, "delta": {"content": "two tokens"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], "timings": {"predicted_per_second": 41.5}},
        {"choices": None, "usage": {"prompt_tokens": 9, "completion_tokens": 4}},
        "[DONE]",
    )
    assert [(e.text, e.channel) for e in out if isinstance(e, TokenDelta)] == [
        ("think ", "reasoning"),
        ("more", "reasoning"),
        ("two tokens", "answer"),
    ]
    usage = [e for e in out if isinstance(e, Usage)]
    assert usage == [Usage(t=1.0, lane="l", turn=2, output_tokens=4, input_tokens=9, source="usage", server_tps=41.5)]
    assert out[-1] == StreamEnded(t=1.0, lane="l", turn=2, finish_reason="length")
    assert p.ended and p.tokens == 3


def test_done_without_finish_reason_is_an_end_with_none() -> None:
    p = OpenAIParser("l", 1)
    out = frames(p, {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}, "[DONE]")
    assert out == [StreamEnded(t=1.0, lane="l", turn=1, finish_reason=None)]


def test_error_frame_raises_with_type_and_message() -> None:
    p = OpenAIParser("l", 1)
    with pytest.raises(BackendError, match=r"^server error mid-stream: server_error: boom$"):
        frames(p, {"error": {"message": "boom", "type": "server_error", "code": 500}})


# --- against the emulator ---------------------------------------------------------------------
# (what every protocol does alike, quirks, max tokens, reasoning, a cut stream: test_backend_protocols.py)


async def test_full_reply_usage_and_order(emulator) -> None:
    out = await collect(sim_backend(emulator.url, "openai", {"reply": REPLY}))
    assert_well_ordered(out)
    assert out.answer == REPLY
    assert out.reasoning == ""
    assert out.ended.finish_reason == "stop"
    (usage,) = out.usages
    assert usage.source == "usage" and usage.output_tokens == len(out.deltas)
    assert usage.input_tokens and usage.input_tokens > 0


async def test_llama_cpp_timings_give_server_tps(emulator) -> None:
    out = await collect(sim_backend(emulator.url, "openai", {"reply": REPLY, "timings": True}))
    assert_well_ordered(out)
    assert out.usages[-1].source == "usage"
    assert out.usages[-1].server_tps is not None and out.usages[-1].server_tps > 0


async def test_one_client_serves_several_turns(emulator) -> None:
    backend = sim_backend(emulator.url, "openai", {"reply": "one two"})
    try:
        for turn in (1, 2, 3):
            out = await collect(backend, request(turn=turn), close=False)
            assert_well_ordered(out)
            assert out.answer == "one two" and all(e.turn == turn for e in out.deltas)
    finally:
        await backend.aclose()


# --- against a scripted raw server -------------------------------------------------------------

HAND_MADE = [
    b": ping\r\n\r\n",
    b'data:{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\r\n\r\n',
    b'data: {"choices":[{"index":0,"delta":{"content":"caf\xc3',
    b'\xa9 "}}]}\r\n\r\ndata: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\r\n\r\n',
    b'data: {"choices":null,"usage":{"prompt_tokens":3,"completion_tokens":2}}\r\n\r\n',
    b"data: [DONE]\r\n\r\n",
]


async def test_request_shape_headers_and_api_key(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv("TD_TEST_KEY", "sk-test-secret-123")
    async with RawServer(lambda seen: chunked(HAND_MADE)) as server:
        spec = raw_spec(
            "openai", server.url + "/v1", api_key_env="TD_TEST_KEY", options={"temperature": 0.2, "stream": False}
        )
        backend = make_backend(spec, headers={"x-thunderdome-tag": "tag-1"})
        assert isinstance(backend, OpenAIBackend)
        out = await collect(backend, request(max_tokens=33, sim={"reply": "ignored by real backends"}))
    assert_well_ordered(out)
    assert out.answer == "café ok"
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == "Bearer sk-test-secret-123"
    assert seen.headers["x-thunderdome-tag"] == "tag-1"
    assert seen.headers["accept-encoding"] == "identity"
    body = json.loads(seen.body)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 33 and body["temperature"] == 0.2 and body["model"] == "m"
    assert body["messages"][0]["role"] == "system"
    assert "thunderdome_sim" not in body
    assert "sk-test-secret-123" not in repr(backend) + caplog.text


async def test_hand_made_stream_one_byte_per_chunk() -> None:
    whole = b"".join(HAND_MADE)
    async with RawServer(lambda seen: chunked([whole[i : i + 1] for i in range(len(whole))])) as server:
        out = await collect(make_backend(raw_spec("openai", server.url + "/v1")))
    assert_well_ordered(out)
    assert out.answer == "café ok"
    assert [u.output_tokens for u in out.usages] == [2]
    assert out.ended.finish_reason == "stop"


async def test_connection_is_reused_across_turns() -> None:
    async with RawServer(lambda seen: chunked(HAND_MADE)) as server:
        backend = make_backend(raw_spec("openai", server.url + "/v1"))
        try:
            for turn in (1, 2):
                out = await collect(backend, request(turn=turn), close=False)
                assert_well_ordered(out)
        finally:
            await backend.aclose()
    assert [s.connection for s in server.seen] == [1, 1]


async def test_body_closed_right_after_done_without_blank_line() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    body = b'data: {"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}]}\n\ndata: [DONE]'
    async with RawServer(lambda seen: [head, body, CLOSE]) as server:
        out = await collect(make_backend(raw_spec("openai", server.url + "/v1")))
    assert_well_ordered(out)
    assert out.answer == "x" and out.ended.finish_reason == "stop"


async def test_sim_lane_sends_its_directive_and_keeps_real_options_in_the_body() -> None:
    async with RawServer(lambda seen: chunked(HAND_MADE)) as server:
        spec = BackendSpec(
            name="sim-a",
            kind="sim",
            profile="dgx-spark",
            protocol="openai",
            options={"fault": "keepalive", "seed": 3, "temperature": 0.5},
        )
        backend = make_backend(spec, sim_url=server.url, sim_directive={"seed": 4, "time_scale": 0.1})
        out = await collect(backend, request(sim={"reply": "rendered for this lane"}))
    assert_well_ordered(out)
    (seen,) = server.seen
    assert seen.path == "/v1/chat/completions"
    body = json.loads(seen.body)
    assert body["model"] == "dgx-spark"
    assert body["temperature"] == 0.5 and "fault" not in body and "seed" not in body
    assert body["thunderdome_sim"] == {
        "fault": "keepalive",
        "seed": 4,
        "time_scale": 0.1,
        "reply": "rendered for this lane",
    }


async def test_events_carry_the_arrival_time_of_their_completing_chunk() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

    def piece(data: bytes) -> bytes:
        return b"%x\r\n" % len(data) + data + b"\r\n"

    a = b'data: {"choices":[{"delta":{"content":"A"}}]}\n\ndata: {"choices":[{"delta":{"content":"B"}}]}\n\n'
    c = b'data: {"choices":[{"delta":{"content":"C"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    script = [head, piece(a + c[:20]), 0.3, piece(c[20:]), b"0\r\n\r\n"]
    async with RawServer(lambda seen: script) as server:
        out = await collect(make_backend(raw_spec("openai", server.url + "/v1")))
    assert_well_ordered(out)
    first_byte, d_a, d_b, d_c = out.events[1], *out.deltas
    assert first_byte.t == d_a.t == d_b.t  # one chunk, one stamp
    assert d_c.t - d_b.t >= 0.25  # "C" was completed by the chunk sent 0.3 s later
    assert out.ended.t == d_c.t


def test_take_parses_a_chunk_of_frames_and_stops_at_done() -> None:
    p = OpenAIParser("l", 1)
    out: list = []
    frames = [
        ("message", json.dumps({"choices": [{"index": 0, "delta": {"content": "a"}}]})),
        ("message", json.dumps({"choices": [{"index": 1, "delta": {"content": "other choice"}}, {"delta": {"content": "b"}}]})),
        ("message", "[DONE]"),
        ("message", "not json, but after the end: never parsed"),
    ]
    p.take(frames, 4.0, out)
    assert [(type(e).__name__, getattr(e, "text", None), e.t) for e in out] == [
        ("TokenDelta", "a", 4.0),
        ("TokenDelta", "b", 4.0),
        ("StreamEnded", None, 4.0),
    ]
    assert out[0] == TokenDelta(t=4.0, lane="l", text="a", channel="answer", turn=1)


def test_take_keeps_the_events_before_an_error_frame() -> None:
    p = OpenAIParser("l", 1)
    out: list = []
    frames = [("message", json.dumps({"choices": [{"delta": {"content": "a"}}]})), ("message", '{"error": {"message": "x"}}')]
    with pytest.raises(BackendError, match="server error mid-stream: x"):
        p.take(frames, 1.0, out)
    assert [e.text for e in out] == ["a"]


async def test_frames_before_junk_in_the_same_chunk_are_yielded_first() -> None:
    good = b'data: {"choices":[{"delta":{"content":"ok"}}]}\n\n'
    async with RawServer(lambda seen: chunked([good * 3 + b"data: {oops\n\n"])) as server:
        out = await collect(make_backend(raw_spec("openai", server.url + "/v1")))
    assert out.error is not None and out.error.reason.startswith("malformed JSON frame: {oops")
    assert out.answer == "okokok"
