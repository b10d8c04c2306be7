"""A minimal HTTP/1.1 layer on asyncio streams: requests in, responses out.

Invariant: every byte the emulator sends leaves through ``Responder``, and
each ``send`` is written and drained before it returns (TCP_NODELAY is on),
so a frame is on the wire at the moment the caller decided to send it.
Streamed bodies use ``Transfer-Encoding: chunked``; a body ends properly only
through ``end()`` (the zero-length chunk), while ``abort()`` drops the socket
without it, the way a crashed server does. A request's ``t_arrival`` is
when its last bytes reached the connection's reader (stamped in the
protocol's ``data_received``, before any task runs; on a precise loop, at
the return of the poll that reported them): never before the request was
complete, and not moved later by a serving loop busy with other requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Awaitable, Callable

from thunderdome.core.errors import ThunderdomeError
from thunderdome.sim.precise_loop import last_poll

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024


class HttpError(ThunderdomeError):
    """The request could not be parsed; answer ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(ThunderdomeError):
    """The client closed the connection while we were answering."""


@dataclass
class Request:
    method: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    """Lower-cased names; repeated headers joined with ``, ``."""
    body: bytes
    t_received: float = 0.0
    """time.monotonic() when the whole request (head and body) was read."""
    t_head: float = 0.0
    """time.monotonic() when the request head was read."""
    t_arrival: float = 0.0
    """time.monotonic() when the whole request had reached the server (the
    poll that delivered its last bytes): the schedule's base. A pipelined
    request: when the server turned to it."""

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def json(self) -> Any:
        """The body parsed as JSON. Raises ValueError when it is not."""
        return json.loads(self.body.decode("utf-8"))


class ArrivalReader(asyncio.StreamReader):
    """A StreamReader that notes when bytes last came in (``t_fed``: the return
    of the poll that reported them on a precise loop, else the clock when
    they were fed); ``read_request`` turns that into a request's arrival."""

    t_fed: float | None = None
    served = 0
    """Requests read so far on this connection."""

    def feed_data(self, data: bytes) -> None:
        if data:
            polled = last_poll()
            self.t_fed = polled if polled is not None else time.monotonic()
        super().feed_data(data)

    def arrival(self, t_call: float, now: float) -> float:
        """When the request just read had fully arrived: the latest feed (its
        last bytes were in by then), but on a reused connection never before
        the server turned to it (``t_call``: a request pipelined behind the
        previous answer waits its turn), and never after ``now``."""
        stamp = self.t_fed if self.t_fed is not None else now
        if self.served:
            stamp = max(stamp, t_call)
        self.served += 1
        return min(stamp, now)


async def start_http_server(
    on_connection: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    host: str,
    port: int,
    limit: int = 256 * 1024,
) -> asyncio.AbstractServer:
    """``asyncio.start_server`` with an ``ArrivalReader`` per connection."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = ArrivalReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, on_connection, loop=loop)

    return await loop.create_server(factory, host, port, backlog=1024)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError(400, "bad chunk size in request body") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY:
            raise HttpError(413, "request body too large")
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise HttpError(400, "bad chunk terminator in request body")


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
"""What no request line or header may hold (a tab may separate a header's words)."""


def parse_head(head: bytes) -> tuple[str, str, str, str, dict[str, str]]:
    """A request head (through its blank line): method (as sent), path,
    query, version and headers (lower-cased names; repeated ones joined with
    ``, ``). Raises ``HttpError``."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise HttpError(400, "malformed request line") from None
    if _CONTROL.search("".join(lines)):
        raise HttpError(400, "control character in the request head")  # a bare CR or LF would end a line upstream
    if not version.startswith("HTTP/1."):
        raise HttpError(505, "only HTTP/1.x is served")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, "malformed header line")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    path, _, query = target.partition("?")
    return method, path, query, version, headers


def expects_continue(headers: dict[str, str]) -> bool:
    return headers.get("expect", "").lower() == "100-continue"


def body_length(headers: dict[str, str]) -> int | None:
    """The request body's length from its head; None: it is chunked. Raises ``HttpError``."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return None
    try:
        length = int(headers.get("content-length", "0") or "0")
    except ValueError:
        raise HttpError(400, "bad Content-Length") from None
    if length < 0 or length > MAX_BODY:
        raise HttpError(413, "request body too large")
    return length


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
    """Read one request; None on a clean end of the connection between requests."""
    t_call = time.monotonic()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError(400, "truncated request head") from None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request head too large") from None
    t_head = time.monotonic()
    method, path, query, version, headers = parse_head(head)
    if expects_continue(headers):
        writer.write(CONTINUE)
        await writer.drain()
    try:
        length = body_length(headers)
        body = await _read_chunked(reader) if length is None else await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        raise ClientGone() from None
    except asyncio.LimitOverrunError:
        raise HttpError(400, "request body chunk line too long") from None
    t_received = time.monotonic()
    arrival = reader.arrival(t_call, t_received) if isinstance(reader, ArrivalReader) else t_received
    return Request(method.upper(), path, query, version, headers, body, t_received, t_head, arrival)


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _phrase(status: int) -> str:
    """The reason phrase of ``status``; "" for a code HTTP does not name (a relayed 299 or 599)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


@dataclass
class Responder:
    """Writes one response. ``trickle``: every byte goes out in its own write."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    keep_alive: bool = True
    trickle: bool = False
    http10: bool = False
    """An HTTP/1.0 client gets streams unframed, ended by closing the connection."""
    chunked: bool = field(default=False, init=False)
    closed: bool = field(default=False, init=False)
    ended: bool = field(default=False, init=False)
    """The body's end is written."""
    _held: bytes = field(default=b"", init=False)
    """Status line and headers held back by ``start(hold=True)``."""

    def client_gone(self) -> bool:
        return self.reader.at_eof() or self.writer.transport.is_closing()

    async def _raw(self, data: bytes) -> None:
        if self._held:
            data, self._held = self._held + data, b""
        if self.closed or self.client_gone():
            raise ClientGone()
        try:
            if self.trickle:
                for i in range(len(data)):
                    self.writer.write(data[i : i + 1])
                    await self.writer.drain()
                    await asyncio.sleep(0)  # let the peer's reads interleave
            else:
                self.writer.write(data)
                await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGone() from exc

    async def start(self, status: int, headers: dict[str, str], *, chunked: bool, hold: bool = False) -> None:
        """Send the status line and headers. ``hold``: keep them until the next
        write or ``flush()``, so they leave with the first frames in one write."""
        self.hold(status, headers, chunked=chunked)
        if not hold:
            await self._raw(b"")

    def hold(self, status: int, headers: dict[str, str], *, chunked: bool) -> None:
        """The status line and headers, held until the next write (``start(hold=True)``, without a wait)."""
        lines = [f"HTTP/1.1 {status} {_phrase(status)}"]
        merged = {"Server": "thunderdome-sim", **headers}
        if chunked and self.http10:
            chunked, self.keep_alive = False, False
        if chunked:
            merged["Transfer-Encoding"] = "chunked"
        merged["Connection"] = "keep-alive" if self.keep_alive else "close"
        lines += [f"{k}: {v}" for k, v in merged.items()]
        self.chunked = chunked
        self._held = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def flush(self) -> None:
        """Send held headers now (no-op when nothing is held)."""
        if self._held:
            await self._raw(b"")

    async def send(self, payload: bytes) -> None:
        """One piece of body: one chunk when chunked (an empty payload is skipped,
        since a zero-length chunk would end the body)."""
        if not payload:
            await self.flush()
            return
        if self.chunked:
            await self._raw(b"%x\r\n%s\r\n" % (len(payload), payload))
        else:
            await self._raw(payload)

    def write_now(self, pieces: list[bytes], end: bool = False, framed: bytes | None = None) -> bool:
        """Body pieces written at once, with no wait (framed as ``send`` frames
        each, held headers first, and with ``end`` the body's end as ``end()``
        writes it, all in one write): for a relay that passes bytes on inside
        the callback that read them. ``framed``: the same pieces already in
        whole chunks (with the last chunk when ``end``), written as they are
        when the body is chunked. True when the writer's buffer is over
        its high-water mark (``drain`` before more). Raises ``ClientGone``."""
        if self.trickle:
            raise RuntimeError("write_now does not trickle")
        if self.chunked and framed is not None:
            body = framed
        elif self.chunked:
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
            if end and not self.ended:
                body += b"0\r\n\r\n"
        else:
            body = b"".join(pieces)
        self.ended = self.ended or end
        data, self._held = self._held + body, b""
        if self.closed or self.client_gone():
            raise ClientGone()
        if not data:
            return False
        transport = self.writer.transport
        transport.write(data)
        return transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]

    async def drain(self) -> None:
        """Wait until the writer's buffer is below its low-water mark. Raises ``ClientGone``."""
        try:
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGone() from exc

    async def end(self) -> None:
        """End a chunked body properly (the zero-length chunk), once."""
        if self.chunked and not self.ended:
            await self._raw(b"0\r\n\r\n")
        self.ended = True

    async def send_full(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        """A complete response with Content-Length."""
        hdrs = {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}
        await self.start(status, hdrs, chunked=False)
        await self._raw(body)

    async def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        await self.send_full(status, body, "application/json", headers)

    def abort(self) -> None:
        """Drop the connection now: no terminating chunk, no goodbye."""
        self.closed = True
        self.writer.transport.abort()


__all__ = [
    "ArrivalReader",
    "ClientGone",
    "HttpError",
    "Request",
    "Responder",
    "body_length",
    "expects_continue",
    "parse_head",
    "read_request",
    "set_nodelay",
    "start_http_server",
]


Handler = Callable[[Request, "Responder"], Awaitable[None]]


async def serve_requests(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handle: Handler,
    conns: set[asyncio.Task],
    *,
    error_headers: dict[str, str] | None = None,
    name: str = "server",
) -> None:
    """Serve one connection's requests in turn with ``handle`` (keep-alive,
    HTTP/1.0 answered as such); a request that cannot be parsed gets a 400-ish
    JSON error and the connection closes. The running task is in ``conns``
    while it serves (so a ``stop`` can cancel it); cancelled, it aborts the
    connection quietly; a bug in ``handle`` drops this connection only."""
    task = asyncio.current_task()
    assert task is not None
    conns.add(task)
    set_nodelay(writer)
    try:
        while True:
            try:
                req = await read_request(reader, writer)
            except HttpError as exc:
                out = Responder(reader, writer, keep_alive=False)
                await out.send_json(exc.status, {"error": {"message": exc.message, "type": "bad_request"}}, error_headers)
                break
            if req is None:
                break
            out = Responder(reader, writer, keep_alive=req.keep_alive, http10=req.version == "HTTP/1.0")
            await handle(req, out)
            if out.closed or not out.keep_alive:
                break
    except (ClientGone, ConnectionError, asyncio.IncompleteReadError):
        pass
    except asyncio.CancelledError:  # stopped: end quietly (streams' callback chokes on a cancelled task)
        writer.transport.abort()
    except Exception:  # a bug while answering: drop this connection, keep serving
        log.exception("%s failed while answering", name)
        writer.transport.abort()
    finally:
        conns.discard(task)
        if not writer.transport.is_closing():
            writer.close()
