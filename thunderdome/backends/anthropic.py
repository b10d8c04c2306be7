"""Anthropic Messages streaming client (``POST /v1/messages``, SSE).

Invariant: ``message_stop`` is the only clean end; ``usage.output_tokens`` in
``message_start`` / ``message_delta`` is cumulative, so each ``Usage`` event
carries the latest total (assigned, never added). ``thinking_delta`` is the
reasoning channel (its ``signature_delta`` is no output: a
``ReasoningSigned``, as is a ``redacted_thinking`` block); a ``tool_use``
block is a tool call, its ``input_json_delta`` pieces the arguments, its
``content_block_stop`` the call complete; ``ping`` events are keep-alives; an ``error`` event
(``overloaded_error``) ends the lane.
"""

from __future__ import annotations

import json
from typing import Any

from thunderdome.backends.base import ChatRequest
from thunderdome.backends.http import StreamingBackend
from thunderdome.backends.stream_parser import StreamParser, as_int, expect_object
from thunderdome.backends.messages import anthropic_messages, anthropic_tools
from thunderdome.backends.server_timings import from_anthropic_usage
from thunderdome.backends.sse import SSEDecoder, parse_json_frame
from thunderdome.core.events import Event, ReasoningSigned, Usage

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
                elif delta.get("type") == "input_json_delta":
                    self.call_delta(out, t, obj.get("index"), delta.get("partial_json"))
                elif delta.get("type") == "signature_delta":
                    self._signed(out, t, delta.get("signature"), redacted=False)
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
                elif block.get("type") == "redacted_thinking":
                    self._signed(out, t, block.get("data"), redacted=True)
                elif block.get("type") == "tool_use":
                    self.call_start(out, t, obj.get("index"), block.get("id"), block.get("name"))
                    if block.get("input"):  # a whole input up front (no deltas follow)
                        self.call_delta(out, t, obj.get("index"), json.dumps(block["input"]))
        elif kind == "content_block_stop":
            self.call_done(out, t, obj.get("index"))
        elif kind == "message_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                self.finish_reason = str(delta["stop_reason"])
            self._usage(out, t, obj.get("usage"))
        elif kind == "message_stop":
            self.end(out, t)

    def _signed(self, out: list[Event], t: float, signature: Any, *, redacted: bool) -> None:
        if signature and isinstance(signature, str):
            out.append(ReasoningSigned(t=t, lane=self.lane, turn=self.turn, signature=signature, redacted=redacted))

    def _usage(self, out: list[Event], t: float, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        self.server_timings(out, t, from_anthropic_usage(usage))
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
        system, messages = anthropic_messages(request.messages)
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": request.max_tokens}
        if system:
            body["system"] = system
        if request.tools:
            body["tools"] = anthropic_tools(request.tools)
        body.update(self.options)
        body["stream"] = True
        return self.sim_field(body, request)


__all__ = ["AnthropicBackend", "AnthropicParser"]
