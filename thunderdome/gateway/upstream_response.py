"""An upstream response: its head read into status and headers, its body relayed as it arrives.

Invariant: ``start_relay`` hands each segment's body pieces on inside the
connection's own ``data_received`` callback (chunked framing removed by
``BodyFraming``, whole chunks also passed as they came), and tells with the
last of them that the body ends; reading pauses while the agent's writer
is backed up. A response gives its connection back to the pool only after
a body that ended cleanly with nothing after it. Failures are
``UpstreamError`` with one line.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from thunderdome.core.errors import ThunderdomeError
from thunderdome.gateway.framing import BodyFraming, FramingError


class _Conn(Protocol):
    """What a response needs of its connection (``upstream._Conn``)."""

    wire: Any
    """Its protocol (``upstream._Wire``): the buffer, the feed hook, the wake-ups."""

    def usable(self) -> bool: ...


class _Pool(Protocol):
    """What a response needs of its pool (``upstream.UpstreamPool``): where its connection goes after."""

    def put(self, conn: Any) -> None: ...

    def drop(self, conn: Any) -> None: ...


class UpstreamError(ThunderdomeError):
    """The backend could not be reached or broke the HTTP exchange."""


Push = Callable[[list[bytes], bool, "bytes | None"], bool]
"""Takes one segment's body pieces, whether the body ends with them, and
those bytes as they came when they are whole chunks that can go on as they
are (``BodyFraming.verbatim``), synchronously; True: its writer wants a drain first."""


@dataclass
class _RelayState:
    failed: BaseException | None = None
    backed_up: bool = False
    ended: bool = False
    """``push`` was told the body ends."""


@dataclass
class UpstreamResponse:
    """A response head; ``start_relay(push)`` hands its body on as it arrives, ``finish_relay(drain)`` awaits its end (once)."""

    status: int
    headers: list[tuple[str, str]]
    sent: float
    """time.monotonic() when the request was written to the socket."""
    _conn: _Conn
    _pool: _Pool
    _framing: BodyFraming = field(default_factory=lambda: BodyFraming(None, False))
    _keep: bool = True
    _done: bool = field(default=False, init=False)
    _relay: "_RelayState | None" = field(default=None, init=False)

    _named: dict[str, str] | None = field(default=None, init=False)

    def header(self, name: str) -> str | None:
        """The first header of that name (any case); None if there is none."""
        if self._named is None:
            self._named = {}
            for k, v in self.headers:
                self._named.setdefault(k.lower(), v)
        return self._named.get(name.lower())

    def start_relay(self, push: Push) -> None:
        """From now on, hand each arriving segment's body pieces to ``push``,
        inside the connection's own callback (so a piece is passed on the
        moment it is read), starting with what already came in with the
        head, and told with the last of them that the body ends there (so
        the end goes out in the same write; an empty body is one call with
        no pieces); ``push`` returns True when its writer wants a drain
        (reading pauses until ``finish_relay`` has drained it). Never
        raises: what goes wrong is raised by ``finish_relay``."""
        wire, framing = self._conn.wire, self._framing
        state = self._relay = _RelayState()

        def feed(data: bytes) -> None:
            if state.failed is not None or state.ended:
                framing.extra += data
                return
            try:
                if data:
                    pieces = framing.take(data)
                else:
                    framing.end()
                    framing.verbatim = None
                    pieces = []
                state.ended = framing.done
                if (pieces or framing.done) and push(pieces, framing.done, framing.verbatim):
                    state.backed_up = True
                    wire.transport.pause_reading()  # type: ignore[union-attr]
            except FramingError as exc:
                state.failed = UpstreamError(str(exc))
            except Exception as exc:
                state.failed = exc
            if state.failed is not None or framing.done or state.backed_up:
                wire.wake()

        wire.feed = feed
        if wire.buffer:
            rest, wire.buffer = bytes(wire.buffer), bytearray()
            feed(rest)
        if wire.ended or framing.done:
            feed(b"")  # the connection's end, or a body with nothing in it (HEAD, 204, Content-Length: 0)

    async def finish_relay(self, drain: Callable[[], Awaitable[None]]) -> None:
        """Wait for the body's clean end (``start_relay`` first); raises
        ``UpstreamError`` when upstream breaks it, or what ``push`` raised."""
        wire, framing, state = self._conn.wire, self._framing, self._relay
        assert state is not None, "start_relay first"
        try:
            while state.failed is None and not framing.done:
                if state.backed_up:
                    state.backed_up = False
                    await drain()
                    if not wire.ended:
                        wire.transport.resume_reading()  # type: ignore[union-attr]
                    continue
                await wire.until_woken()
        finally:
            wire.feed = None
        if state.failed is not None:
            raise state.failed
        self._done = True
        if framing.extra:
            self._keep = False  # bytes after the body: this connection is not one to reuse

    def release(self) -> None:
        """Give the connection back (a clean, whole body) or close it."""
        if self._done and self._keep and self._conn.usable():
            self._pool.put(self._conn)
        else:
            self._pool.drop(self._conn)


def read_response(head: bytes, sent: float, conn: _Conn, pool: _Pool, method: str) -> UpstreamResponse:
    """The response of a whole ``head``, its body's framing set from its status and headers."""
    lines = head.decode("latin-1").split("\r\n")
    try:
        version, code = lines[0].split(" ", 2)[:2]
        status = int(code)
    except ValueError:
        pool.drop(conn)
        raise UpstreamError(f"not an HTTP response: {lines[0][:80]!r}") from None
    headers = [(k.strip(), v.strip()) for k, sep, v in (line.partition(":") for line in lines[1:] if line) if sep]
    response = UpstreamResponse(status, headers, sent, conn, pool)
    connection = (response.header("connection") or "").lower()
    response._keep = "close" not in connection and version != "HTTP/1.0"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        response._framing = BodyFraming(0, False)
    elif "chunked" in (response.header("transfer-encoding") or "").lower():
        response._framing = BodyFraming(None, True)
    elif response.header("content-length") is not None:
        try:
            length = int(response.header("content-length") or "0")
        except ValueError:
            length = -1
        if length < 0:
            pool.drop(conn)
            raise UpstreamError("bad Content-Length in the response")
        response._framing = BodyFraming(length, False)
    else:
        response._keep = False  # ends at the connection's close
    return response


__all__ = ["Push", "UpstreamError", "UpstreamResponse", "read_response"]
