"""Frame encoder for the OpenAI Responses API (``POST /v1/responses``).

Invariant: as in ``base.py``, an encoder only turns facts into bytes. Every
event is ``event: TYPE`` + ``data: {json}`` with a ``sequence_number`` one
higher than the last; ``response.created`` and ``response.in_progress`` go
out at receipt; each output item (a ``reasoning`` item, then a ``message`` or
one ``function_call``) opens with ``response.output_item.added`` (and its
part's ``added``), streams deltas, and closes with its ``done`` events before
the next item opens; the stream ends with ``response.completed``,
``response.incomplete`` (cut by ``max_output_tokens``) or ``response.failed``
(``error_frame``), whose response object holds every output item and the
usage (``null`` with ``no_usage``). There is no ``[DONE]``. Deltas carry an
``obfuscation`` pad unless ``stream_options.include_obfuscation`` is false.
Reasoning streams as ``reasoning_text`` deltas, or as
``reasoning_summary_text`` deltas when the request asks ``reasoning.summary``.
``cut`` closes the open item and ends the body without a terminal event.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from thunderdome.sim.wire.base import Encoder, Stats, dumps, dumps_str, template
from thunderdome.sim.wire.chat import OpenAIEncoder

_SEQ = 987654321987654321
"""A sequence number no stream reaches: the slot for the real one in a template."""
_PAD = 16
"""Deltas are padded with ``obfuscation`` characters up to this many (at least one)."""

_DELTA_EVENT = {
    "message": "response.output_text.delta",
    "reasoning": "response.reasoning_text.delta",
    "summary": "response.reasoning_summary_text.delta",
    "function_call": "response.function_call_arguments.delta",
}
_ITEM_KIND = {"answer": "message", "tool": "function_call"}
"""Stream channel -> output item kind (reasoning: ``reasoning`` or ``summary``)."""


class ResponsesEncoder(Encoder):
    protocol = "responses"
    content_type = "text/event-stream"
    _ERRORS = OpenAIEncoder._ERRORS
    error_body = OpenAIEncoder.error_body
    """HTTP errors are shaped as for chat completions: ``{"error": {...}}``."""

    def __init__(self, model: str, **kw: Any) -> None:
        super().__init__(model, **kw)
        self.id = "resp_" + secrets.token_hex(12)
        self.created_at = int(time.time())
        self.seq = 0
        reasoning = self.request.get("reasoning")
        self.summary = isinstance(reasoning, dict) and reasoning.get("summary") is not None
        opts = self.request.get("stream_options")
        self.obfuscate = not (isinstance(opts, dict) and opts.get("include_obfuscation") is False)
        self._pad = secrets.token_hex(_PAD)
        prefixes = {"message": "msg_", "reasoning": "rs_", "summary": "rs_", "function_call": "fc_"}
        self.item_ids = {kind: prefix + secrets.token_hex(12) for kind, prefix in prefixes.items()}
        self.output: list[dict[str, Any]] = []
        """Closed output items, for the final response object."""
        self.kind: str | None = None
        """The open item's kind: ``message``, ``reasoning``, ``summary`` or ``function_call``."""
        self.text: list[str] = []
        """The open item's text so far."""
        self._templates: dict[tuple[str, int], list[bytes]] = {}

    # -- frames ------------------------------------------------------------------

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        obj = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + dumps(obj) + b"\n\n"

    def _delta_fields(self, kind: str, index: int, delta: str, pad: str | None) -> dict[str, Any]:
        fields: dict[str, Any] = {"item_id": self.item_ids[kind], "output_index": index}
        if kind == "summary":
            fields["summary_index"] = 0
        elif kind != "function_call":
            fields["content_index"] = 0
        fields["delta"] = delta
        if kind == "message":
            fields["logprobs"] = []
        if pad is not None:
            fields["obfuscation"] = pad
        return fields

    def _template(self, kind: str, index: int) -> list[bytes]:
        """Pieces between which go: the sequence number, the delta's JSON, the pad's JSON."""
        parts = self._templates.get((kind, index))
        if parts is None:
            name = _DELTA_EVENT[kind]

            def frame(delta: str, pad: str | None = None) -> bytes:
                obj = {"type": name, "sequence_number": _SEQ, **self._delta_fields(kind, index, delta, pad)}
                return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"

            parts = template(frame, 2 if self.obfuscate else 1)
            head, sep, rest = parts[0].partition(str(_SEQ).encode())
            assert sep, "sequence marker not found"
            parts = self._templates[(kind, index)] = [head, rest, *parts[1:]]
        return parts

    def _delta(self, text: str) -> bytes:
        assert self.kind is not None
        parts = self._template(self.kind, len(self.output))
        out = parts[0] + str(self.seq).encode() + parts[1] + dumps_str(text) + parts[2]
        self.seq += 1
        if self.obfuscate:
            start = len(text) % _PAD
            out += dumps_str(self._pad[start : start + max(1, _PAD - len(text))]) + parts[3]
        return out

    def warm(self) -> None:
        for kind in ("message", "summary" if self.summary else "reasoning", "function_call"):
            for index in (0, 1):
                self._template(kind, index)

    # -- the response object -------------------------------------------------------

    def _response(self, status: str, stats: Stats | None, **extra: Any) -> dict[str, Any]:
        req = self.request
        usage: dict[str, Any] | None = None
        if stats is not None and "no_usage" not in self.quirks:
            usage = {
                "input_tokens": stats.prompt_tokens,
                "input_tokens_details": {"cached_tokens": stats.cached_tokens},
                "output_tokens": stats.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": stats.reasoning_tokens},
                "total_tokens": stats.prompt_tokens + stats.completion_tokens,
            }
        reasoning = req.get("reasoning") if isinstance(req.get("reasoning"), dict) else {}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"),
            "model": self.model,
            "output": list(self.output),
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "store": False,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": req.get("tool_choice", "auto"),
            "tools": req.get("tools") if isinstance(req.get("tools"), list) else [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "metadata": {},
            **extra,
        }

    def _item(self, kind: str, text: str, status: str) -> dict[str, Any]:
        """A whole output item (``text`` is a call's arguments for ``function_call``)."""
        item_id = self.item_ids[kind]
        if kind == "message":
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
            return {"id": item_id, "type": "message", "status": status, "content": [part], "role": "assistant"}
        if kind == "reasoning":
            content = [{"type": "reasoning_text", "text": text}]
            return {"id": item_id, "type": "reasoning", "summary": [], "content": content}
        if kind == "summary":
            return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}
        call = self.tool_call
        assert call is not None
        return {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "arguments": text,
            "call_id": "call_" + call.id_hex,
            "name": call.name,
        }

    # -- items -----------------------------------------------------------------------

    def _open(self, kind: str) -> bytes:
        self.kind, self.text = kind, []
        index, item_id = len(self.output), self.item_ids[kind]
        opened = self._item(kind, "", "in_progress")
        if kind in ("message", "reasoning"):
            opened["content"] = []
        elif kind == "summary":
            opened["summary"] = []
        out = self._event("response.output_item.added", {"output_index": index, "item": opened})
        where = {"item_id": item_id, "output_index": index}
        if kind == "summary":
            part = {"type": "summary_text", "text": ""}
            out += self._event("response.reasoning_summary_part.added", {**where, "summary_index": 0, "part": part})
        elif kind != "function_call":
            part = self._item(kind, "", "in_progress")["content"][0]
            out += self._event("response.content_part.added", {**where, "content_index": 0, "part": part})
        return out

    def _close(self, status: str = "completed") -> bytes:
        kind = self.kind
        if kind is None:
            return b""
        text, index, item_id = "".join(self.text), len(self.output), self.item_ids[kind]
        item = self._item(kind, text, status)
        where = {"item_id": item_id, "output_index": index}
        if kind == "message":
            out = self._event("response.output_text.done", {**where, "content_index": 0, "text": text, "logprobs": []})
            out += self._event("response.content_part.done", {**where, "content_index": 0, "part": item["content"][0]})
        elif kind == "reasoning":
            out = self._event("response.reasoning_text.done", {**where, "content_index": 0, "text": text})
            out += self._event("response.content_part.done", {**where, "content_index": 0, "part": item["content"][0]})
        elif kind == "summary":
            out = self._event("response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text})
            part = {**where, "summary_index": 0, "part": item["summary"][0]}
            out += self._event("response.reasoning_summary_part.done", part)
        else:
            out = self._event("response.function_call_arguments.done", {**where, "arguments": text})
        out += self._event("response.output_item.done", {"output_index": index, "item": item})
        self.output.append(item)
        self.kind, self.text = None, []
        return out

    def _kind_of(self, channel: str) -> str:
        if channel == "reasoning":
            return "summary" if self.summary else "reasoning"
        return _ITEM_KIND[channel]

    # -- the encoder interface -----------------------------------------------------

    def head(self, stats: Stats) -> bytes:
        created = self._event("response.created", {"response": self._response("in_progress", None)})
        return created + self._event("response.in_progress", {"response": self._response("in_progress", None)})

    def token(self, text: str, channel: str, finish: str | None, stats: Stats) -> bytes:
        kind = self._kind_of(channel)
        out = b"" if kind == self.kind else self._close() + self._open(kind)
        self.text.append(text)
        return out + self._delta(text)

    def finish(self, finish_reason: str, stats: Stats) -> bytes:
        if finish_reason == "length":
            out = self._close("incomplete")
            details = {"reason": "max_output_tokens"}
            final = self._response("incomplete", stats, incomplete_details=details)
            return out + self._event("response.incomplete", {"response": final})
        out = self._close()
        return out + self._event("response.completed", {"response": self._response("completed", stats)})

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"

    def error_frame(self, message: str) -> bytes:
        error = {"code": "server_error", "message": message}
        return self._event("response.failed", {"response": self._response("failed", None, error=error)})

    def cut(self) -> bytes:
        return self._close()

    def bad_json(self) -> bytes:
        head = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'
        return head + str(self.seq).encode() + b',"delta":"oops"\n\n'

    def _delta_frame(self, text: str) -> bytes:
        if self.kind is None:
            return self._open("message") + self._delta(text)
        return self._delta(text)

    def whole(self, reasoning: str, answer: str, finish: str, stats: Stats) -> dict[str, Any]:
        status = "incomplete" if finish == "length" else "completed"
        if reasoning:
            kind = "summary" if self.summary else "reasoning"
            self.output.append(self._item(kind, reasoning, status))
        self.output.append(self._item("function_call" if self.tool_call else "message", answer, status))
        if finish == "length":
            return self._response(status, stats, incomplete_details={"reason": "max_output_tokens"})
        return self._response(status, stats)


__all__ = ["ResponsesEncoder"]
