"""The HTTP side shared by the three protocol clients: one httpx2 client per
backend, and the streaming loop itself (the turn's deadlines are kept by
``watchdog.py``; failure reasons are built in ``errors.py``).

Invariant: ``RequestSent`` carries the moment the request was written to
the socket (taken from httpcore2's ``send_request_body`` trace events, see
``SYNC_WRITE_LIMIT``), so connecting and queueing behind other lanes are not
part of TTFT; it is yielded once the response head is in (or, at a failure
before that, stamped then if the body never went out), always before
``FirstByte``. Every chunk is stamped with the moment its bytes came off the
socket, before any decoding or parsing, and every event parsed from it
carries that stamp: on a race loop (``poll_stamps``) the poll that found
them waiting, so lanes one poll reports are stamped alike whatever the loop
does for the ones before them; elsewhere ``clock()`` right after the read.
Stamps never go back within a turn, nor before its ``RequestSent``. Anything that goes wrong ends the stream with
``BackendError(reason)`` where ``reason`` is one line a person can act on,
never holds the API key, and comes after every event the stream already
produced.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
from typing import Any, AsyncIterator, Iterable
from urllib.parse import urlsplit

import httpx2

from thunderdome.backends.base import BackendError, ChatRequest, Clock
from thunderdome.backends.errors import (
    body_message,
    error_message,
    one_line,
    read_some,
    status_error,
    transport_error,
)
from thunderdome.backends.poll_stamps import arrival_reader, clock_origin
from thunderdome.backends.sse import FrameError, SSEDecoder
from thunderdome.backends.queue_probe import probe, queued_reason
from thunderdome.backends.watchdog import TurnTimer, first_token_reason
from thunderdome.events import (
    Event,
    FirstByte,
    RequestSent,
    ServerTimings,
    StreamEnded,
    TokenDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
)
from thunderdome.redact import redact
from thunderdome.specs import BackendSpec, Timeouts

DRAIN_S = 0.5
"""After the end marker: how long to wait for the body's end, so the
connection can go back to the pool."""
BODY_STARTED, BODY_COMPLETE = "http11.send_request_body.started", "http11.send_request_body.complete"
SENT_TRACES = frozenset({BODY_STARTED, BODY_COMPLETE})
SYNC_WRITE_LIMIT = 16 * 1024
"""Bodies up to this size go to the kernel in one synchronous ``send()``
right after httpcore2's ``send_request_body.started`` event (no await in
between; 16 KiB is Linux's smallest default TCP send buffer). Its
``.complete`` event comes one event-loop turn later (anyio yields after the
write), which on a loop busy with other lanes' streams is milliseconds late.
So small bodies are stamped at ``.started``, larger ones at ``.complete``."""
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_ARGUMENTS = 1_000_000
"""Characters of one tool call's arguments kept at most (a reply's text
limit, ``race.reply.REPLY_LIMIT``, does not see them): beyond, the lane fails."""


@functools.lru_cache(maxsize=8)
def _ssl_context(verify: bool, trust_env: bool, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """One SSL context per setting, shared by every client of the process
    (loading the CA store costs ~16 ms; contexts are safe to share)."""
    return httpx2.create_ssl_context(verify=verify, trust_env=trust_env)


def tls_context(base_url: str, trust_env: bool) -> ssl.SSLContext:
    """What a client for ``base_url`` verifies with. A plain-http loopback URL
    never meets TLS (no proxy, no redirects followed): no CA store to load.
    Anything else verifies certificates as httpx2 would, with a shared context."""
    parts = urlsplit(base_url)
    if parts.scheme == "http" and not trust_env:
        return _ssl_context(False, False, None, None)
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else (None, None)
    return _ssl_context(True, trust_env, *env)


def make_client(timeouts: Timeouts, base_url: str) -> httpx2.AsyncClient:
    """One pooled HTTP/1.1 client. No read timeout here: the turn's own
    first-token / idle / total timeouts (``TurnTimer``) govern reads. Proxy
    settings from the environment apply, except for loopback servers."""
    host = urlsplit(base_url).hostname or ""
    trust_env = host not in _LOOPBACK
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(connect=timeouts.connect, read=None, write=timeouts.connect, pool=timeouts.connect),
        http1=True,
        http2=False,
        follow_redirects=False,
        trust_env=trust_env,
        verify=tls_context(base_url, trust_env),
        headers={"user-agent": "thunderdome"},
    )


# --- protocol parsing and the streaming loop ---------------------------------------------


def as_int(value: Any) -> int | None:
    """``value`` if it is a real int (JSON numbers only; booleans are not counts)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_number(value: Any) -> float | None:
    """``value`` as a float if it is a JSON number (not a boolean)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class StreamParser:
    """Turns one protocol's frames into events; tracks tokens and the end.

    ``take(frames, t, out)`` is the one way in: it appends the events of a
    chunk's frames (as the decoder's ``split`` returns them) to ``out`` and
    stops at the end marker. It raises BackendError for an error frame and
    FrameError for junk, after appending the events of the frames before it.
    Tool calls go through ``call_start`` / ``call_delta`` / ``call_done``:
    a call's ``ToolCallStarted`` comes once, when its name is known; its
    argument deltas count in ``tokens`` like text; its ``ToolCallDone``
    comes once, only for a started call, and never from a cut stream."""

    end_name = "its end marker"

    def __init__(self, lane: str, turn: int) -> None:
        self.lane = lane
        self.turn = turn
        self.tokens = 0
        """Non-empty deltas so far (both channels and tool-call arguments)."""
        self.ended = False
        self.finish_reason: str | None = None
        self.calls: dict[Any, _Call] = {}
        """This turn's tool calls by the protocol's key for them, in order."""

    def one(self, frame: Any, t: float, out: list[Event]) -> None:
        """Append the events of one frame (a decoder ``split`` item) to ``out``."""
        raise NotImplementedError

    def take(self, frames: Iterable[Any], t: float, out: list[Event]) -> None:
        one = self.one
        for frame in frames:
            one(frame, t, out)
            if self.ended:
                return

    def server_timings(self, out: list[Event], t: float, fields: dict[str, Any]) -> None:
        """A ``ServerTimings`` from what a frame said (``server_timings``
        module), if it said anything (the reducer keeps each field's latest)."""
        known = {k: v for k, v in fields.items() if v is not None}
        if known:
            out.append(ServerTimings(t=t, lane=self.lane, turn=self.turn, **known))

    def token(self, out: list[Event], t: float, text: Any, channel: str) -> None:
        if text and isinstance(text, str):
            out.append(TokenDelta(t, self.lane, text, channel, self.turn))  # type: ignore[arg-type]  # fields in order
            self.tokens += 1

    # tool calls: ``key`` is however the protocol tells its calls apart
    # (an index, a block index, an item id); ``index`` is the call's place.
    def call_start(self, out: list[Event], t: float, key: Any, call_id: Any, name: Any) -> None:
        """Call ``key`` has (at least) its name: ``ToolCallStarted``, once."""
        call = self.calls.get(key)
        if call is None:
            call = self.calls[key] = _Call(len(self.calls))
        if call_id and isinstance(call_id, str) and not call.call_id:
            call.call_id = call_id
        if call.started or not (name and isinstance(name, str)):
            return
        call.name, call.started = name, True
        if not call.call_id:
            call.call_id = f"call_{self.turn}_{call.index}"
        out.append(ToolCallStarted(t=t, lane=self.lane, turn=self.turn, call_id=call.call_id, name=name, index=call.index))

    def call_delta(self, out: list[Event], t: float, key: Any, text: Any) -> None:
        """A fragment of call ``key``'s arguments: output, like ``token``."""
        if text and isinstance(text, str):
            call = self.calls.get(key)
            if call is None:
                call = self.calls[key] = _Call(len(self.calls))
            call.parts.append(text)
            call.size += len(text)
            if call.size > MAX_ARGUMENTS:
                raise BackendError(f"tool call {call.name or '?'!r}: arguments over 1 MB: cut")
            out.append(ToolCallDelta(t, self.lane, self.turn, call.index, text))  # type: ignore[arg-type]  # fields in order
            self.tokens += 1

    def call_done(self, out: list[Event], t: float, key: Any, arguments: Any = None) -> None:
        """Call ``key`` is complete (``arguments``: the server's whole text,
        if it sends one; else the fragments). Once per started call."""
        call = self.calls.get(key)
        if call is None or call.done or not call.started:
            return
        call.done = True
        text = arguments if isinstance(arguments, str) and arguments else "".join(call.parts) or "{}"
        out.append(
            ToolCallDone(
                t=t, lane=self.lane, turn=self.turn, call_id=call.call_id, name=call.name, arguments=text, index=call.index
            )
        )

    def calls_done(self, out: list[Event], t: float) -> None:
        """Every started call that is not complete yet is, now."""
        for key in list(self.calls):
            self.call_done(out, t, key)

    def end(self, out: list[Event], t: float) -> None:
        self.ended = True
        out.append(StreamEnded(t=t, lane=self.lane, turn=self.turn, finish_reason=self.finish_reason))

    def server_error(self, obj: Any) -> BackendError:
        return BackendError(f"server error mid-stream: {error_message(obj, with_type=True)}")

    def cut_reason(self) -> str:
        open_call = next((c for c in self.calls.values() if c.started and not c.done), None)
        during = f" in the middle of tool call {open_call.name!r}" if open_call is not None else ""
        return f"stream ended without {self.end_name} after {self.tokens} tokens{during} (likely cut)"


class _Call:
    """One tool call as it forms."""

    __slots__ = ("index", "call_id", "name", "parts", "size", "started", "done")

    def __init__(self, index: int) -> None:
        self.index = index
        self.call_id = ""
        self.name = ""
        self.parts: list[str] = []
        self.size = 0
        self.started = False
        self.done = False


def expect_object(obj: Any, text: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise FrameError(f"malformed JSON frame: expected an object, got {one_line(text, 60)}")
    return obj


class StreamingBackend:
    """The shared client: subclasses say where to POST, what to send and how
    to parse; this class runs the turn. ``directive`` is not None only for sim
    lanes (sent as the body's ``thunderdome_sim`` with ``request.sim`` on top)."""

    content_types: tuple[str, ...] = ("text/event-stream",)
    stream_name = "an event stream"
    accept = "text/event-stream"
    decoder_class: type = SSEDecoder
    """Frame decoder (SSEDecoder / NDJSONDecoder); set by each protocol."""
    parser_class: type[StreamParser] = StreamParser
    """Protocol parser; set by each protocol."""

    def __init__(
        self,
        spec: BackendSpec,
        *,
        base_url: str | None = None,
        model: str | None = None,
        options: dict[str, Any] | None = None,
        directive: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.base_url = (base_url if base_url is not None else spec.url).rstrip("/")
        self.model = model or spec.model
        self.options = dict(spec.options if options is None else options)
        self.directive = dict(directive) if directive is not None else None
        self.extra_headers = dict(headers or {})
        self._client = make_client(spec.timeouts, self.base_url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.spec.name!r}, url={self.base_url!r}, model={self.model!r})"

    # subclass hooks
    def endpoint(self) -> str:
        raise NotImplementedError

    def protocol_headers(self) -> dict[str, str]:
        return {}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    def decoder(self) -> Any:
        """A fresh frame decoder for one response (``decoder_class``)."""
        return self.decoder_class()

    def parser(self, request: ChatRequest) -> StreamParser:
        """A fresh protocol parser for one turn (``parser_class``)."""
        return self.parser_class(request.lane, request.turn)

    # shared
    def sim_field(self, body: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
        if self.directive is not None:
            body["thunderdome_sim"] = {**self.directive, **(request.sim or {})}
        return body

    def request_headers(self) -> dict[str, str]:
        headers = {"accept": self.accept, "accept-encoding": "identity"}
        headers.update(self.protocol_headers())
        headers.update(self.extra_headers)
        return headers

    async def aclose(self) -> None:
        await self._client.aclose()

    def warm_url(self) -> str | None:
        """A cheap GET that opens the connection before the race (None: skip)."""
        return None

    async def warm_up(self, timeout: float = 2.0) -> bool:
        """Open (and keep) a pooled connection before the start barrier, so
        every lane starts on a warm connection, as an agent that keeps its
        connection open does. Failures are ignored: the race reports them."""
        url = self.warm_url()
        if url is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                response = await self._client.get(url, headers={**self.protocol_headers(), **self.extra_headers})
                await response.aclose()
            return True
        except Exception:  # noqa: BLE001 - best effort; the race will say what is wrong
            return False

    async def timeout_reason(self, reason: str) -> str:
        """A watchdog's reason; a first-token timeout worded as queued when
        the server says a request was waiting (``queue_probe``), before this
        turn's own request is closed."""
        if reason != first_token_reason(self.spec.timeouts):
            return reason
        busy = await probe(self._client, self.base_url, self.model, {**self.protocol_headers(), **self.extra_headers})
        return reason if busy is None else queued_reason(self.spec.timeouts.first_token, busy)

    async def stream(self, request: ChatRequest, clock: Clock) -> AsyncIterator[Event]:
        url = self.endpoint()
        lane, turn = request.lane, request.turn
        parser = self.parser(request)
        frames = self.decoder()
        sent: dict[str, float] = {}

        async def trace(name: str, info: Any) -> None:
            if name in SENT_TRACES:
                sent[name] = clock()

        outgoing = self._client.build_request(
            "POST", url, json=self.body(request), headers=self.request_headers(), extensions={"trace": trace}
        )
        small = int(outgoing.headers.get("content-length") or 0) <= SYNC_WRITE_LIMIT
        timer = TurnTimer(self.spec.timeouts, lambda: parser.tokens)
        try:
            failure: Exception | None = None
            try:
                timer.begin(0)
                try:
                    response = await self._client.send(outgoing, stream=True)
                finally:
                    timer.end()
            except asyncio.CancelledError:
                reason = timer.expired()
                if reason is None:
                    raise
                failure = BackendError(await self.timeout_reason(reason))
            except httpx2.HTTPError as exc:
                failure = transport_error(exc, url, self.spec.timeouts)
            except BackendError as exc:
                failure = exc
            t = _sent_at(sent, small, clock)
            yield RequestSent(t=t, lane=lane, turn=turn)
            if failure is not None:
                raise failure
            encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
            chunks = response.aiter_bytes() if encoded else _raw_chunks(response)
            try:
                await self._check(response)
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
                        raise BackendError(await self.timeout_reason(reason)) from None
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

    async def _check(self, response: httpx2.Response) -> None:
        if not 200 <= response.status_code < 300:
            raise await status_error(response, wait=min(5.0, self.spec.timeouts.idle))
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and content_type not in self.content_types:
            reason = f"expected {self.stream_name}, got {content_type}"
            if "json" in content_type:
                snippet = body_message(await read_some(response, wait=min(5.0, self.spec.timeouts.idle)), content_type)
                reason += f": {snippet}" if snippet else ""
            raise BackendError(reason)


def _raw_chunks(response: httpx2.Response) -> AsyncIterator[bytes]:
    """The body as it comes off the connection. ``response.stream`` (the
    transport's byte stream: httpx2 exceptions, no decoding) skips the
    bookkeeping layer of ``aiter_raw`` (~1 us per chunk); the caller closes
    the response."""
    stream = response.stream
    if isinstance(stream, httpx2.AsyncByteStream):
        return stream.__aiter__()
    return response.aiter_raw()


def _sent_at(sent: dict[str, float], small: bool, clock: Clock) -> float:
    """When the request was on the socket (see ``SYNC_WRITE_LIMIT``); at a
    failure before the body was written: now."""
    if small and BODY_STARTED in sent:
        return sent[BODY_STARTED]
    return sent.get(BODY_COMPLETE) or sent.get(BODY_STARTED) or clock()


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


__all__ = ["DRAIN_S", "MAX_ARGUMENTS", "SENT_TRACES", "SYNC_WRITE_LIMIT", "StreamParser", "StreamingBackend", "TurnTimer", "as_int", "as_number", "expect_object", "make_client", "tls_context"]
