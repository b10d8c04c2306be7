"""Reading one streamed reply: its events emitted in order, its answer gathered.

Invariant: every step per delta costs O(len(delta)): the answer is kept as a
list of parts (joined once, at the end) and the caller's ``on_answer`` must
be linear too (the command extractor is), so one lane streaming without end
cannot slow the lanes sharing its event loop. A reply longer than
``REPLY_LIMIT`` characters (answer and reasoning) is read no further: the
lane fails with "reply over 1 MB: cut". The backend stream is always closed
before ``read_reply`` returns or raises.

A reply *ended naturally* when the server named a finish reason in
``NATURAL_ENDS`` (the model stopped by itself); ``length`` / ``max_tokens``
(cut by the token limit), ``content_filter`` and the like did not. A stream
is *cut* (``end_reason_for_cut``: a lane error) when it closed without its
end marker, or with the marker and no token at all (llama-cpp-python's cut:
role chunk, then ``[DONE]``); a marker after tokens with no finish reason is
a clean end with a note (``NO_FINISH_REASON``), not a natural one: it runs
no command that was still open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from thunderdome.backends.base import Backend, BackendError, ChatRequest
from thunderdome.core.events import (
    NATURAL_ENDS,
    Event,
    ReasoningSigned,
    StreamEnded,
    TokenDelta,
    ToolCallDone,
    ToolCallStarted,
)
from thunderdome.core.metrics import Standings


class Race(Protocol):
    """What reading a reply needs of the race (``race.engine.Race`` is one)."""

    standings: Standings

    def clock(self) -> float: ...

    def emit(self, event: Event) -> None: ...


class Lane(Protocol):
    """What reading a reply needs of a lane (``race.engine.Lane`` is one)."""

    backend: Backend
    ended: bool

    @property
    def name(self) -> str: ...

REPLY_LIMIT = 1_000_000
"""Characters of one reply (answer and reasoning) read at most: 1 MB of text."""
REPLY_OVER_LIMIT = "reply over 1 MB: cut"
NO_FINISH_REASON = "no finish reason (the stream ended with its end marker)"
"""The note of a lane whose stream ended cleanly after tokens without naming why."""


@dataclass(frozen=True)
class Reply:
    """What one streamed reply gave. ``text``: the answer read (up to where
    the lane stopped reading, when it stopped early)."""

    text: str
    ended: StreamEnded | None
    """The stream's end event; None when it closed without one or the lane stopped reading."""
    early: bool
    """``on_answer`` asked to stop reading before the reply ended."""
    calls: tuple[ToolCallDone, ...] = ()
    """The tool calls that completed, in the order they did."""
    started: int = 0
    """Tool calls begun (more than ``calls``: one was cut mid-arguments)."""
    signed_reasoning: tuple[dict[str, Any], ...] = ()
    """The reply's signed reasoning blocks, in order, as the next turn sends
    them back (``ChatRequest``'s ``signed_reasoning``): ``{"text", "signature",
    "redacted"}``, the text exactly as it streamed."""

    @property
    def natural(self) -> bool:
        """The model ended the reply itself (not a token limit, not a cut)."""
        return self.ended is not None and self.ended.finish_reason in NATURAL_ENDS


async def read_reply(
    race: Race, lane: Lane, request: ChatRequest, on_answer: Callable[[str], object] | None = None
) -> Reply:
    """Stream ``request`` on the lane's backend, emitting every event.
    ``on_answer(delta)`` sees each answer delta; a result other than None
    stops reading at once (the HTTP stream is closed; the rest of the reply
    is neither read nor recorded). Stops too when the lane ends meanwhile.
    Raises ``BackendError`` for a failed backend or a reply over the limit."""
    parts: list[str] = []
    size = 0
    ended: StreamEnded | None = None
    early = False
    calls: list[ToolCallDone] = []
    started = 0
    reasoning: list[str] = []
    """The reasoning deltas since the last signed block."""
    signed: list[dict[str, Any]] = []
    stream = lane.backend.stream(request, race.clock)
    try:
        async for event in stream:
            if lane.ended:
                break
            race.emit(event)
            if isinstance(event, TokenDelta):
                size += len(event.text)
                if size > REPLY_LIMIT:
                    raise BackendError(f"{REPLY_OVER_LIMIT} after {size:,} characters")
                if event.channel == "answer":
                    parts.append(event.text)
                    if on_answer is not None and on_answer(event.text) is not None:
                        early = True
                        break
                else:
                    reasoning.append(event.text)
            elif isinstance(event, StreamEnded):
                ended = event
            elif isinstance(event, ToolCallDone):
                calls.append(event)
            elif isinstance(event, ToolCallStarted):
                started += 1
            elif isinstance(event, ReasoningSigned):
                signed.append({"text": "".join(reasoning), "signature": event.signature, "redacted": event.redacted})
                reasoning = []
    finally:
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:  # closing a stream we stopped reading is not news
                pass
    return Reply("".join(parts), ended, early, tuple(calls), started, tuple(signed))


def end_reason_for_cut(ended: StreamEnded | None, tokens: int) -> str | None:
    """Why a stream counts as cut: no end marker, or the marker (with no
    finish reason) before any token. None: it ended cleanly."""
    if ended is None:
        return f"stream ended without its end marker after {tokens} tokens"
    if ended.finish_reason is None and tokens == 0:
        return f"stream cut: ended without a finish reason after {tokens} tokens"
    return None


def finish_note(ended: StreamEnded) -> str:
    """A clean end's reason as a lane records it: the finish reason, or ``NO_FINISH_REASON``."""
    return ended.finish_reason or NO_FINISH_REASON


def cut_reason(race: Race, lane: Lane, reply: Reply) -> str | None:
    """Why the lane's reply counts as a cut stream (a lane error), if it does."""
    stats = race.standings.lanes.get(lane.name)
    return end_reason_for_cut(reply.ended, stats.live_tokens if stats is not None else 0)


__all__ = ["NATURAL_ENDS", "NO_FINISH_REASON", "REPLY_LIMIT", "REPLY_OVER_LIMIT", "Reply", "cut_reason", "end_reason_for_cut", "finish_note", "read_reply"]
