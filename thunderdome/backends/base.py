"""The protocol-adapter interface every backend client implements.

Invariant: ``stream()`` stamps each chunk with ``clock()`` the moment its
bytes come off the socket, before any parsing, and every event parsed from
that chunk carries that stamp. A failure raises ``BackendError`` with one line
a person can act on; events already yielded stay valid (the tokens a lane got
before a drop are kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Protocol

from thunderdome.errors import ThunderdomeError
from thunderdome.events import Event
from thunderdome.specs import BackendSpec

Clock = Callable[[], float]
"""Returns seconds since race start on the monotonic clock."""


@dataclass(frozen=True)
class ChatRequest:
    """One turn's request: messages in OpenAI shape (role/content dicts)."""

    messages: list[dict[str, str]]
    max_tokens: int
    lane: str
    turn: int = 1
    sim: dict[str, Any] | None = None
    """Sim lanes only: per-request emulator directive (e.g. the reply rendered
    with this lane's PIDs), merged over the backend's own directive into the
    body's ``thunderdome_sim`` field. Real backends ignore it."""


class BackendError(ThunderdomeError):
    """A lane-ending failure. ``reason`` is a single line for the UI."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Backend(Protocol):
    spec: BackendSpec

    def stream(self, request: ChatRequest, clock: Clock) -> AsyncIterator[Event]:
        """Yield RequestSent, FirstByte, TokenDelta, Usage, StreamEnded events
        (with ``lane``/``turn`` from the request). Raise BackendError on failure."""
        ...

    async def aclose(self) -> None: ...
