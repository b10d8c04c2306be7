"""The protocol-adapter interface every backend client implements.

Invariant: ``stream()`` stamps each chunk with the moment its bytes came off
the socket, before any parsing (on a race loop, the poll that found them
waiting: ``poll_stamps.py``; elsewhere ``clock()`` after the read), and
every event parsed from that chunk carries that stamp. A failure raises ``BackendError`` with one line
a person can act on; events already yielded stay valid (the tokens a lane got
before a drop are kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Protocol

from thunderdome.core.errors import ThunderdomeError
from thunderdome.core.events import Event
from thunderdome.core.specs import BackendSpec

Clock = Callable[[], float]
"""Returns seconds since race start on the monotonic clock."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call, in no protocol's shape: each client encodes
    it (``parameters`` is the JSON schema of its arguments object)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ChatRequest:
    """One turn's request. ``messages``: role/content dicts (roles
    ``system``, ``user``, ``assistant``, ``tool``). An assistant message may
    carry ``tool_calls``: ``[{"id", "name", "arguments"}]`` (arguments: the
    JSON text, as ``ToolCallDone`` has it) and ``signed_reasoning``:
    ``[{"text", "signature", "redacted"}]`` (the reply's ``ReasoningSigned``
    blocks, for protocols that want them back); a ``tool`` message answers one
    call: ``{"role": "tool", "tool_call_id", "name", "content"}``. Each client
    encodes these for its protocol (``backends/messages.py``)."""

    messages: list[dict[str, Any]]
    max_tokens: int
    lane: str
    turn: int = 1
    sim: dict[str, Any] | None = None
    """Sim lanes only: per-request emulator directive (e.g. the reply rendered
    with this lane's PIDs), merged over the backend's own directive into the
    body's ``thunderdome_sim`` field. Real backends ignore it."""
    tools: tuple[ToolSpec, ...] = ()
    """The tools offered this turn (none: the request has no tools field)."""


class BackendError(ThunderdomeError):
    """A lane-ending failure. ``reason`` is a single line for the UI."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Backend(Protocol):
    spec: BackendSpec

    def stream(self, request: ChatRequest, clock: Clock) -> AsyncIterator[Event]:
        """Yield RequestSent, FirstByte, TokenDelta, ToolCallStarted /
        ToolCallDelta / ToolCallDone, Usage, StreamEnded events (with
        ``lane``/``turn`` from the request). Raise BackendError on failure."""
        ...

    async def aclose(self) -> None: ...
