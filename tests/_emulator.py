"""Shared helpers for the backend protocol tests (a plain module, not a conftest).

Two real loopback servers: the Thunderdome emulator (in a thread, one per test
module) and ``RawServer``, a tiny scripted HTTP/1.1 server running on the
test's own loop that records each request and answers with exact bytes, for
wire shapes the emulator does not make.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pytest

from thunderdome.backends import BackendError, ChatRequest, make_backend
from thunderdome.core.events import Event, FirstByte, RequestSent, StreamEnded, TokenDelta, Usage
from thunderdome.core.specs import BackendSpec, Timeouts

HANG_GUARD_S = 20.0
"""Generous bound that only protects against hangs."""

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    from thunderdome.sim.launch import start_emulator_thread

    with start_emulator_thread() as handle:
        yield handle


def sim_backend(
    url: str,
    protocol: str,
    directive: dict[str, Any] | None = None,
    *,
    model: str = "instant",
    timeouts: Timeouts | None = None,
    options: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    spec = BackendSpec(
        name="lane",
        kind="sim",
        profile=model,
        protocol=protocol,
        timeouts=timeouts or Timeouts(),
        options=dict(options or {}),
    )
    return make_backend(spec, sim_url=url, sim_directive=directive, headers=headers)


def request(max_tokens: int = 64, turn: int = 1, sim: dict[str, Any] | None = None) -> ChatRequest:
    return ChatRequest(messages=list(MESSAGES), max_tokens=max_tokens, lane="lane", turn=turn, sim=sim)


@dataclass
class Outcome:
    events: list[Event]
    error: BackendError | None

    @property
    def answer(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TokenDelta) and e.channel == "answer")

    @property
    def reasoning(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TokenDelta) and e.channel == "reasoning")

    @property
    def deltas(self) -> list[TokenDelta]:
        return [e for e in self.events if isinstance(e, TokenDelta)]

    @property
    def usages(self) -> list[Usage]:
        return [e for e in self.events if isinstance(e, Usage)]

    @property
    def ended(self) -> StreamEnded | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, StreamEnded) else None


async def collect(backend: Any, req: ChatRequest | None = None, *, close: bool = True) -> Outcome:
    """Run one turn to its end (or failure) with a real monotonic clock."""
    t0 = time.monotonic()
    events: list[Event] = []
    error: BackendError | None = None

    async def run() -> None:
        nonlocal error
        try:
            async for event in backend.stream(req or request(), lambda: time.monotonic() - t0):
                events.append(event)
        except BackendError as exc:
            error = exc

    try:
        await asyncio.wait_for(run(), HANG_GUARD_S)
    finally:
        if close:
            await backend.aclose()
    return Outcome(events, error)


def assert_well_ordered(out: Outcome, *, clean: bool = True) -> None:
    """RequestSent, then FirstByte, then the rest; times never go back."""
    assert isinstance(out.events[0], RequestSent)
    assert isinstance(out.events[1], FirstByte)
    ts = [e.t for e in out.events]
    assert ts == sorted(ts), ts
    assert all(isinstance(e.t, float) for e in out.events)
    assert all(e.text for e in out.deltas)
    if clean:
        assert out.error is None, out.error
        assert isinstance(out.events[-1], StreamEnded)
        assert sum(isinstance(e, StreamEnded) for e in out.events) == 1


# --- a scripted raw HTTP server ------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int


CLOSE = "close"
"""Script item: close the connection now."""


def chunked(pieces: list[bytes], content_type: str = "text/event-stream", *, status: str = "200 OK",
            extra: str = "", end: bool = True) -> list[Any]:
    """A chunked response: head, one HTTP chunk per piece, then the last chunk."""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{extra}"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    script: list[Any] = [head]
    for piece in pieces:
        script += [b"%x\r\n" % len(piece) + piece + b"\r\n", 0.0]
    if end:
        script.append(b"0\r\n\r\n")
    return script


@dataclass
class RawServer:
    """``respond(seen) -> script``: bytes are written (and drained), floats
    slept, ``CLOSE`` closes. Keeps the connection for the next request otherwise."""

    respond: Callable[[Seen], list[Any]]
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(method, path, headers, body, conn)
                self.seen.append(seen)
                for item in self.respond(seen):
                    if item == CLOSE:
                        writer.close()
                        return
                    if isinstance(item, float):
                        await asyncio.sleep(item)
                    else:
                        writer.write(item)
                        await writer.drain()
        except ConnectionError:
            return
        finally:
            if not writer.is_closing():
                writer.close()


def take_chunk(parser: Any, decoder: Any, body: bytes, t: float) -> list[Event]:
    """``body`` as one chunk through the stream loop's hot path: the decoder's
    ``split``, then the parser's ``take`` (which stops at the end marker); a
    framing error raises once the frames before it were taken."""
    frames, error = decoder.split(body)
    out: list[Event] = []
    parser.take(frames, t, out)
    if error is not None:
        raise error
    return out


def raw_spec(kind: str, url: str, **kw: Any) -> BackendSpec:
    return BackendSpec(name="lane", kind=kind, url=url, model="m", **kw)
