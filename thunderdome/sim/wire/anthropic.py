"""Frame encoder for the Anthropic Messages SSE protocol.

Invariant: as in ``base.py``, an encoder only turns facts into bytes. The
content blocks follow the real API's order: a ``thinking`` block (closed by
a ``signature_delta``: ``sim.thinking``'s signature over its text) before the ``text`` block or the ``tool_use`` block
(its input streamed as ``input_json_delta``, ending with ``stop_reason:
tool_use``), one ``ping`` after the first
``content_block_start``, and ``message_delta`` carrying the *cumulative*
``usage.output_tokens``.
"""

from __future__ import annotations

import secrets
from typing import Any

from thunderdome.sim.thinking import Signer, sign
from thunderdome.sim.tools import FINISH_TOOL
from thunderdome.sim.wire.base import Encoder, Stats, dumps, dumps_str, template


class AnthropicEncoder(Encoder):
    protocol = "anthropic"
    content_type = "text/event-stream"

    _ERRORS = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        500: "api_error",
        503: "overloaded_error",
        529: "overloaded_error",
    }
    _STOP = {"stop": "end_turn", "length": "max_tokens", FINISH_TOOL: "tool_use"}
    _KINDS = {"answer": "text", "reasoning": "thinking", "tool": "tool_use"}
    """Stream channel -> content block type."""

    def __init__(self, model: str, **kw: Any) -> None:
        super().__init__(model, **kw)
        self.id = "msg_" + secrets.token_hex(12)
        self.index = -1
        self.block: str | None = None  # "thinking" | "text" | "tool_use" while a block is open
        self._templates: dict[tuple[int, str], list[bytes]] = {}
        self._signer = Signer()
        """Signs the open thinking block's text as it streams."""

    @staticmethod
    def _event(name: str, obj: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"

    @staticmethod
    def _input_usage(stats: Stats) -> dict[str, int]:
        """Input counts: a cached part is ``cache_read_input_tokens``, not ``input_tokens``."""
        usage = {"input_tokens": stats.prompt_tokens - stats.cached_tokens}
        if stats.cached_tokens:
            usage["cache_read_input_tokens"] = stats.cached_tokens
        return usage

    def head(self, stats: Stats) -> bytes:
        message = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._input_usage(stats) | {"output_tokens": 1},
        }
        return self._event("message_start", {"type": "message_start", "message": message})

    def _close_block(self) -> bytes:
        if self.block is None:
            return b""
        out = b""
        if self.block == "thinking":
            delta = {"type": "signature_delta", "signature": self._signer.signature()}
            self._signer = Signer()
            frame = {"type": "content_block_delta", "index": self.index, "delta": delta}
            out += self._event("content_block_delta", frame)
        self.block = None
        return out + self._event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def _open_block(self, kind: str) -> bytes:
        out = self._close_block()
        self.index += 1
        self.block = kind
        block: dict[str, Any] = {"type": "text", "text": ""}
        if kind == "thinking":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "tool_use":
            block = self._tool_block({})
        frame = {"type": "content_block_start", "index": self.index, "content_block": block}
        out += self._event("content_block_start", frame)
        if self.index == 0:
            out += self._event("ping", {"type": "ping"})
        return out

    def _tool_block(self, tool_input: dict[str, Any]) -> dict[str, Any]:
        call = self.tool_call
        assert call is not None
        return {"type": "tool_use", "id": "toolu_" + call.id_hex, "name": call.name, "input": tool_input}

    def token(self, text: str, channel: str, finish: str | None, stats: Stats) -> bytes:
        kind = self._KINDS[channel]
        out = self._open_block(kind) if self.block != kind else b""
        if kind == "thinking":
            self._signer.update(text)
        return out + self._delta(text, kind)

    def _template(self, index: int, kind: str) -> list[bytes]:
        parts = self._templates.get((index, kind))
        if parts is None:
            parts = self._templates[(index, kind)] = template(lambda m: self._delta_dict(m, kind, index))
        return parts

    def warm(self) -> None:
        self._template(0, "text")
        self._template(0, "thinking")
        if self.tool_call is not None:
            self._template(0, "tool_use")
            self._template(1, "tool_use")

    def _delta(self, text: str, kind: str) -> bytes:
        parts = self._template(max(0, self.index), kind)
        return parts[0] + dumps_str(text) + parts[1]

    def _delta_dict(self, text: str, kind: str, index: int) -> bytes:
        if kind == "text":
            delta = {"type": "text_delta", "text": text}
        elif kind == "tool_use":
            delta = {"type": "input_json_delta", "partial_json": text}
        else:
            delta = {"type": "thinking_delta", "thinking": text}
        frame = {"type": "content_block_delta", "index": index, "delta": delta}
        return self._event("content_block_delta", frame)

    def _delta_frame(self, text: str) -> bytes:
        return self._delta(text, self.block or "text")

    def finish(self, finish_reason: str, stats: Stats) -> bytes:
        out = self._close_block()
        delta = {"stop_reason": self._STOP.get(finish_reason, finish_reason), "stop_sequence": None}
        usage = {"output_tokens": stats.completion_tokens}
        out += self._event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        return out + self._event("message_stop", {"type": "message_stop"})

    def keepalive(self) -> bytes:
        return self._event("ping", {"type": "ping"})

    def error_frame(self, message: str) -> bytes:
        return self._event("error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})

    def cut(self) -> bytes:
        return self._event("message_stop", {"type": "message_stop"})

    def bad_json(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"oops"\n\n'

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self._ERRORS.get(status, "api_error"), "message": message}}

    def whole(self, reasoning: str, answer: str, finish: str, stats: Stats) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reasoning:
            content.append({"type": "thinking", "thinking": reasoning, "signature": sign(reasoning)})
        if self.tool_call is None:
            content.append({"type": "text", "text": answer})
        else:
            content.append(self._tool_block(self.tool_call.input if finish == FINISH_TOOL else {}))
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self._STOP.get(finish, finish),
            "stop_sequence": None,
            "usage": self._input_usage(stats) | {"output_tokens": stats.completion_tokens},
        }


__all__ = ["AnthropicEncoder"]
