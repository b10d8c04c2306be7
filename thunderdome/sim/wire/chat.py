"""Frame encoder for OpenAI Chat Completions (``POST /v1/chat/completions``):
text, reasoning and tool calls, as ``data: {json}\\n\\n`` frames ending with
``data: [DONE]``.

Invariant: as in ``base.py``, an encoder only turns facts into bytes. The
frames are shaped as vLLM, llama.cpp and the hosted API shape them: a head
chunk with the role, one ``chat.completion.chunk`` per token (cut from a
template per channel), the finish reason on the last token's chunk or one of
its own (with llama.cpp's ``timings`` when served), then the usage chunk when
asked for (``include_usage``, or the ``choices_null`` quirk; never with
``no_usage``; with vLLM's ``metrics`` when served).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from thunderdome.sim.wire.base import Encoder, Stats, dumps, dumps_str, template


class OpenAIEncoder(Encoder):
    protocol = "openai"
    content_type = "text/event-stream"

    _ERRORS = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        404: ("invalid_request_error", "model_not_found"),
        429: ("rate_limit_error", "rate_limit_exceeded"),
        500: ("server_error", None),
        503: ("server_error", "service_unavailable"),
    }

    def __init__(self, model: str, **kw: Any) -> None:
        super().__init__(model, **kw)
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self.finish_sent = False
        self.call_started = False
        self._templates: dict[str, list[bytes]] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None, extra: dict[str, Any] | None = None) -> bytes:
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "thunderdome-sim",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if extra:
            obj.update(extra)
        return b"data: " + dumps(obj) + b"\n\n"

    def head(self, stats: Stats) -> bytes:
        return self._chunk({"role": "assistant", "content": ""}, None)

    def _timings(self, stats: Stats) -> dict[str, Any]:
        prompt_ms = stats.ns(stats.t_start, stats.t_first) / 1e6
        predicted_ms = stats.ns(stats.t_first, stats.t_last) / 1e6
        n = stats.completion_tokens
        return {
            "cache_n": stats.cached_tokens,
            "prompt_n": stats.prompt_tokens - stats.cached_tokens,
            "prompt_ms": prompt_ms,
            "prompt_per_token_ms": prompt_ms / max(1, stats.prompt_tokens),
            "prompt_per_second": stats.prompt_tokens / (prompt_ms / 1e3) if prompt_ms else 0.0,
            "predicted_n": n,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": predicted_ms / max(1, n),
            "predicted_per_second": n / (predicted_ms / 1e3) if predicted_ms else 0.0,
        }

    def _delta(self, channel: str, text: str) -> dict[str, Any]:
        if channel == "tool":
            return {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}
        return {"content" if channel == "answer" else self.reasoning_field: text}

    def _template(self, channel: str) -> list[bytes]:
        parts = self._templates.get(channel)
        if parts is None:
            parts = self._templates[channel] = template(lambda m: self._chunk(self._delta(channel, m), None))
        return parts

    def warm(self) -> None:
        self._template("answer")
        self._template("reasoning")
        if self.tool_call is not None:
            self._template("tool")

    def _call_head(self) -> bytes:
        """The tool call's first chunk: id, type and name, no arguments yet."""
        call = self.tool_call
        assert call is not None
        self.call_started = True
        fn = {"name": call.name, "arguments": ""}
        opened = {"index": 0, "id": "call_" + call.id_hex, "type": "function", "function": fn}
        return self._chunk({"tool_calls": [opened]}, None)

    def token(self, text: str, channel: str, finish: str | None, stats: Stats) -> bytes:
        head = self._call_head() if channel == "tool" and not self.call_started else b""
        if finish is None:
            parts = self._template(channel)
            return head + parts[0] + dumps_str(text) + parts[1]
        self.finish_sent = True
        extra = {"timings": self._timings(stats)} if self.timings else None
        return head + self._chunk(self._delta(channel, text), finish, extra)

    def _delta_frame(self, text: str) -> bytes:
        return self._chunk({"content": text}, None)

    def finish(self, finish_reason: str, stats: Stats) -> bytes:
        out = b""
        if not self.finish_sent:
            self.finish_sent = True
            extra = {"timings": self._timings(stats)} if self.timings else None
            out += self._chunk({}, finish_reason, extra)
        usage_wanted = self.include_usage or "choices_null" in self.quirks
        if usage_wanted and "no_usage" not in self.quirks:
            obj = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "thunderdome-sim",
                "choices": None if "choices_null" in self.quirks else [],
                "usage": chat_usage(stats),
            }
            if self.request_metrics:
                obj["metrics"] = vllm_metrics(stats)
            out += b"data: " + dumps(obj) + b"\n\n"
        return out + b"data: [DONE]\n\n"

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"

    def error_frame(self, message: str) -> bytes:
        err = {"error": {"message": message, "type": "server_error", "param": None, "code": 500}}
        return b"data: " + dumps(err) + b"\n\n" + b"data: [DONE]\n\n"

    def cut(self) -> bytes:
        return b"data: [DONE]\n\n"

    def bad_json(self) -> bytes:
        head = b'data: {"id":"' + self.id.encode() + b'","object":"chat.completion.chunk",'
        return head + b'"choices":[{"index":0,"delta":{"content":"oops"\n\n'

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind, code = self._ERRORS.get(status, ("server_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def whole(self, reasoning: str, answer: str, finish: str, stats: Stats) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        if self.tool_call is not None:
            fn = {"name": self.tool_call.name, "arguments": answer}
            message = {"role": "assistant", "content": None}
            message["tool_calls"] = [{"id": "call_" + self.tool_call.id_hex, "type": "function", "function": fn}]
        if reasoning:
            message[self.reasoning_field] = reasoning
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "thunderdome-sim",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": chat_usage(stats),
        }
        if self.timings:
            obj["timings"] = self._timings(stats)
        return obj


def chat_usage(stats: Stats) -> dict[str, Any]:
    """The ``usage`` object of a chat completion (streamed or whole)."""
    usage: dict[str, Any] = {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    }
    if stats.reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": stats.reasoning_tokens}
    if stats.cached_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": stats.cached_tokens}
    return usage


def vllm_metrics(stats: Stats) -> dict[str, Any]:
    """vLLM's per-request ``metrics`` object: the queue, then from being
    scheduled to the first token, then decoding (ms)."""
    generation_ms = stats.ns(stats.t_first, stats.t_last) / 1e6
    n = stats.completion_tokens
    return {
        "time_to_first_token_ms": stats.ns(stats.t_start, stats.t_first) / 1e6,
        "generation_time_ms": generation_ms,
        "queue_time_ms": stats.ns(stats.t_arrival, stats.t_start) / 1e6,
        "mean_itl_ms": generation_ms / (n - 1) if n > 1 else None,
    }



__all__ = ["OpenAIEncoder", "chat_usage", "vllm_metrics"]
