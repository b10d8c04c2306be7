"""The shared parts of the frame encoders: the ``Encoder`` interface, what a
request's server did (``Stats``), and the JSON bytes every protocol's frames
are cut from.

Invariant: an encoder only turns facts into bytes; it never sleeps, and the
only clock it reads is the wall clock for labels (``created``,
``created_at``); durations come from ``Stats``. ``template`` cuts a frame at
its markers' JSON once, so a per-token frame is its pieces joined around
``dumps_str(text)``: byte-identical to ``dumps`` of the whole dict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, Callable, Mapping

from thunderdome.sim.tools import ToolCall


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



__all__ = ["Encoder", "Stats", "dumps", "dumps_str", "template"]
