"""OpenAI Responses API streaming client (``POST {url}/responses``, SSE).

Invariant: ``response.completed``, ``response.incomplete`` and
``response.failed`` are the only ends (there is no ``[DONE]``); a body that
closes before one is a cut stream (BackendError). ``response.created`` and
``response.in_progress`` only say the request was accepted: they are never
output. ``response.output_text.delta`` is the answer,
``response.reasoning_text.delta`` and ``response.reasoning_summary_text.delta``
the reasoning; a ``function_call`` output item is a tool call, its
``response.function_call_arguments.delta`` pieces the arguments, its
``.done`` (or the item's ``output_item.done``) the call complete. Usage comes
from the final response (and llama-server's ``timings``, which it puts beside
the response in the end event, the server tok/s). ``response.failed`` and ``error`` end the lane with
the server's message; ``response.incomplete`` for ``max_output_tokens`` is
finish reason ``length``; a completed response that called tools is
``tool_calls``, else ``stop``. Obfuscation padding is turned off in the
request (``stream_options.include_obfuscation: false``).
"""

from __future__ import annotations

from typing import Any

from thunderdome.backends.base import ChatRequest
from thunderdome.backends.stream_parser import StreamParser, as_int, as_number, expect_object
from thunderdome.backends.openai import OpenAIStyleBackend
from thunderdome.backends.messages import responses_input, responses_tools
from thunderdome.backends.server_timings import from_llama_timings, from_responses_usage, from_vllm_metrics, merged
from thunderdome.backends.sse import parse_json_frame
from thunderdome.core.events import Event, Usage

_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_REASONING = frozenset({"response.reasoning_text.delta", "response.reasoning_summary_text.delta"})


class ResponsesParser(StreamParser):
    end_name = "response.completed"

    def one(self, frame: tuple[str, str], t: float, out: list[Event]) -> None:
        event, data = frame
        obj = expect_object(parse_json_frame(data), data)
        kind = obj.get("type") or event
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":
            self.token(out, t, obj.get("delta"), "answer")
        elif kind == "response.function_call_arguments.delta":
            self.call_delta(out, t, obj.get("item_id") or obj.get("output_index"), obj.get("delta"))
        elif kind in _REASONING:
            self.token(out, t, obj.get("delta"), "reasoning")
        elif kind == "response.output_item.added":
            self._item(obj, t, out, done=False)
        elif kind == "response.function_call_arguments.done":
            self.call_done(out, t, obj.get("item_id") or obj.get("output_index"), obj.get("arguments"))
        elif kind == "response.output_item.done":
            self._item(obj, t, out, done=True)
        elif kind == "error" or event == "error":
            raise self.server_error(obj)
        elif kind in _ENDS:
            self._end(kind, obj, t, out)

    def _item(self, obj: dict[str, Any], t: float, out: list[Event], *, done: bool) -> None:
        item = obj.get("item")
        if not (isinstance(item, dict) and item.get("type") == "function_call"):
            return
        key = item.get("id") or obj.get("output_index")
        self.call_start(out, t, key, item.get("call_id"), item.get("name"))
        if done:
            self.call_done(out, t, key, item.get("arguments"))
        else:  # arguments already there (normally empty: deltas follow)
            self.call_delta(out, t, key, item.get("arguments"))

    def _end(self, kind: str, obj: dict[str, Any], t: float, out: list[Event]) -> None:
        response = obj.get("response")
        response = response if isinstance(response, dict) else {}
        if kind == "response.failed":
            raise self.server_error(response if response.get("error") else obj)
        self.calls_done(out, t)
        usage = response.get("usage")
        timings = obj.get("timings")  # llama-server's, beside the response object
        said = merged(from_llama_timings(timings), from_vllm_metrics(response.get("metrics")), from_responses_usage(usage))
        self.server_timings(out, t, said)
        tps = as_number(timings.get("predicted_per_second")) if isinstance(timings, dict) else None
        if isinstance(usage, dict) and as_int(usage.get("output_tokens")) is not None:
            out.append(
                Usage(
                    t=t,
                    lane=self.lane,
                    turn=self.turn,
                    output_tokens=usage["output_tokens"],
                    input_tokens=as_int(usage.get("input_tokens")),
                    server_tps=tps,
                )
            )
        if kind == "response.incomplete":
            details = response.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            self.finish_reason = "length" if reason in (None, "max_output_tokens") else str(reason)
        else:
            self.finish_reason = "tool_calls" if self.calls else "stop"
        self.end(out, t)


class ResponsesBackend(OpenAIStyleBackend):
    """POST ``{url}/responses`` (``url`` ends in ``/v1``, as for the openai kind)."""

    parser_class = ResponsesParser

    def endpoint(self) -> str:
        return f"{self.base_url}/responses"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "input": responses_input(request.messages),
            "max_output_tokens": request.max_tokens,
            "store": False,
            "stream_options": {"include_obfuscation": False},
        }
        if request.tools:
            body["tools"] = responses_tools(request.tools)
        body.update(self.options)
        body["stream"] = True
        return self.sim_field(body, request)


__all__ = ["ResponsesBackend", "ResponsesParser"]
