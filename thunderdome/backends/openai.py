"""OpenAI chat-completions streaming client (vLLM, llama.cpp, LM Studio,
SGLang, Ollama /v1, hosted APIs).

Invariant: ``data: [DONE]`` is the only clean end; a body that closes without
it is a cut stream (BackendError), and a stream that ends with ``[DONE]`` but
never named a ``finish_reason`` ends with ``StreamEnded(finish_reason=None)``.
Reasoning arrives as ``delta.reasoning_content`` or ``delta.reasoning``; usage
(``completion_tokens``) and llama.cpp ``timings`` become ``Usage`` events.
Tool calls arrive as ``delta.tool_calls[i]`` fragments (id and name first,
then ``function.arguments`` pieces); a call is complete when a later call
starts, at the ``finish_reason`` (``tool_calls``) or at ``[DONE]``, never
at a cut.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from thunderdome.backends.base import ChatRequest
from thunderdome.backends.http import StreamingBackend
from thunderdome.backends.stream_parser import StreamParser, as_int, as_number, expect_object
from thunderdome.backends.messages import function_tools, openai_messages
from thunderdome.backends.server_timings import from_llama_timings, from_openai_usage, from_vllm_metrics, merged
from thunderdome.backends.sse import SSEDecoder, parse_json_frame
from thunderdome.core.events import Event, Usage

OBFUSCATING_HOSTS = frozenset({"api.openai.com"})
"""Servers that pad every delta with obfuscation unless asked not to (and
accept ``stream_options.include_obfuscation``; other chat-completions servers
may reject the field, so it goes only here)."""


class OpenAIParser(StreamParser):
    end_name = "[DONE]"

    def __init__(self, lane: str, turn: int) -> None:
        super().__init__(lane, turn)
        self._server_tps: float | None = None

    def one(self, frame: tuple[str, str], t: float, out: list[Event]) -> None:
        event, data = frame
        if "[DONE]" in data and data.strip() == "[DONE]":
            self.calls_done(out, t)
            self.end(out, t)
            return
        obj = parse_json_frame(data)
        if not isinstance(obj, dict):
            expect_object(obj, data)
        if obj.get("error") or event == "error":  # type: ignore[union-attr]
            raise self.server_error(obj)
        choices = obj.get("choices")  # type: ignore[union-attr]
        if choices and isinstance(choices, list):
            choice = choices[0]
            if not (isinstance(choice, dict) and choice.get("index", 0) == 0):
                choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), choice)
            if isinstance(choice, dict):
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                    if reasoning:
                        self.token(out, t, reasoning, "reasoning")
                    content = delta.get("content")
                    if content:
                        self.token(out, t, content, "answer")
                    calls = delta.get("tool_calls")
                    if calls and isinstance(calls, list):
                        self._tool_calls(calls, t, out)
                if choice.get("finish_reason"):
                    self.finish_reason = str(choice["finish_reason"])
                    self.calls_done(out, t)
        if "usage" in obj or "timings" in obj:  # type: ignore[operator]
            self._usage(obj, t, out)  # type: ignore[arg-type]

    def _tool_calls(self, calls: list[Any], t: float, out: list[Event]) -> None:
        """``delta.tool_calls``: fragments keyed by ``index``; the first of a
        call has its id and name. Calls stream one after another, so a call
        is complete when a later one starts (or at the finish reason)."""
        for call in calls:
            if not isinstance(call, dict):
                continue
            key = call.get("index", 0)
            function = call.get("function")
            function = function if isinstance(function, dict) else {}
            if key not in self.calls:
                self.calls_done(out, t)
            self.call_start(out, t, key, call.get("id"), function.get("name"))
            self.call_delta(out, t, key, function.get("arguments"))

    def _usage(self, obj: dict[str, Any], t: float, out: list[Event]) -> None:
        timings = obj.get("timings")
        usage = obj.get("usage")
        if timings is None and usage is None:
            return
        said = merged(from_llama_timings(timings), from_vllm_metrics(obj.get("metrics")), from_openai_usage(usage))
        self.server_timings(out, t, said)
        if isinstance(timings, dict):
            tps = as_number(timings.get("predicted_per_second"))
            if tps is not None:
                self._server_tps = tps
        completion = as_int(usage.get("completion_tokens")) if isinstance(usage, dict) else None
        if isinstance(usage, dict) and completion is not None:
            out.append(
                Usage(
                    t=t,
                    lane=self.lane,
                    turn=self.turn,
                    output_tokens=completion,
                    input_tokens=as_int(usage.get("prompt_tokens")),
                    source="usage",
                    server_tps=self._server_tps,
                )
            )
        elif isinstance(timings, dict) and as_int(timings.get("predicted_n")) is not None:
            out.append(
                Usage(
                    t=t,
                    lane=self.lane,
                    turn=self.turn,
                    output_tokens=as_int(timings.get("predicted_n")),
                    input_tokens=as_int(timings.get("prompt_n")),
                    source="server",
                    server_tps=self._server_tps,
                )
            )


class OpenAIStyleBackend(StreamingBackend):
    """What OpenAI's APIs share: SSE, a bearer key, ``url`` ending in ``/v1``
    (warmed with ``GET /v1/models``). Subclasses name the endpoint and body."""

    decoder_class = SSEDecoder

    def warm_url(self) -> str | None:
        return f"{self.base_url}/models"

    def protocol_headers(self) -> dict[str, str]:
        key = self.spec.api_key()
        return {"authorization": f"Bearer {key}"} if key else {}


class OpenAIBackend(OpenAIStyleBackend):
    """POST ``{url}/chat/completions`` (``url`` ends in ``/v1``)."""

    parser_class = OpenAIParser

    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": openai_messages(request.messages),
            "max_tokens": request.max_tokens,
            "stream_options": {"include_usage": True},
        }
        if urlsplit(self.base_url).hostname in OBFUSCATING_HOSTS:
            body["stream_options"]["include_obfuscation"] = False
        if request.tools:
            body["tools"] = function_tools(request.tools)
        body.update(self.options)
        body["stream"] = True
        return self.sim_field(body, request)


__all__ = ["OpenAIBackend", "OpenAIParser"]
