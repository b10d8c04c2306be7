"""Ollama native chat streaming client (``POST /api/chat``, NDJSON).

Invariant: the line with ``done: true`` is the only clean end; its
``eval_count`` is the output token count (source ``server``) and
``eval_count / eval_duration`` (nanoseconds) the server's tokens/s. A body that
closes before it is a cut stream (BackendError). ``message.thinking`` is the
reasoning channel; ``message.tool_calls`` carry whole calls (arguments an
object), each started, its arguments and complete in the line that has it
(an id is made up when the server sends none). ``{"error": ...}`` lines (sent with HTTP 200) end the lane.
"""

from __future__ import annotations

import json
from typing import Any

from thunderdome.backends.base import ChatRequest
from thunderdome.backends.http import StreamingBackend
from thunderdome.backends.stream_parser import StreamParser, as_int, expect_object
from thunderdome.backends.messages import function_tools, ollama_messages
from thunderdome.backends.server_timings import from_ollama_done
from thunderdome.backends.sse import NDJSONDecoder, parse_json_frame
from thunderdome.core.events import Event, Usage

TOP_LEVEL_OPTIONS = frozenset({"think", "keep_alive", "format", "tools", "raw", "template"})
"""Backend options that go at the top of the body; the rest go in ``options``."""


class OllamaParser(StreamParser):
    end_name = "done:true"

    def one(self, text: str, t: float, out: list[Event]) -> None:
        obj = parse_json_frame(text)
        if not isinstance(obj, dict):
            expect_object(obj, text)
        if obj.get("error"):  # type: ignore[union-attr]
            raise self.server_error(obj)
        message = obj.get("message")  # type: ignore[union-attr]
        if isinstance(message, dict):
            thinking = message.get("thinking")
            if thinking:
                self.token(out, t, thinking, "reasoning")
            content = message.get("content")
            if content:
                self.token(out, t, content, "answer")
            calls = message.get("tool_calls")
            if calls and isinstance(calls, list):
                self._tool_calls(calls, t, out)
        if obj.get("done") is True:
            self.server_timings(out, t, from_ollama_done(obj))  # type: ignore[arg-type]
            count = as_int(obj.get("eval_count"))
            if count is not None:
                duration = obj.get("eval_duration")
                tps = None
                if isinstance(duration, (int, float)) and duration > 0:
                    tps = count / (duration / 1e9)
                out.append(
                    Usage(
                        t=t,
                        lane=self.lane,
                        turn=self.turn,
                        output_tokens=count,
                        input_tokens=as_int(obj.get("prompt_eval_count")),
                        source="server",
                        server_tps=tps,
                    )
                )
            # No done_reason means no finish reason (DESIGN.md: likely cut);
            # only very old Ollama builds (before done_reason existed) look so.
            if obj.get("done_reason"):
                self.finish_reason = str(obj["done_reason"])
            self.end(out, t)

    def _tool_calls(self, calls: list[Any], t: float, out: list[Event]) -> None:
        """Each call arrives whole: started, its arguments, complete, at once."""
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                continue
            key = len(self.calls)
            arguments = function.get("arguments")
            text = arguments if isinstance(arguments, str) else json.dumps(arguments if arguments is not None else {})
            self.call_start(out, t, key, call.get("id"), function.get("name"))  # type: ignore[union-attr]
            self.call_delta(out, t, key, text)
            self.call_done(out, t, key, text)


class OllamaBackend(StreamingBackend):
    """POST ``{url}/api/chat`` with ``stream: true``."""

    decoder_class = NDJSONDecoder
    parser_class = OllamaParser

    content_types = ("application/x-ndjson", "application/json", "text/plain")
    stream_name = "an NDJSON stream"
    accept = "application/x-ndjson"

    def warm_url(self) -> str | None:
        return f"{self.base_url}/api/version"

    def endpoint(self) -> str:
        return f"{self.base_url}/api/chat"

    def protocol_headers(self) -> dict[str, str]:
        key = self.spec.api_key()  # Ollama behind an authenticating proxy
        return {"authorization": f"Bearer {key}"} if key else {}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        options: dict[str, Any] = {"num_predict": request.max_tokens}
        body: dict[str, Any] = {"model": self.model, "messages": ollama_messages(request.messages)}
        if request.tools:
            body["tools"] = function_tools(request.tools)
        for key, value in self.options.items():
            if key == "options" and isinstance(value, dict):
                options.update(value)
            elif key in TOP_LEVEL_OPTIONS:
                body[key] = value
            else:
                options[key] = value
        body["options"] = options
        body["stream"] = True
        return self.sim_field(body, request)


__all__ = ["OllamaBackend", "OllamaParser"]
