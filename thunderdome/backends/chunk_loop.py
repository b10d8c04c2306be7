"""One turn's stream, read: the chunk loop and its stamping (the token hot path).

Invariant: ``RequestSent`` comes first, then ``FirstByte`` with the first
non-empty chunk. Every chunk is stamped with the moment its bytes came off the
socket, before any decoding or parsing, and every event parsed from it
carries that stamp: on a race loop (``poll_stamps``) the poll that found
them waiting, so lanes one poll reports are stamped alike whatever the loop
does for the ones before them; elsewhere ``clock()`` right after the read.
Stamps never go back within a turn, nor before its ``RequestSent``. Anything
that goes wrong ends the stream with ``BackendError(reason)``, redacted, after
every event the stream already produced. The request itself is set up, and
its failures before the body worded, by ``http.StreamingBackend``.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Protocol

import httpx2

from thunderdome.backends.base import BackendError, ChatRequest, Clock
from thunderdome.backends.poll_stamps import arrival_reader, clock_origin
from thunderdome.backends.sse import FrameError
from thunderdome.backends.stream_parser import StreamParser
from thunderdome.backends.watchdog import TurnTimer
from thunderdome.core.events import Event, FirstByte, RequestSent
from thunderdome.core.redact import redact
from thunderdome.core.specs import BackendSpec


class TurnBackend(Protocol):
    """What the turn loop needs of a backend (``http.StreamingBackend`` is one):
    named here, so this module does not import the backend back."""

    spec: BackendSpec

    def parser(self, request: ChatRequest) -> StreamParser: ...

    def decoder(self) -> Any: ...

    def prepare(self, request: ChatRequest, clock: Clock) -> tuple[httpx2.Request, Callable[[], float]]: ...

    async def open(self, outgoing: httpx2.Request, timer: TurnTimer) -> httpx2.Response | Exception: ...

    async def check_response(self, response: httpx2.Response) -> None: ...

    async def timeout_reason(self, reason: str) -> str: ...


DRAIN_S = 0.5
"""After the end marker: how long to wait for the body's end, so the
connection can go back to the pool."""


async def stream_turn(backend: TurnBackend, request: ChatRequest, clock: Clock) -> AsyncIterator[Event]:
    """The events of ``request``'s turn on ``backend`` (``Backend.stream``)."""
    lane, turn = request.lane, request.turn
    parser = backend.parser(request)
    frames = backend.decoder()
    outgoing, sent_at = backend.prepare(request, clock)
    timer = TurnTimer(backend.spec.timeouts, lambda: parser.tokens)
    try:
        opened = await backend.open(outgoing, timer)
        t = sent_at()
        yield RequestSent(t=t, lane=lane, turn=turn)
        if isinstance(opened, Exception):
            raise opened
        response = opened
        encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
        chunks = response.aiter_bytes() if encoded else _raw_chunks(response)
        try:
            await backend.check_response(response)
            # the hot loop: one watchdog check, one stamp, one split, one parse per chunk
            read = chunks.__anext__
            split = frames.split
            take = parser.take
            arrival = arrival_reader(response.extensions.get("network_stream"))
            origin = clock_origin(clock) if arrival is not None else 0.0
            out: list[Event] = []
            first = True
            while not parser.ended:
                timer.begin(parser.tokens)
                try:
                    chunk = await read()
                    polled = arrival() if arrival is not None else None
                    # the poll that found the bytes (on the race clock), else now
                    now = polled - origin if polled is not None else clock()
                    if now > t:
                        t = now
                except StopAsyncIteration:
                    break
                except asyncio.CancelledError:
                    reason = timer.expired()
                    if reason is None:
                        raise
                    raise BackendError(await backend.timeout_reason(reason)) from None
                except httpx2.DecodingError:
                    raise BackendError("could not decode the compressed response body") from None
                except httpx2.TransportError:
                    raise BackendError(f"connection dropped after {parser.tokens} tokens") from None
                finally:
                    timer.end()
                if not chunk:
                    continue
                if first:
                    first = False
                    yield FirstByte(t=t, lane=lane, turn=turn, status=response.status_code)
                got, error = split(chunk)
                if got or error is not None:
                    failure = _take(take, got, error, t, out, parser)
                    for event in out:  # the frames before a bad one still count
                        yield event
                    out.clear()
                    if failure is not None:
                        raise failure
            if not parser.ended:
                got, error = frames.close_split()
                failure = _take(take, got, error, t, out, parser)
                for event in out:
                    yield event
                if failure is not None:
                    raise failure
                if not parser.ended:
                    raise BackendError(parser.cut_reason())
            else:
                await _drain(chunks)
        finally:
            await chunks.aclose()
            await response.aclose()
    except FrameError as exc:
        raise BackendError(redact(exc.reason)) from None
    except BackendError as exc:
        raise BackendError(redact(exc.reason)) from None
    finally:
        timer.close()


def _raw_chunks(response: httpx2.Response) -> AsyncIterator[bytes]:
    """The body as it comes off the connection. ``response.stream`` (the
    transport's byte stream: httpx2 exceptions, no decoding) skips the
    bookkeeping layer of ``aiter_raw`` (~1 us per chunk); the caller closes
    the response."""
    stream = response.stream
    if isinstance(stream, httpx2.AsyncByteStream):
        return stream.__aiter__()
    return response.aiter_raw()


def _take(take: Any, got: Any, error: FrameError | None, t: float, out: list[Event], parser: StreamParser) -> Exception | None:
    """Parse a chunk's frames into ``out``; return (not raise) what stopped
    them, so the events of the frames before it can be yielded first."""
    try:
        take(got, t, out)
    except (FrameError, BackendError) as exc:
        return exc
    if error is not None and not parser.ended:
        return error
    return None


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read the rest of the body (normally nothing) so the connection is reusable."""
    try:
        async with asyncio.timeout(DRAIN_S):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx2.HTTPError):
        pass


__all__ = ["DRAIN_S", "stream_turn"]
