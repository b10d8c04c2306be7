"""Frame encoders for OpenAI chat and Ollama (Anthropic: ``wire_anthropic.py``;
Responses: ``wire_responses.py``), text, reasoning and tool calls.

Invariant: an encoder only turns facts into bytes; it never sleeps, and the
only clock it reads is the wall clock for labels (``created``,
``created_at``); durations come from ``Stats``. Each method returns the exact
bytes of one or more complete frames (OpenAI ``data: {json}\\n\\n``, Ollama
``{json}\\n``, Anthropic ``event: X\\ndata: {json}\\n\\n``), shaped as the
real servers shape them, so the official client libraries parse the stream
unchanged. Per-token frames are cut from templates (the frame ``dumps``
makes with a marker for the text, split once per encoder) and are
byte-identical to ``dumps`` of the whole dict. The deliberately broken frames (``bad_json``, ``bad_utf8``,
``huge_prefix``) are the only exceptions, and they say so in their names.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from json.encoder import encode_basestring
from typing import Any, Callable, Mapping

from thunderdome.sim.tools import FINISH_TOOL, ToolCall


@dataclass
class Stats:
    """What the server actually did for one request (monotonic seconds)."""

    prompt_tokens: int
    t_arrival: float
    """The whole request had arrived (the schedule's base)."""
    t_received: float
    """The whole request was read."""
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    """Of ``prompt_tokens``, reported as served from cache."""
    t_first: float | None = None
    t_last: float | None = None
    t_end: float | None = None
    t_start: float = -1.0
    """A slot took the request (the schedule's base); ``t_arrival`` if it
    never waited (``sim/slots.py``: a server running ``slots`` at a time)."""

    def __post_init__(self) -> None:
        if self.t_start < 0:
            self.t_start = self.t_arrival

    def ns(self, a: float | None, b: float | None) -> int:
        return 0 if a is None or b is None else max(0, int(round((b - a) * 1e9)))


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def dumps_str(text: str) -> bytes:
    """``dumps(text)`` for a string, without the encoder set-up."""
    return encode_basestring(text).encode("utf-8")


_BAD_UTF8 = b"\xff\xfe\xc3"
_MARK = "\x00\x01MARK\x01\x00"
_MARK2 = "\x00\x02MARK\x02\x00"


_SLOTS = (_MARK, _MARK2)


def template(frame: Callable[..., bytes], slots: int = 1) -> list[bytes]:
    """The bytes of ``frame(marker, ...)`` (``slots`` string arguments, at most
    2) cut at each marker's JSON: the ``slots + 1`` pieces between which the
    JSON of the real strings goes, in order."""
    marks = _SLOTS[:slots]
    raw = frame(*marks)
    pieces: list[bytes] = []
    for mark in marks:
        head, sep, raw = raw.partition(dumps_str(mark))
        if not sep:
            raise AssertionError(f"marker {mark!r} not found once in the frame")
        pieces.append(head)
    return pieces + [raw]


class Encoder:
    """Shared interface. Subclasses fill in one protocol."""

    protocol = ""
    content_type = ""

    def __init__(
        self,
        model: str,
        *,
        reasoning_field: str = "reasoning_content",
        include_usage: bool = False,
        timings: bool = False,
        request_metrics: bool = False,
        quirks: frozenset[str] = frozenset(),
        tool_call: ToolCall | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.reasoning_field = reasoning_field
        self.include_usage = include_usage
        self.timings = timings
        self.request_metrics = request_metrics
        """Add vLLM's per-request ``metrics`` (``--enable-per-request-metrics``) to the usage chunk."""
        self.quirks = quirks
        self.tool_call = tool_call
        """The call whose argument text arrives as channel ``tool`` tokens."""
        self.request: Mapping[str, Any] = request or {}
        """The request body (the Responses encoder echoes parts of it)."""

    def head(self, stats: Stats) -> bytes:
        """Frames sent at request receipt, before the first token."""
        return b""

    def warm(self) -> None:
        """Build the per-token templates now (at set-up, before the first
        token is due) so the first token's write costs what later ones do."""

    def token(self, text: str, channel: str, finish: str | None, stats: Stats) -> bytes:
        """One token's frames; ``channel`` is ``reasoning``, ``answer`` or
        ``tool`` (a piece of ``tool_call.arguments``); ``finish`` on the last."""
        raise NotImplementedError

    def finish(self, finish_reason: str, stats: Stats) -> bytes:
        """Frames after the last token (usage, terminator)."""
        raise NotImplementedError

    def keepalive(self) -> bytes:
        raise NotImplementedError

    def error_frame(self, message: str) -> bytes:
        raise NotImplementedError

    def cut(self) -> bytes:
        """The terminator without any finish reason (a stream cut short)."""
        raise NotImplementedError

    def bad_json(self) -> bytes:
        """A frame whose JSON is truncated (deliberately malformed)."""
        raise NotImplementedError

    def bad_utf8(self) -> bytes:
        """A token frame whose content holds bytes that are not UTF-8."""
        return self._delta_frame(_MARK).replace(dumps(_MARK)[1:-1], _BAD_UTF8)

    def huge_prefix(self) -> bytes:
        """The start of a token frame whose content never ends."""
        frame = self._delta_frame(_MARK)
        return frame[: frame.index(dumps(_MARK)[1:-1])]

    def _delta_frame(self, text: str) -> bytes:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def whole(self, reasoning: str, answer: str, finish: str, stats: Stats) -> dict[str, Any]:
        """The non-streaming response object (with a tool call, ``answer`` is
        its argument text, possibly cut short)."""
        raise NotImplementedError


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
            usage: dict[str, Any] = {
                "prompt_tokens": stats.prompt_tokens,
                "completion_tokens": stats.completion_tokens,
                "total_tokens": stats.prompt_tokens + stats.completion_tokens,
            }
            if stats.reasoning_tokens:
                usage["completion_tokens_details"] = {"reasoning_tokens": stats.reasoning_tokens}
            if stats.cached_tokens:
                usage["prompt_tokens_details"] = {"cached_tokens": stats.cached_tokens}
            obj = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "thunderdome-sim",
                "choices": None if "choices_null" in self.quirks else [],
                "usage": usage,
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
        usage: dict[str, Any] = {
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "total_tokens": stats.prompt_tokens + stats.completion_tokens,
        }
        if stats.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": stats.reasoning_tokens}
        if stats.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": stats.cached_tokens}
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "thunderdome-sim",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
        if self.timings:
            obj["timings"] = self._timings(stats)
        return obj


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


def ollama_time() -> str:
    """Ollama's created_at: RFC 3339 UTC."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class OllamaEncoder(Encoder):
    protocol = "ollama"
    content_type = "application/x-ndjson"

    def __init__(self, model: str, **kw: Any) -> None:
        super().__init__(model, **kw)
        self._templates: dict[str, list[bytes]] = {}

    def _line(self, obj: dict[str, Any]) -> bytes:
        return dumps(obj) + b"\n"

    def _message(self, text: str, channel: str) -> dict[str, Any]:
        if channel == "answer":
            return {"role": "assistant", "content": text}
        return {"role": "assistant", "content": "", "thinking": text}

    def token(self, text: str, channel: str, finish: str | None, stats: Stats) -> bytes:
        if channel != "tool":
            return self._delta_frame_ch(text, channel)
        # Ollama generates a call's arguments on the schedule like any tokens
        # (they count in eval_count), but sends the call whole, once complete.
        if finish != FINISH_TOOL:
            return b""
        line = {"model": self.model, "created_at": ollama_time(), "message": self._call_message(), "done": False}
        return self._line(line)

    def _call_message(self) -> dict[str, Any]:
        call = self.tool_call
        assert call is not None
        calls = [{"function": {"name": call.name, "arguments": call.input}}]
        return {"role": "assistant", "content": "", "tool_calls": calls}

    def _delta_line(self, created_at: str, text: str, channel: str) -> bytes:
        return self._line(
            {"model": self.model, "created_at": created_at, "message": self._message(text, channel), "done": False}
        )

    def _template(self, channel: str) -> list[bytes]:
        parts = self._templates.get(channel)
        if parts is None:
            parts = self._templates[channel] = template(lambda a, b: self._delta_line(a, b, channel), 2)
        return parts

    def warm(self) -> None:
        self._template("answer")
        self._template("reasoning")

    def _delta_frame_ch(self, text: str, channel: str) -> bytes:
        parts = self._template(channel)
        return parts[0] + dumps_str(ollama_time()) + parts[1] + dumps_str(text) + parts[2]

    def _delta_frame(self, text: str) -> bytes:
        return self._delta_frame_ch(text, "answer")

    def _final(self, finish: str, stats: Stats) -> dict[str, Any]:
        reason = "stop" if finish == FINISH_TOOL else finish
        obj: dict[str, Any] = {"model": self.model, "created_at": ollama_time(), "done": True, "done_reason": reason}
        if "no_usage" not in self.quirks:
            obj.update(
                total_duration=stats.ns(stats.t_arrival, stats.t_end),
                load_duration=stats.ns(stats.t_arrival, stats.t_received),
                prompt_eval_count=stats.prompt_tokens,
                prompt_eval_duration=stats.ns(stats.t_received, stats.t_first),
                eval_count=stats.completion_tokens,
                eval_duration=stats.ns(stats.t_first, stats.t_last),
            )
        return obj

    def finish(self, finish_reason: str, stats: Stats) -> bytes:
        obj = self._final(finish_reason, stats)
        head = {"model": obj.pop("model"), "created_at": obj.pop("created_at")}
        return self._line({**head, "message": {"role": "assistant", "content": ""}, **obj})

    def keepalive(self) -> bytes:
        return b"\n"

    def error_frame(self, message: str) -> bytes:
        return self._line({"error": message})

    def cut(self) -> bytes:
        return self._line(
            {
                "model": self.model,
                "created_at": ollama_time(),
                "message": {"role": "assistant", "content": ""},
                "done": True,
            }
        )

    def bad_json(self) -> bytes:
        return b'{"model":"' + self.model.encode() + b'","message":{"role":"assistant","content":"oops"\n'

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": message}

    def whole(self, reasoning: str, answer: str, finish: str, stats: Stats) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        if self.tool_call is not None:
            message = self._call_message() if finish == FINISH_TOOL else {"role": "assistant", "content": ""}
        if reasoning:
            message["thinking"] = reasoning
        obj = self._final(finish, stats)
        return {"model": obj.pop("model"), "created_at": obj.pop("created_at"), "message": message, **obj}


__all__ = [
    "FINISH_TOOL",
    "Encoder",
    "OllamaEncoder",
    "OpenAIEncoder",
    "Stats",
    "dumps",
    "dumps_str",
    "ollama_time",
    "template",
]
