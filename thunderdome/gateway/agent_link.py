"""One agent connection to its gateway: requests read as their bytes arrive, each begun in that callback.

Invariant: the moment a request's last byte is read, in the connection's own
``data_received`` callback, the gateway's ``begin(request, responder)`` is
called with it: a plain function, so what it does at once (the gateway
forwards the request upstream there) runs before the loop does anything
else: no task wakes between an agent's request arriving and it leaving for
upstream. It returns the coroutine that answers the request, run as this
connection's task; requests are answered one at a time, in order (bytes of
a pipelined request wait in the buffer, and past 512 KiB the agent's
reading pauses). The HTTP is ``sim.http``'s: the same head
parser, limits and error answers as ``serve_requests`` (a request that
cannot be parsed gets a JSON error and the connection closes), HTTP/1.0
and keep-alive as there. The link is its ``Responder``'s reader and writer.
Nothing an agent sends raises out of here; a bug while answering drops this
connection only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

from thunderdome.gateway.flow import WriteFlow
from thunderdome.gateway.framing import BodyFraming, FramingError
from thunderdome.sim.http import (
    CONTINUE, MAX_BODY, ClientGone, HttpError, Request, Responder, body_length, expects_continue, parse_head,
)

log = logging.getLogger(__name__)
HEAD_LIMIT = 256 * 1024
Begin = Callable[[Request, Responder], Coroutine[Any, Any, None]]


class AgentLink(WriteFlow, asyncio.Protocol):
    """One agent connection. ``links``: the gateway's open links (this one is
    in it while connected); ``error_headers``: on error answers."""

    def __init__(self, begin: Begin, links: set["AgentLink"], error_headers: dict[str, str]) -> None:
        self.begin = begin
        self.links = links
        self.error_headers = error_headers
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.task: asyncio.Task[None] | None = None
        self._eof = False
        self._head: tuple[int, str, str, str, str, dict[str, str], int | None, float] | None = None
        """The pending request's head: (where its body starts, method, path, query, version, headers, body length or None for chunked, t_head)."""
        self._closing = False
        """The answer under way is the connection's last."""
        self._chunked: _ChunkedBody | None = None
        """The pending request's chunked body, read so far."""

    # -- the Responder's reader and writer -------------------------------------------------

    def at_eof(self) -> bool:
        return self._eof and not self.buffer

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        if self.transport is not None and self.transport.is_closing():
            raise ConnectionResetError("the agent closed its connection")
        await self.writable()

    # -- the connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.links.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.task is None:
            self._next()
        elif len(self.buffer) > 2 * HEAD_LIMIT and self.transport is not None:
            self.transport.pause_reading()  # resumed when the answer under way is done

    def eof_received(self) -> bool:
        self._eof = True
        if self.task is None:
            self._next()
        return True  # keep writing: an answer under way finishes (or sees the agent gone)

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self.links.discard(self)
        self.writable_again()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- requests ----------------------------------------------------------------------

    def _next(self) -> None:
        """Begin the request the buffer holds whole, if any; at the agent's end, close."""
        try:
            req = self._take()
        except HttpError as exc:
            self._run(self._refuse(exc))
            return
        if req is None:
            if self._eof and self.transport is not None:
                self.transport.close()  # a clean end between requests (a partial one is cut: nothing to answer)
            return
        out = Responder(self, self, keep_alive=req.keep_alive, http10=req.version == "HTTP/1.0")  # type: ignore[arg-type]
        try:
            answering = self.begin(req, out)
        except Exception:
            log.exception("gateway failed while forwarding a request")
            self.abort()
            return
        self._run(self._answer(answering, out))

    def _take(self) -> Request | None:
        """The whole request at the buffer's start, taken out of it; None while it is not all in."""
        if self._head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > HEAD_LIMIT:
                    raise HttpError(431, "request head too large")
                return None
            t_head = time.monotonic()
            with memoryview(self.buffer) as view:
                head = bytes(view[: end + 4])
            method, path, query, version, headers = parse_head(head)
            length = body_length(headers)
            self._head = (end + 4, method, path, query, version, headers, length, t_head)
            if expects_continue(headers) and self.transport is not None:
                self.transport.write(CONTINUE)
        start, method, path, query, version, headers, length, t_head = self._head
        if length is None:
            if self._chunked is None:
                self._chunked = _ChunkedBody(start)
            taken = self._chunked.take(self.buffer)
            if taken is None:
                return None
            body, used = taken
            self._chunked = None
        else:
            if len(self.buffer) < start + length:
                return None
            with memoryview(self.buffer) as view:
                body, used = bytes(view[start : start + length]), start + length
        if used == len(self.buffer):
            self.buffer.clear()
        else:
            del self.buffer[:used]
        self._head = None
        now = time.monotonic()
        return Request(method.upper(), path, query, version, headers, body, now, t_head, now)

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        self.task = asyncio.get_running_loop().create_task(coro)
        self.task.add_done_callback(self._answered)

    async def _answer(self, answering: Coroutine[Any, Any, None], out: Responder) -> None:
        await answering
        self._closing = out.closed or not out.keep_alive

    async def _refuse(self, exc: HttpError) -> None:
        out = Responder(self, self, keep_alive=False)  # type: ignore[arg-type]
        self._closing = True
        await out.send_json(exc.status, {"error": {"message": exc.message, "type": "bad_request"}}, self.error_headers)

    def _answered(self, task: asyncio.Task[None]) -> None:
        self.task = None
        if task.cancelled():  # stopped: end quietly
            self.abort()
            return
        exc = task.exception()
        if exc is None and self._closing:
            if self.transport is not None:
                self.transport.close()  # after what is buffered has gone out
            return
        if isinstance(exc, (ClientGone, ConnectionError)):
            self.abort()
            return
        if exc is not None:
            log.error("gateway failed while answering", exc_info=exc)
            self.abort()
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._next()


class _ChunkedBody:
    """A chunked request body from ``start`` in the link's buffer, read as
    its bytes arrive (each byte once, however many segments it comes in)."""

    def __init__(self, start: int) -> None:
        self.framing = BodyFraming(None, True)
        self.pieces: list[bytes] = []
        self.size = 0
        self.read_to = start

    def take(self, buffer: bytearray) -> tuple[bytes, int] | None:
        """(the body, where it ends in ``buffer``) once it is all in, else None. Raises ``HttpError``."""
        try:
            pieces = self.framing.take(bytes(buffer[self.read_to :]))
        except FramingError:
            raise HttpError(400, "bad chunked request body") from None
        self.read_to = len(buffer)
        self.pieces += pieces
        self.size += sum(len(p) for p in pieces)
        if self.size > MAX_BODY:
            raise HttpError(413, "request body too large")
        if not self.framing.done:
            return None
        return b"".join(self.pieces), len(buffer) - len(self.framing.extra)


def serve_links(begin: Begin, links: set[AgentLink], error_headers: dict[str, str]) -> Callable[[], AgentLink]:
    """The protocol factory for ``loop.create_server``."""
    return lambda: AgentLink(begin, links, error_headers)


__all__ = ["AgentLink", "serve_links"]
