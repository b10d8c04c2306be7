"""The HTTP side shared by the three protocol clients: one httpx client per
backend, the turn's timeouts and the streaming loop itself (failure reasons
are built in ``errors.py``).

Invariant: every chunk is stamped with ``clock()`` right after it comes off
the socket (``aiter_raw``, before any decoding or parsing) and every event
parsed from it carries that stamp. Anything that goes wrong ends the stream
with ``BackendError(reason)`` where ``reason`` is one line a person can act
on, never holds the API key, and comes after every event the stream already
produced.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, TypeVar
from urllib.parse import urlsplit

import httpx

from thunderdome.backends.base import BackendError, ChatRequest, Clock
from thunderdome.backends.errors import (
    body_message,
    error_message,
    one_line,
    read_some,
    secs,
    status_error,
    transport_error,
)
from thunderdome.backends.sse import FrameError
from thunderdome.events import Event, FirstByte, RequestSent, StreamEnded, TokenDelta
from thunderdome.specs import BackendSpec, Timeouts

T = TypeVar("T")

DRAIN_S = 0.5
"""After the end marker: how long to wait for the body's end, so the
connection can go back to the pool."""
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@functools.lru_cache(maxsize=8)
def _ssl_context(verify: bool, trust_env: bool, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """One SSL context per setting, shared by every client of the process
    (loading the CA store costs ~16 ms; contexts are safe to share)."""
    return httpx.create_ssl_context(verify=verify, trust_env=trust_env)


def tls_context(base_url: str, trust_env: bool) -> ssl.SSLContext:
    """What a client for ``base_url`` verifies with. A plain-http loopback URL
    never meets TLS (no proxy, no redirects followed): no CA store to load.
    Anything else verifies certificates as httpx would, with a shared context."""
    parts = urlsplit(base_url)
    if parts.scheme == "http" and not trust_env:
        return _ssl_context(False, False, None, None)
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else (None, None)
    return _ssl_context(True, trust_env, *env)


def make_client(timeouts: Timeouts, base_url: str) -> httpx.AsyncClient:
    """One pooled HTTP/1.1 client. No read timeout here: the turn's own
    first-token / idle / total timeouts (``TurnTimer``) govern reads. Proxy
    settings from the environment apply, except for loopback servers."""
    host = urlsplit(base_url).hostname or ""
    trust_env = host not in _LOOPBACK
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=timeouts.connect, read=None, write=timeouts.connect, pool=timeouts.connect),
        http1=True,
        http2=False,
        follow_redirects=False,
        trust_env=trust_env,
        verify=tls_context(base_url, trust_env),
        headers={"user-agent": "thunderdome"},
    )


# --- timeouts ---------------------------------------------------------------------------


class TurnTimer:
    """The turn's deadlines, measured from ``start`` (loop time, request sent):
    until the first token, ``first_token`` and ``total`` apply; after it, the
    wait for each chunk is capped by ``idle`` and ``total``."""

    def __init__(self, timeouts: Timeouts, start: float) -> None:
        self.timeouts = timeouts
        self.start = start

    def budget(self, now: float, tokens: int) -> tuple[float, str]:
        """Seconds left for the next wait, and the reason if it runs out."""
        t = self.timeouts
        left, reason = self.start + t.total - now, f"turn exceeded {secs(t.total)} s"
        if tokens == 0:
            first = self.start + t.first_token - now
            if first < left:
                left, reason = first, f"no token within {secs(t.first_token)} s"
        elif t.idle < left:
            left, reason = t.idle, f"no bytes for {secs(t.idle)} s after {tokens} tokens"
        return left, reason

    async def run(self, make: Callable[[], Awaitable[T]], tokens: int) -> T:
        """Await ``make()`` within the budget; raise BackendError when it runs out."""
        left, reason = self.budget(asyncio.get_running_loop().time(), tokens)
        if left <= 0:
            raise BackendError(reason)
        try:
            async with asyncio.timeout(left) as scope:
                return await make()
        except TimeoutError:
            if scope.expired():
                raise BackendError(reason) from None
            raise


# --- protocol parsing and the streaming loop ---------------------------------------------


class StreamParser:
    """Turns one protocol's frames into events; tracks tokens and the end.
    ``frame()`` raises BackendError for an error frame, FrameError for junk."""

    end_name = "its end marker"

    def __init__(self, lane: str, turn: int) -> None:
        self.lane = lane
        self.turn = turn
        self.tokens = 0
        """Non-empty deltas so far (both channels)."""
        self.ended = False
        self.finish_reason: str | None = None

    def frame(self, frame: Any) -> list[Event]:
        raise NotImplementedError

    def token(self, out: list[Event], t: float, text: Any, channel: str) -> None:
        if isinstance(text, str) and text:
            out.append(TokenDelta(t=t, lane=self.lane, text=text, channel=channel, turn=self.turn))  # type: ignore[arg-type]
            self.tokens += 1

    def end(self, out: list[Event], t: float) -> None:
        self.ended = True
        out.append(StreamEnded(t=t, lane=self.lane, turn=self.turn, finish_reason=self.finish_reason))

    def server_error(self, obj: Any) -> BackendError:
        return BackendError(f"server error mid-stream: {error_message(obj, with_type=True)}")

    def cut_reason(self) -> str:
        return f"stream ended without {self.end_name} after {self.tokens} tokens (likely cut)"


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
        raise NotImplementedError

    def parser(self, request: ChatRequest) -> StreamParser:
        raise NotImplementedError

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

    def _redact(self, reason: str) -> str:
        key = self.spec.api_key()
        if key and len(key) >= 4:
            reason = reason.replace(key, "***")
        return reason

    async def aclose(self) -> None:
        await self._client.aclose()

    async def stream(self, request: ChatRequest, clock: Clock) -> AsyncIterator[Event]:
        url = self.endpoint()
        parser = self.parser(request)
        frames = self.decoder()
        outgoing = self._client.build_request("POST", url, json=self.body(request), headers=self.request_headers())
        yield RequestSent(t=clock(), lane=request.lane, turn=request.turn)
        timer = TurnTimer(self.spec.timeouts, asyncio.get_running_loop().time())
        try:
            try:
                response = await timer.run(lambda: self._client.send(outgoing, stream=True), 0)
            except httpx.HTTPError as exc:
                raise transport_error(exc, url, self.spec.timeouts) from None
            encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
            chunks = response.aiter_bytes() if encoded else response.aiter_raw()
            try:
                await self._check(response, timer)
                t = 0.0
                first = True
                while not parser.ended:
                    try:
                        chunk = await timer.run(chunks.__anext__, parser.tokens)
                    except StopAsyncIteration:
                        break
                    except httpx.DecodingError:
                        raise BackendError("could not decode the compressed response body") from None
                    except httpx.TransportError:
                        raise BackendError(f"connection dropped after {parser.tokens} tokens") from None
                    t = clock()
                    if not chunk:
                        continue
                    if first:
                        first = False
                        yield FirstByte(t=t, lane=request.lane, turn=request.turn, status=response.status_code)
                    for event in _parse(frames.feed(chunk, t), parser):
                        yield event
                if not parser.ended:
                    for event in _parse(frames.close(t), parser):
                        yield event
                    if not parser.ended:
                        raise BackendError(parser.cut_reason())
                else:
                    await _drain(chunks)
            finally:
                await chunks.aclose()
                await response.aclose()
        except FrameError as exc:
            raise BackendError(self._redact(exc.reason)) from None
        except BackendError as exc:
            raise BackendError(self._redact(exc.reason)) from None

    async def _check(self, response: httpx.Response, timer: TurnTimer) -> None:
        if not 200 <= response.status_code < 300:
            raise await status_error(response, wait=min(5.0, self.spec.timeouts.idle))
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and content_type not in self.content_types:
            reason = f"expected {self.stream_name}, got {content_type}"
            if "json" in content_type:
                snippet = body_message(await read_some(response, wait=min(5.0, self.spec.timeouts.idle)), content_type)
                reason += f": {snippet}" if snippet else ""
            raise BackendError(reason)


def _parse(frames: Iterator[Any], parser: StreamParser) -> Iterator[Event]:
    for frame in frames:
        yield from parser.frame(frame)
        if parser.ended:
            return


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read the rest of the body (normally nothing) so the connection is reusable."""
    try:
        async with asyncio.timeout(DRAIN_S):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass


__all__ = ["DRAIN_S", "StreamParser", "StreamingBackend", "TurnTimer", "expect_object", "make_client", "tls_context"]
