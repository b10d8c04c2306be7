"""Protocol parsing: the base every protocol's parser builds on.

Invariant: a parser turns a chunk's frames into events, each stamped with
the chunk's arrival time, and stops at the end marker; output (text and
tool-call arguments) is never empty and counts in ``tokens``; a tool call's
``ToolCallStarted`` and ``ToolCallDone`` come at most once each, the latter
only for a started call and never from a cut stream. A parser does no I/O.
"""

from __future__ import annotations

from typing import Any, Iterable

from thunderdome.backends.base import BackendError
from thunderdome.backends.errors import error_message, one_line
from thunderdome.backends.sse import FrameError
from thunderdome.core.events import Event, ServerTimings, StreamEnded, TokenDelta, ToolCallDelta, ToolCallDone, ToolCallStarted

MAX_ARGUMENTS = 1_000_000
"""Characters of one tool call's arguments kept at most (a reply's text
limit, ``race.reply.REPLY_LIMIT``, does not see them): beyond, the lane fails."""


def as_int(value: Any) -> int | None:
    """``value`` if it is a real int (JSON numbers only; booleans are not counts)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_number(value: Any) -> float | None:
    """``value`` as a float if it is a JSON number (not a boolean)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class StreamParser:
    """Turns one protocol's frames into events; tracks tokens and the end.

    ``take(frames, t, out)`` is the one way in: it appends the events of a
    chunk's frames (as the decoder's ``split`` returns them) to ``out`` and
    stops at the end marker. It raises BackendError for an error frame and
    FrameError for junk, after appending the events of the frames before it.
    Tool calls go through ``call_start`` / ``call_delta`` / ``call_done``:
    a call's ``ToolCallStarted`` comes once, when its name is known; its
    argument deltas count in ``tokens`` like text; its ``ToolCallDone``
    comes once, only for a started call, and never from a cut stream."""

    end_name = "its end marker"

    def __init__(self, lane: str, turn: int) -> None:
        self.lane = lane
        self.turn = turn
        self.tokens = 0
        """Non-empty deltas so far (both channels and tool-call arguments)."""
        self.ended = False
        self.finish_reason: str | None = None
        self.calls: dict[Any, _Call] = {}
        """This turn's tool calls by the protocol's key for them, in order."""

    def one(self, frame: Any, t: float, out: list[Event]) -> None:
        """Append the events of one frame (a decoder ``split`` item) to ``out``."""
        raise NotImplementedError

    def take(self, frames: Iterable[Any], t: float, out: list[Event]) -> None:
        one = self.one
        for frame in frames:
            one(frame, t, out)
            if self.ended:
                return

    def server_timings(self, out: list[Event], t: float, fields: dict[str, Any]) -> None:
        """A ``ServerTimings`` from what a frame said (``server_timings``
        module), if it said anything (the reducer keeps each field's latest)."""
        known = {k: v for k, v in fields.items() if v is not None}
        if known:
            out.append(ServerTimings(t=t, lane=self.lane, turn=self.turn, **known))

    def token(self, out: list[Event], t: float, text: Any, channel: str) -> None:
        if text and isinstance(text, str):
            out.append(TokenDelta(t, self.lane, text, channel, self.turn))  # type: ignore[arg-type]  # fields in order
            self.tokens += 1

    # tool calls: ``key`` is however the protocol tells its calls apart
    # (an index, a block index, an item id); ``index`` is the call's place.
    def call_start(self, out: list[Event], t: float, key: Any, call_id: Any, name: Any) -> None:
        """Call ``key`` has (at least) its name: ``ToolCallStarted``, once."""
        call = self.calls.get(key)
        if call is None:
            call = self.calls[key] = _Call(len(self.calls))
        if call_id and isinstance(call_id, str) and not call.call_id:
            call.call_id = call_id
        if call.started or not (name and isinstance(name, str)):
            return
        call.name, call.started = name, True
        if not call.call_id:
            call.call_id = f"call_{self.turn}_{call.index}"
        out.append(ToolCallStarted(t=t, lane=self.lane, turn=self.turn, call_id=call.call_id, name=name, index=call.index))

    def call_delta(self, out: list[Event], t: float, key: Any, text: Any) -> None:
        """A fragment of call ``key``'s arguments: output, like ``token``."""
        if text and isinstance(text, str):
            call = self.calls.get(key)
            if call is None:
                call = self.calls[key] = _Call(len(self.calls))
            call.parts.append(text)
            call.size += len(text)
            if call.size > MAX_ARGUMENTS:
                raise BackendError(f"tool call {call.name or '?'!r}: arguments over 1 MB: cut")
            out.append(ToolCallDelta(t, self.lane, self.turn, call.index, text))  # type: ignore[arg-type]  # fields in order
            self.tokens += 1

    def call_done(self, out: list[Event], t: float, key: Any, arguments: Any = None) -> None:
        """Call ``key`` is complete (``arguments``: the server's whole text,
        if it sends one; else the fragments). Once per started call."""
        call = self.calls.get(key)
        if call is None or call.done or not call.started:
            return
        call.done = True
        text = arguments if isinstance(arguments, str) and arguments else "".join(call.parts) or "{}"
        out.append(
            ToolCallDone(
                t=t, lane=self.lane, turn=self.turn, call_id=call.call_id, name=call.name, arguments=text, index=call.index
            )
        )

    def calls_done(self, out: list[Event], t: float) -> None:
        """Every started call that is not complete yet is, now."""
        for key in list(self.calls):
            self.call_done(out, t, key)

    def end(self, out: list[Event], t: float) -> None:
        self.ended = True
        out.append(StreamEnded(t=t, lane=self.lane, turn=self.turn, finish_reason=self.finish_reason))

    def server_error(self, obj: Any) -> BackendError:
        return BackendError(f"server error mid-stream: {error_message(obj, with_type=True)}")

    def cut_reason(self) -> str:
        open_call = next((c for c in self.calls.values() if c.started and not c.done), None)
        during = f" in the middle of tool call {open_call.name!r}" if open_call is not None else ""
        return f"stream ended without {self.end_name} after {self.tokens} tokens{during} (likely cut)"


class _Call:
    """One tool call as it forms."""

    __slots__ = ("index", "call_id", "name", "parts", "size", "started", "done")

    def __init__(self, index: int) -> None:
        self.index = index
        self.call_id = ""
        self.name = ""
        self.parts: list[str] = []
        self.size = 0
        self.started = False
        self.done = False


def expect_object(obj: Any, text: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise FrameError(f"malformed JSON frame: expected an object, got {one_line(text, 60)}")
    return obj


__all__ = ["MAX_ARGUMENTS", "StreamParser", "as_int", "as_number", "expect_object"]
