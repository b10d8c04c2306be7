"""Frame encoder for Ollama's native chat (``POST /api/chat``): one JSON
object a line (``{json}\\n``).

Invariant: as in ``base.py``, an encoder only turns facts into bytes. Each
token is a ``done: false`` line stamped ``created_at`` (RFC 3339 UTC, the wall
clock); a tool call is sent whole, in one line, once its arguments are
complete (they were paced like tokens and count in ``eval_count``); the last
line is ``done: true`` with the durations in nanoseconds, from ``Stats``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from thunderdome.sim.tools import FINISH_TOOL
from thunderdome.sim.wire.base import Encoder, Stats, dumps, dumps_str, template


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



__all__ = ["OllamaEncoder", "ollama_time"]
