"""The gateway's upstream side: HTTP/1.1 on its own asyncio protocol, kept alive, one write per request.

Invariant: a request leaves in a single synchronous ``write`` (head and
body together, so it is on the socket before the event loop can run
anything else, and ``UpstreamResponse.sent`` is that moment); the response
body is handed on in the connection's own ``data_received`` callback, as
the payload pieces of each segment that arrived (chunked framing removed
by ``BodyFraming``, nothing waited for beyond what is already there), so
the gateway relays a piece in the same callback that read it (``upstream_response``): no task
wakes, no other ready work runs, between a reply's bytes arriving and the
agent getting them. A connection goes back to its pool only after a body
that ended cleanly, with nothing after it, and a spare one is kept open
ahead of need (``warm``), so no request waits for a connection's set-up; a
pooled connection that turns out closed before any response byte is
retried once on a fresh one. Failures are ``UpstreamError`` with one line;
nothing else escapes. TLS uses the race clients' verification
(``backends.http.tls_context``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from thunderdome.backends.http import tls_context
from thunderdome.gateway.flow import WriteFlow
from thunderdome.gateway.upstream_response import UpstreamError, UpstreamResponse, read_response

HEAD_LIMIT = 256 * 1024


class _Wire(WriteFlow, asyncio.Protocol):
    """One upstream connection's bytes: a response head is read as it comes
    in (``on_bytes``, ``take_head``) or awaited (``read_head``); a body is
    pushed on as it arrives (``feed``, set by ``UpstreamResponse.start_relay``).
    Bytes no one is reading stop being read past 512 KiB."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False
        """No more bytes will come (EOF, reset or closed)."""
        self.feed: Callable[[bytes], None] | None = None
        """While a body is relayed: called with each segment, and with b"" at the end."""
        self.on_bytes: Callable[[], None] | None = None
        """While a head is awaited: told, inside this callback, that bytes came in."""
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.feed is not None:
            self.feed(data)
        else:
            self.buffer += data
            if self.on_bytes is not None:
                self.on_bytes()
            self.wake()
            if len(self.buffer) > 2 * HEAD_LIMIT and self.transport is not None:
                self.transport.pause_reading()  # whoever reads it next finds the head too large

    def eof_received(self) -> bool:
        self._end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        self.writable_again()

    def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self.feed is not None:
            self.feed(b"")
        self.wake()

    def take_head(self) -> bytes | None:
        """The response head, through its blank line, taken out of the buffer
        when it is all in; else None. Raises ``UpstreamError``."""
        end = self.buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(self.buffer[: end + 4])
            del self.buffer[: end + 4]
            return head
        if len(self.buffer) > HEAD_LIMIT:
            raise UpstreamError("response head over 256 KiB")
        return None

    async def read_head(self) -> bytes | None:
        """The response head; None when the connection ended before any byte of one."""
        while (head := self.take_head()) is None:
            if self.ended:
                if not self.buffer:
                    return None
                raise UpstreamError("the connection closed in the middle of the response head")
            await self.until_woken()
        return head

    async def until_woken(self) -> None:
        """Wait for the next bytes, the end, or a ``wake()``."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


@dataclass(eq=False)
class _Conn:
    wire: _Wire
    reused: bool = False

    @property
    def transport(self) -> asyncio.Transport:
        assert self.wire.transport is not None
        return self.wire.transport

    def usable(self) -> bool:
        return not self.wire.ended and not self.wire.buffer and not self.transport.is_closing()

    def close(self) -> None:
        self.transport.abort()


class Exchange:
    """One request on its way upstream (``UpstreamPool.begin``)."""

    def __init__(self, pool: "UpstreamPool", method: str, data: bytes, on_sent: Callable[[float], None] | None) -> None:
        self.pool = pool
        self.method = method
        self.data = data
        self.on_sent = on_sent
        self.on_response: Callable[["UpstreamResponse"], None] | None = None
        """Told the response, synchronously, the moment its head is in: inside
        the connection's callback that completed it, so its body can be
        relayed from its first bytes with no task hop. What it raises,
        ``response()`` raises."""
        self.conn: _Conn | None = None
        self.sent: float | None = None
        self._response: UpstreamResponse | None = None
        self._error: Exception | None = None

    def write(self, conn: _Conn) -> None:
        """The request, whole, on ``conn``; on the socket now unless the socket's buffer is full."""
        self.conn = conn
        self.pool._busy.add(conn)
        conn.wire.on_bytes = self._bytes_in
        conn.transport.write(self.data)
        if not conn.transport.get_write_buffer_size():
            self._on_socket()

    def _bytes_in(self) -> None:
        """In the connection's callback: once the head is in, the response
        (``on_response``); what cannot be read is left to ``response()``."""
        conn = self.conn
        if conn is None or self.sent is None:
            return
        try:
            head = conn.wire.take_head()
        except UpstreamError:
            conn.wire.on_bytes = None
            return  # response() reads it again and says so
        if head is None:
            return
        conn.wire.on_bytes = None
        try:
            self._respond(head, conn)
        except Exception as exc:  # raised by response(), never into the transport's callback
            self._error = exc

    def _respond(self, head: bytes, conn: _Conn) -> "UpstreamResponse":
        assert self.sent is not None
        self._response = read_response(head, self.sent, conn, self.pool, self.method)
        if self.on_response is not None:
            self.on_response(self._response)
        return self._response

    def _on_socket(self) -> None:
        first = self.sent is None
        self.sent = time.monotonic()
        if first and self.on_sent is not None:
            self.on_sent(self.sent)

    async def response(self) -> "UpstreamResponse":
        """The response head; a kept-alive connection found closed before any
        byte of it is retried once on a fresh one. Raises ``UpstreamError``."""
        for attempt in (1, 2):
            if self.conn is None:
                self.write(self.pool._take_idle() or await self.pool._open())
            conn = self.conn
            assert conn is not None
            if conn.transport.get_write_buffer_size():
                await conn.wire.writable()
                self._on_socket()
                self._bytes_in()  # a head that came in while the request was still going out
            while conn.wire.on_bytes is not None and not conn.wire.ended:
                await conn.wire.until_woken()  # the head is read in the callback (_bytes_in)
            if self._error is not None:
                self.pool.drop(conn)
                raise self._error
            if self._response is not None:
                return self._response
            conn.wire.on_bytes = None
            try:
                head = await conn.wire.read_head()
            except UpstreamError:
                self.pool.drop(conn)
                raise
            if head is None:
                self.pool.drop(conn)
                if conn.reused and attempt == 1:
                    self.conn = None
                    continue  # a kept-alive connection the server had closed: once more, fresh
                break
            return self._respond(head, conn)
        raise UpstreamError(f"{self.pool.authority} closed the connection before answering")


class UpstreamPool:
    """Kept-alive connections to one backend (its scheme, host and port)."""

    def __init__(self, base_url: str, connect_timeout: float) -> None:
        parts = urlsplit(base_url)
        self.scheme = parts.scheme or "http"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        default = (self.scheme == "https" and self.port == 443) or (self.scheme == "http" and self.port == 80)
        self.authority = self.host if default else f"{self.host}:{self.port}"
        self.connect_timeout = connect_timeout
        self._idle: list[_Conn] = []
        self._busy: set[_Conn] = set()
        """Connections a request is on (closed with the pool)."""
        self._warming: asyncio.Task[None] | None = None

    def drop(self, conn: _Conn) -> None:
        """Close a connection a request was on."""
        self._busy.discard(conn)
        conn.close()

    def put(self, conn: _Conn) -> None:
        conn.reused = True
        self._busy.discard(conn)
        self._idle.append(conn)

    def _take_idle(self) -> _Conn | None:
        """A kept-alive connection ready now (a spare is opened behind the last one), or None."""
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                if not self._idle:
                    self.warm()
                return conn
            conn.close()
        return None

    def warm(self) -> None:
        """Open a spare connection in the background when none is idle or
        being opened, so the next request's set-up lands in no TTFT. A spare
        that fails is dropped (the request that needs one says why); one the
        server closed before use is retried like any kept-alive one."""
        if self._idle or self._warming:
            return
        self._warming = asyncio.get_running_loop().create_task(self._spare())

    async def _spare(self) -> None:
        try:
            conn = await self._open()
        except UpstreamError:
            return
        finally:
            self._warming = None
        conn.reused = True
        self._idle.append(conn)

    async def _open(self) -> _Conn:
        ssl = tls_context(f"{self.scheme}://{self.authority}", trust_env=False) if self.scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, wire = await loop.create_connection(_Wire, self.host, self.port, ssl=ssl,
                                                       server_hostname=self.host if ssl else None)
        except TimeoutError:
            raise UpstreamError(f"connect timeout after {self.connect_timeout:g} s to {self.authority}") from None
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {self.authority}: {exc.strerror or exc}") from None
        return _Conn(wire)

    def begin(self, method: str, target: str, headers: dict[str, str], body: bytes,
              on_sent: Callable[[float], None] | None = None) -> "Exchange":
        """Start one request (``target``: path and query): written now, in one
        write, when a kept-alive connection is idle, else once
        ``Exchange.response()`` has one. ``on_sent(monotonic)`` is told once,
        the moment the request is on the socket, before any wait for the answer."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        exchange = Exchange(self, method, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body, on_sent)
        conn = self._take_idle()
        if conn is not None:
            exchange.write(conn)
        return exchange

    def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        for conn in [*self._idle, *self._busy]:
            conn.close()
        self._idle.clear()
        self._busy.clear()


__all__ = ["Exchange", "UpstreamError", "UpstreamPool", "UpstreamResponse"]
