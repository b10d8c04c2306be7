"""The gateway's upstream side: HTTP/1.1 on asyncio streams, kept alive, one write per request.

Invariant: a request leaves in a single synchronous ``write`` (head and
body together, so it is on the socket before the event loop can run
anything else, and ``UpstreamResponse.sent`` is that moment); the response
body comes back as the pieces that arrived (chunked framing removed,
nothing waited for beyond what is already there), so the gateway can relay
each piece the moment it is read. A connection goes back to its pool only
after a body that ended cleanly, and a spare one is kept open ahead of need
(``warm``), so no request waits for a connection's set-up; a pooled
connection that turns out closed before any response byte is retried once
on a fresh one. Failures are
``UpstreamError`` with one line; nothing else escapes. TLS uses the race
clients' verification (``backends.http.tls_context``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from thunderdome.backends.http import tls_context
from thunderdome.core.errors import ThunderdomeError

READ = 65536
HEAD_LIMIT = 256 * 1024


class UpstreamError(ThunderdomeError):
    """The backend could not be reached or broke the HTTP exchange."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.transport.is_closing()

    def close(self) -> None:
        self.writer.transport.abort()


@dataclass
class UpstreamResponse:
    """A response head; ``body()`` yields its pieces as they arrive (once)."""

    status: int
    headers: list[tuple[str, str]]
    sent: float
    """time.monotonic() when the request was written to the socket."""
    _conn: _Conn
    _pool: "UpstreamPool"
    _length: int | None = None
    _chunked: bool = False
    _keep: bool = True
    _done: bool = field(default=False, init=False)

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    async def body(self) -> AsyncIterator[bytes]:
        reader = self._conn.reader
        try:
            if self._chunked:
                async for piece in _dechunk(reader):
                    yield piece
            elif self._length is not None:
                left = self._length
                while left > 0:
                    piece = await reader.read(min(READ, left))
                    if not piece:
                        raise UpstreamError(f"body ended {left} bytes short of its Content-Length")
                    left -= len(piece)
                    yield piece
            else:
                self._keep = False  # ends at the connection's close
                while piece := await reader.read(READ):
                    yield piece
            self._done = True
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            raise UpstreamError(f"connection dropped mid-body: {type(exc).__name__}") from None

    def release(self) -> None:
        """Give the connection back (a clean, whole body) or close it."""
        if self._done and self._keep and self._conn.usable():
            self._pool.put(self._conn)
        else:
            self._conn.close()


async def _dechunk(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise UpstreamError("bad chunk size in the response body") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return
        while size > 0:
            piece = await reader.read(min(READ, size))
            if not piece:
                raise asyncio.IncompleteReadError(b"", size)
            size -= len(piece)
            yield piece
        if await reader.readexactly(2) != b"\r\n":
            raise UpstreamError("bad chunk terminator in the response body")


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
        self._warming: asyncio.Task[None] | None = None

    def put(self, conn: _Conn) -> None:
        conn.reused = True
        self._idle.append(conn)

    async def _connect(self) -> _Conn:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                if not self._idle:
                    self.warm()
                return conn
            conn.close()
        return await self._open()

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
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, ssl=ssl, limit=HEAD_LIMIT,
                                                               server_hostname=self.host if ssl else None)
        except TimeoutError:
            raise UpstreamError(f"connect timeout after {self.connect_timeout:g} s to {self.authority}") from None
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {self.authority}: {exc.strerror or exc}") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(reader, writer)

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes,
                      on_sent: Callable[[float], None] | None = None) -> UpstreamResponse:
        """Send one request (``target``: path and query) and read its head.
        ``on_sent(monotonic)`` is told once, the moment the request is on the
        socket, before any wait for the answer."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (1, 2):
            conn = await self._connect()
            conn.writer.write(data)
            if conn.writer.transport.get_write_buffer_size():
                await conn.writer.drain()
            sent = time.monotonic()
            if on_sent is not None and attempt == 1:
                on_sent(sent)
            try:
                head = await conn.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                conn.close()
                if conn.reused and attempt == 1 and not exc.partial:
                    continue  # a kept-alive connection the server had closed: once more, fresh
                raise UpstreamError(f"{self.authority} closed the connection before answering") from None
            except asyncio.LimitOverrunError:
                conn.close()
                raise UpstreamError("response head over 256 KiB") from None
            except (ConnectionError, OSError) as exc:
                conn.close()
                if conn.reused and attempt == 1:
                    continue
                raise UpstreamError(f"connection to {self.authority} failed: {type(exc).__name__}") from None
            return _response(head, sent, conn, self, method)
        raise UpstreamError(f"{self.authority} closed the connection before answering")  # pragma: no cover

    def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _response(head: bytes, sent: float, conn: _Conn, pool: UpstreamPool, method: str) -> UpstreamResponse:
    lines = head.decode("latin-1").split("\r\n")
    try:
        version, code = lines[0].split(" ", 2)[:2]
        status = int(code)
    except ValueError:
        conn.close()
        raise UpstreamError(f"not an HTTP response: {lines[0][:80]!r}") from None
    headers = [(k.strip(), v.strip()) for k, sep, v in (line.partition(":") for line in lines[1:] if line) if sep]
    response = UpstreamResponse(status, headers, sent, conn, pool)
    connection = (response.header("connection") or "").lower()
    response._keep = "close" not in connection and version != "HTTP/1.0"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        response._length = 0
    elif "chunked" in (response.header("transfer-encoding") or "").lower():
        response._chunked = True
    elif response.header("content-length") is not None:
        try:
            response._length = int(response.header("content-length") or "0")
        except ValueError:
            conn.close()
            raise UpstreamError("bad Content-Length in the response") from None
    return response


__all__ = ["UpstreamError", "UpstreamPool", "UpstreamResponse"]
