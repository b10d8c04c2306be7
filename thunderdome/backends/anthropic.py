"""Anthropic Messages streaming client (``POST /v1/messages``, SSE).

Invariant: ``message_stop`` is the only clean end; ``usage.output_tokens`` in
``message_start`` / ``message_delta`` is cumulative, so each ``Usage`` event
carries the latest total (assigned, never added). ``thinking_delta`` is the
reasoning channel; ``ping`` events are keep-alives; an ``error`` event
(``overloaded_error``) ends the lane.
"""

from __future__ import annotations

from typing import Any

from thunderdome.backends.base import ChatRequest
from thunderdome.backends.http import StreamParser, StreamingBackend, as_int, expect_object
from thunderdome.backends.sse import SSEDecoder, parse_json_frame
from thunderdome.events import Event, Usage

API_VERSION = "2023-06-01"


class AnthropicParser(StreamParser):
    end_name = "message_stop"

    def __init__(self, lane: str, turn: int) -> None:
        super().__init__(lane, turn)
        self._input: int | None = None

    def one(self, frame: tuple[str, str], t: float, out: list[Event]) -> None:
        event, data = frame
        if event == "ping":
            return
        obj = expect_object(parse_json_frame(data), data)
        kind = obj.get("type") or event
        if kind == "error" or event == "error":
            raise self.server_error(obj)
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict):
                if delta.get("type") == "text_delta":
                    self.token(out, t, delta.get("text"), "answer")
                elif delta.get("type") == "thinking_delta":
                    self.token(out, t, delta.get("thinking"), "reasoning")
        elif kind == "message_start":
            message = obj.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            # message_start's output_tokens is a placeholder (1); only the input
            # count is real here. A stream cut before message_delta keeps its
            # delta count (estimate) instead of a bogus "1 token".
            if isinstance(usage, dict):
                self._usage(out, t, {k: v for k, v in usage.items() if k != "output_tokens"})
        elif kind == "content_block_start":
            block = obj.get("content_block")
            if isinstance(block, dict):
                if block.get("type") == "text":
                    self.token(out, t, block.get("text"), "answer")
                elif block.get("type") == "thinking":
                    self.token(out, t, block.get("thinking"), "reasoning")
        elif kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                self.finish_reason = str(delta["stop_reason"])
            self._usage(out, t, obj.get("usage"))
        elif kind == "message_stop":
            self.end(out, t)

    def _usage(self, out: list[Event], t: float, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        if as_int(usage.get("input_tokens")) is not None:
            self._input = usage["input_tokens"]
        output = as_int(usage.get("output_tokens"))
        if output is not None:
            out.append(Usage(t=t, lane=self.lane, turn=self.turn, output_tokens=output, input_tokens=self._input))


class AnthropicBackend(StreamingBackend):
    """POST ``{url}/v1/messages``; system messages go to ``system``."""

    decoder_class = SSEDecoder
    parser_class = AnthropicParser

    def warm_url(self) -> str | None:
        return f"{self.endpoint().rsplit('/messages', 1)[0]}/models"

    def endpoint(self) -> str:
        base = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        return f"{base}/v1/messages"

    def protocol_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        key = self.spec.api_key()
        if key:
            headers["x-api-key"] = key
        return headers

    def body(self, request: ChatRequest) -> dict[str, Any]:
        system = "\n\n".join(m["content"] for m in request.messages if m.get("role") == "system")
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": m["role"], "content": m["content"]} for m in request.messages if m.get("role") != "system"
            ],
            "max_tokens": request.max_tokens,
        }
        if system:
            body["system"] = system
        body.update(self.options)
        body["stream"] = True
        return self.sim_field(body, request)


__all__ = ["AnthropicBackend", "AnthropicParser"]
