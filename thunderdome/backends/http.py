"""The HTTP side shared by the protocol clients: the request of a turn, set
up and sent, and its failures worded. The client is made in ``client.py``,
the response read in ``chunk_loop.py`` (the hot path), frames parsed by a
``stream_parser.StreamParser``; the turn's deadlines are kept by
``watchdog.py``; failure reasons are built in ``errors.py``.

Invariant: ``RequestSent`` carries the moment the request was written to
the socket (taken from httpcore2's ``send_request_body`` trace events, see
``SYNC_WRITE_LIMIT``), so connecting and queueing behind other lanes are not
part of TTFT; it is yielded once the response head is in (or, at a failure
before that, stamped then if the body never went out), always before
``FirstByte``. A failure before the body (refused, timed out, a bad status or
content type) is one line a person can act on that never holds the API key.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, AsyncIterator, Callable

import httpx2

from thunderdome.backends.base import BackendError, ChatRequest, Clock
from thunderdome.backends.chunk_loop import DRAIN_S, stream_turn
from thunderdome.backends.client import make_client, tls_context
from thunderdome.backends.errors import body_message, read_some, status_error, transport_error
from thunderdome.backends.queue_probe import probe, queued_reason
from thunderdome.backends.sse import SSEDecoder
from thunderdome.backends.stream_parser import MAX_ARGUMENTS, StreamParser, as_int, as_number, expect_object
from thunderdome.backends.watchdog import TurnTimer, first_token_reason
from thunderdome.core.events import Event
from thunderdome.core.specs import BackendSpec

BODY_STARTED, BODY_COMPLETE = "http11.send_request_body.started", "http11.send_request_body.complete"
SENT_TRACES = frozenset({BODY_STARTED, BODY_COMPLETE})
SYNC_WRITE_LIMIT = 16 * 1024
"""Bodies up to this size go to the kernel in one synchronous ``send()``
right after httpcore2's ``send_request_body.started`` event (no await in
between; 16 KiB is Linux's smallest default TCP send buffer). Its
``.complete`` event comes one event-loop turn later (anyio yields after the
write), which on a loop busy with other lanes' streams is milliseconds late.
So small bodies are stamped at ``.started``, larger ones at ``.complete``."""


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

    def stream(self, request: ChatRequest, clock: Clock) -> AsyncIterator[Event]:
        """The turn's events, read by ``chunk_loop.stream_turn``."""
        return stream_turn(self, request, clock)

    def prepare(self, request: ChatRequest, clock: Clock) -> tuple[httpx2.Request, Callable[[], float]]:
        """The turn's POST, and when it was on the socket (``_sent_at``)."""
        sent: dict[str, float] = {}

        async def trace(name: str, info: Any) -> None:
            if name in SENT_TRACES:
                sent[name] = clock()

        outgoing = self._client.build_request(
            "POST", self.endpoint(), json=self.body(request), headers=self.request_headers(), extensions={"trace": trace}
        )
        small = int(outgoing.headers.get("content-length") or 0) <= SYNC_WRITE_LIMIT
        return outgoing, functools.partial(_sent_at, sent, small, clock)

    async def open(self, outgoing: httpx2.Request, timer: TurnTimer) -> httpx2.Response | Exception:
        """Send ``outgoing``: the response head, or the failure to raise once
        ``RequestSent`` is out; a cancellation that is no deadline of the
        turn's goes on up)."""
        try:
            timer.begin(0)
            try:
                return await self._client.send(outgoing, stream=True)
            finally:
                timer.end()
        except asyncio.CancelledError:
            reason = timer.expired()
            if reason is None:
                raise
            return BackendError(await self.timeout_reason(reason))
        except httpx2.HTTPError as exc:
            return transport_error(exc, self.endpoint(), self.spec.timeouts)
        except BackendError as exc:
            return exc

    async def check_response(self, response: httpx2.Response) -> None:
        """A response that is no stream of this protocol fails here, worded."""
        if not 200 <= response.status_code < 300:
            raise await status_error(response, wait=min(5.0, self.spec.timeouts.idle))
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and content_type not in self.content_types:
            reason = f"expected {self.stream_name}, got {content_type}"
            if "json" in content_type:
                snippet = body_message(await read_some(response, wait=min(5.0, self.spec.timeouts.idle)), content_type)
                reason += f": {snippet}" if snippet else ""
            raise BackendError(reason)


def _sent_at(sent: dict[str, float], small: bool, clock: Clock) -> float:
    """When the request was on the socket (see ``SYNC_WRITE_LIMIT``); at a
    failure before the body was written: now."""
    if small and BODY_STARTED in sent:
        return sent[BODY_STARTED]
    return sent.get(BODY_COMPLETE) or sent.get(BODY_STARTED) or clock()


__all__ = [
    "DRAIN_S",
    "MAX_ARGUMENTS",
    "SENT_TRACES",
    "SYNC_WRITE_LIMIT",
    "StreamParser",
    "StreamingBackend",
    "TurnTimer",
    "as_int",
    "as_number",
    "expect_object",
    "make_client",
    "tls_context",
]
