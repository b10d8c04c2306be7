"""Ollama native client: parser on hand-made lines, then real loopback HTTP
against the emulator and a scripted raw server."""

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
from thunderdome.backends.ollama import OllamaBackend, OllamaParser
from thunderdome.backends.sse import FrameError
from thunderdome.core.events import StreamEnded, TokenDelta, Usage

pytestmark = pytest.mark.both_loops  # every test on the default loop and on the race loop

__all__ = ["emulator"]

REPLY = "Hello wörld 😀 — the quick brown fox jumps over the lazy dog."


def lines(parser: OllamaParser, *objs: object) -> list:
    body = "".join(f"{obj if isinstance(obj, str) else json.dumps(obj)}\n" for obj in objs)
    return take_chunk(parser, OllamaBackend.decoder_class(), body.encode(), 2.0)


# --- parser ------------------------------------------------------------------------------


def test_thinking_content_and_final_counts() -> None:
    p = OllamaParser("l", 1)
    out = lines(
        p,
        {"message": {"role": "assistant", "content": "", "thinking": "hmm"}, "done": False},
        {"message": {"role": "assistant", "content": ""}, "done": False},
        {"message": {"role": "assistant", "content": "Hi there"}, "done": False},
        {
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "eval_count": 50,
            "eval_duration": 2_000_000_000,
            "prompt_eval_count": 12,
        },
    )
    assert [(e.text, e.channel) for e in out if isinstance(e, TokenDelta)] == [("hmm", "reasoning"), ("Hi there", "answer")]
    assert [e for e in out if isinstance(e, Usage)] == [
        Usage(t=2.0, lane="l", turn=1, output_tokens=50, input_tokens=12, source="server", server_tps=25.0)
    ]
    assert out[-1] == StreamEnded(t=2.0, lane="l", turn=1, finish_reason="stop")


def test_done_without_counts_or_reason() -> None:
    p = OllamaParser("l", 1)
    out = lines(p, {"message": {"content": "x"}, "done": False}, {"done": True})
    assert [type(e).__name__ for e in out] == ["TokenDelta", "StreamEnded"]
    assert out[-1].finish_reason is None


def test_error_line_and_junk() -> None:
    with pytest.raises(BackendError, match=r"^server error mid-stream: model crashed$"):
        lines(OllamaParser("l", 1), {"error": "model crashed"})
    with pytest.raises(FrameError, match="malformed JSON frame"):
        lines(OllamaParser("l", 1), '{"message": ')
    with pytest.raises(FrameError, match="malformed JSON frame"):
        lines(OllamaParser("l", 1), "[1, 2]")


# --- against the emulator ---------------------------------------------------------------------
# (what every protocol does alike, quirks, max tokens, reasoning, a cut stream: test_backend_protocols.py)


async def test_full_reply_server_counts_and_order(emulator) -> None:
    out = await collect(sim_backend(emulator.url, "ollama", {"reply": REPLY}))
    assert_well_ordered(out)
    assert out.answer == REPLY and out.reasoning == ""
    assert out.ended.finish_reason == "stop"
    (usage,) = out.usages
    assert usage.source == "server" and usage.output_tokens == len(out.deltas)
    assert usage.server_tps is not None and usage.server_tps > 0


# --- against a scripted raw server -------------------------------------------------------------


async def test_request_shape_and_options_placement() -> None:
    body_lines = [
        b'{"message":{"role":"assistant","content":"ok"},"done":false}\n',
        b"\n",
        b'{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","eval_count":1,'
        b'"eval_duration":1000}\n',
    ]
    async with RawServer(lambda seen: chunked(body_lines, "application/x-ndjson")) as server:
        spec = raw_spec("ollama", server.url + "/", options={"temperature": 0.1, "think": True, "keep_alive": "5m"})
        backend = make_backend(spec, headers={"x-thunderdome-tag": "t"})
        assert isinstance(backend, OllamaBackend)
        out = await collect(backend, request(max_tokens=17))
    assert_well_ordered(out)
    assert out.answer == "ok" and out.usages[0].server_tps == pytest.approx(1e6)
    (seen,) = server.seen
    assert seen.path == "/api/chat"
    body = json.loads(seen.body)
    assert body["stream"] is True and body["model"] == "m"
    assert body["options"] == {"num_predict": 17, "temperature": 0.1}
    assert body["think"] is True and body["keep_alive"] == "5m"
    assert "thunderdome_sim" not in body
