"""The metering gateway: an agent's HTTP requests in, its lane's backend out, every reply measured.

Invariant: the agent gets the upstream status, headers and body bytes
unchanged (only hop-by-hop framing is redone); nothing waits for a task to
wake on the way: a request goes upstream inside the callback that read its
last byte (``agent_link``), and a reply's head and each segment of its body
go to the agent inside the callback that read them (``upstream``,
``upstream_response``); a reply is read into its turn's events after
(``reply_reading``).
Measuring never changes or delays what the agent sees: bytes are written
before any event or parsing work is done for them (that work goes to the
loop's ``Meter``, which runs it in short slices between polls, so no lane's
bytes wait for another lane's measuring), and a spare
upstream connection is kept open, so no connection set-up lands in the
agent's TTFT. Upstream, the agent's key is dropped and
the lane's real key added (the agent only ever holds a throwaway one), the
``model`` is the lane's (only that value's bytes change: ``model_field``), and a sim lane's request carries its emulator
directive (in the emulator's ``x-thunderdome-sim`` header, so the body can
go on as the agent's own bytes). Every streamed chat request (``routes.CHAT_PATHS``) is one turn of
the lane (any other request, a chat request that asked for no stream
included, is one ``RequestRelayed``): ``RequestSent`` (stamped when the
request was on the upstream socket), ``FirstByte``, then the deltas, tool
calls, usage and end that the race's own parser for that protocol reads
from the relayed bytes, each stamped with ``clock()`` as its chunk came off
the upstream socket. A reply that cannot be parsed is still relayed whole
(its parse failure is a ``Notice``); nothing the agent or upstream does
raises out of the gateway."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from thunderdome.backends.base import Clock
from thunderdome.core.events import Notice, RequestRelayed, RequestSent
from thunderdome.gateway.agent_link import AgentLink, serve_links
from thunderdome.gateway.door import bind_door, take_door
from thunderdome.gateway.meter import loop_meter
from thunderdome.gateway.model_field import read_object, with_model
from thunderdome.gateway.reply_reading import Emit, ReplyReading
from thunderdome.gateway.routes import Route, chat_route
from thunderdome.gateway.upstream import Exchange, UpstreamError, UpstreamPool, UpstreamResponse
from thunderdome.gateway.upstream_target import Upstream
from thunderdome.sim.directives import FIELD as DIRECTIVE_FIELD, HEADER as DIRECTIVE_HEADER
from thunderdome.sim.http import Request, Responder

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "host", "content-length",
})
"""Headers that describe one connection, not the message: never forwarded."""
_NOT_RELAYED = HOP_BY_HOP | {"server"}
"""Upstream's headers the agent does not get as they are (the gateway names itself if upstream does not)."""
AGENT_KEYS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})
"""Where agents put their (throwaway) key: dropped; the lane's own goes upstream."""
SERVER_NAME = "thunderdome-gateway"


@dataclass
class Relayed:
    """One request the gateway relayed (what an agent sends: the closing note's figures)."""

    method: str
    path: str
    status: int | None = None
    """Upstream's status; None when upstream could not be reached."""
    turn: int | None = None
    """The lane's turn, for a streamed chat request; else None."""
    protocol: str = ""
    chat: bool = False
    """A chat request that asked for no stream: relayed, and a ``RequestRelayed``, never a turn."""
    forward_s: float | None = None
    """Seconds from the agent's request fully read to it leaving for upstream."""
    relay_s: float | None = None
    """Seconds from the reply's first chunk off the upstream socket to it written to the agent."""


class Gateway:
    """One lane's gateway. ``directive_for(n)``: a sim lane's per-request
    directive for its ``n``-th chat request (None: none); ``on_turn(turn)``
    is told when a turn's request is on the upstream socket, right after its
    ``RequestSent``."""

    def __init__(
        self,
        lane: str,
        upstream: Upstream,
        emit: Emit,
        clock: Clock,
        *,
        directive_for: Callable[[int], dict[str, Any] | None] | None = None,
        on_turn: Callable[[int], None] | None = None,
    ) -> None:
        self.lane = lane
        self.upstream = upstream
        self.emit = emit
        self.clock = clock
        self.directive_for = directive_for
        self.on_turn = on_turn
        self.relayed: list[Relayed] = []
        self.turns = 0
        self._chats = 0
        self._model_json = json.dumps(upstream.model, ensure_ascii=False).encode("utf-8") if upstream.model else b""
        """The lane's model as a JSON string: a body without it names another model."""
        self._lane_directive_json: str | None = None
        self._pool = UpstreamPool(upstream.base_url, upstream.timeouts.connect)
        self._servers: list[asyncio.AbstractServer] = []
        self._links: set[AgentLink] = set()
        self._links_factory = serve_links(self._begin, self._links, {"Server": SERVER_NAME})
        self._door: asyncio.Task[None] | None = None

    # -- listening ---------------------------------------------------------------------

    def listen_door(self, path: str, host: str, port: int) -> str:
        """Serve on a sandbox's own ``host:port``, handed over at the Unix
        socket ``path`` (``gateway.door``: the sandbox runs ``door.py`` before
        its agent); returns ``path``. A gateway may listen in several places
        (each ``listen_*`` adds one)."""
        keeper = bind_door(path)

        async def opened(sock: socket.socket) -> None:
            self._servers.append(await asyncio.get_running_loop().create_server(self._links_factory, sock=sock))

        def refused(reason: str) -> None:
            self.emit(Notice(t=self.clock(), message=f"gateway: door refused: {reason}", level="error", lane=self.lane))

        self._door = asyncio.get_running_loop().create_task(take_door(keeper, path, (host, port), opened, refused))
        self._pool.warm()
        return path

    async def listen_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on loopback TCP; returns the base URL ``http://HOST:PORT``."""
        server = await asyncio.get_running_loop().create_server(self._links_factory, host, port, backlog=1024)
        self._servers.append(server)
        self._pool.warm()
        bound = server.sockets[0].getsockname()
        return f"http://{bound[0]}:{bound[1]}"

    async def aclose(self) -> None:
        """Stop serving, drop open connections, close the upstream client."""
        if self._door is not None:
            self._door.cancel()
            await asyncio.gather(self._door, return_exceptions=True)
        for server in self._servers:
            server.close()
        tasks = [link.task for link in self._links if link.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for link in list(self._links):
            link.abort()
        self._pool.close()
        self.flush()  # every event of what was relayed

    def flush(self) -> None:
        """Every event of what was relayed so far, emitted now (a lane that
        ends takes in its last ones first)."""
        loop_meter().flush()

    # -- one request -------------------------------------------------------------------

    def _body(self, req: Request, route: Route | None) -> tuple[bytes, bool | None, dict[str, Any] | None]:
        """The body sent upstream, whether it asks for a streamed reply (None:
        not known yet: the ``Meter`` reads it after it has gone), and (sim
        lanes) the emulator directive, which goes in a header. The agent's
        bytes go on unchanged (no copy, no re-encoding) unless their model is
        not the lane's (then only the bytes of the top-level ``model`` value
        change: ``model_field``) or they carry a directive of their own, or a
        ``model`` that is missing or given twice (then the body is re-encoded
        with the lane's model and without the directive). A body that names
        the lane's model as its first key, and that cannot hold another
        ``model`` key or a directive (``_goes_as_is``), goes on unread: no
        request's TTFT waits for its body to be parsed, however long it is.
        Any other is read now: once by ``read_object`` when the lane's
        model's JSON string is nowhere in it (it names another), else by
        ``json.loads`` (quicker), and again only if its model is not the lane's."""
        if route is None or not req.body:
            return req.body, False, None
        if self._goes_as_is(req.body):
            return req.body, None, self._directive()
        top = read_object(req.body) if self._model_json and self._model_json not in req.body else None
        body = top.value if top is not None else _object(req.body)
        if body is None:
            return req.body, False, None  # upstream says what is wrong with it
        directive = self._directive()
        model = self.upstream.model or body.get("model")
        options = body.get("options")
        own_directive = DIRECTIVE_FIELD in body or (isinstance(options, dict) and DIRECTIVE_FIELD in options)
        if body.get("model") == model and not own_directive:
            return req.body, route.streams(body), directive
        if not own_directive and isinstance(model, str):
            top = top or read_object(req.body)
            swapped = with_model(req.body, top, model) if top is not None else None
            if swapped is not None:
                return swapped, route.streams(body), directive
        body["model"] = model
        body.pop(DIRECTIVE_FIELD, None)
        if isinstance(options, dict):
            options.pop(DIRECTIVE_FIELD, None)
        return json.dumps(body, ensure_ascii=False).encode("utf-8"), route.streams(body), directive

    def _goes_as_is(self, raw: bytes) -> bool:
        """``raw`` can only be a JSON object whose one top-level ``model`` is
        the lane's, with no directive anywhere in it (or not JSON at all,
        which upstream refuses): it opens with ``{"model": <the lane's
        model>`` and holds no other ``"model"`` and no escaped ASCII (the one
        way to spell a key otherwise: ``"mod\\u0065l"``). Bytes searches only."""
        if not self._model_json:
            return False
        opened = _MODEL_FIRST.match(raw)
        if opened is None or not raw.startswith(self._model_json, opened.end()):
            return False
        after = _SPACE.match(raw, opened.end() + len(self._model_json))
        return (after is not None and raw[after.end() : after.end() + 1] in (b",", b"}")
                and raw.count(b'"model"') == 1 and _DIRECTIVE_QUOTED not in raw
                and _ESCAPED_ASCII.search(raw) is None)

    def _directive(self) -> dict[str, Any] | None:
        """A sim lane's directive for its next chat request (counted here)."""
        self._chats += 1
        if self.upstream.directive is None:
            return None
        per_request = self.directive_for(self._chats) if self.directive_for is not None else None
        return {**self.upstream.directive, **per_request} if per_request else self.upstream.directive

    def _headers(self, req: Request, directive: dict[str, Any] | None) -> dict[str, str]:
        headers = {k: v for k, v in req.headers.items()
                   if k not in HOP_BY_HOP and k not in AGENT_KEYS and k != DIRECTIVE_HEADER}
        headers["accept-encoding"] = "identity"  # the bytes are parsed as they pass
        headers.update(self.upstream.headers)
        if directive is not None:
            headers[DIRECTIVE_HEADER] = self._directive_json(directive)
        return headers

    def _directive_json(self, directive: dict[str, Any]) -> str:
        if directive is self.upstream.directive:
            if self._lane_directive_json is None:
                self._lane_directive_json = json.dumps(directive)
            return self._lane_directive_json
        return json.dumps(directive)

    def _begin(self, req: Request, out: Responder) -> Coroutine[Any, Any, None]:
        """Forward ``req`` upstream now (inside the callback that read its last
        byte, when a kept-alive connection is idle: the pool keeps one), its
        measuring to the loop's ``Meter`` (which, first of all, tells a turn
        from any other request: ``_classify``); returns the coroutine that
        relays the answer. Everything the ``Meter`` is given for this request
        runs after its ``_classify``, so it knows whether it is a turn."""
        route = chat_route(req.method, req.path)
        body, streams, directive = self._body(req, route)
        record = Relayed(req.method, req.path, protocol=route.protocol if route else "")
        self.relayed.append(record)
        meter = loop_meter()
        if route is not None:
            meter.later(self._classify, record, route, body, streams)

        def sent(at: float) -> None:
            record.forward_s = at - req.t_received
            meter.later(self._request_sent, record, self.clock())

        exchange = self._pool.begin(req.method, self.upstream.target(req.path, req.query),
                                    self._headers(req, directive), body, sent)

        def answering(response: UpstreamResponse) -> None:
            record.status = response.status
            self._start_answer(response, out, route if 200 <= response.status < 300 else None, record)

        exchange.on_response = answering
        return self._finish(req, out, exchange, record)

    # -- measuring (run by the Meter, in order) --------------------------------------------

    def _classify(self, record: Relayed, route: Route, body: bytes, streams: bool | None) -> None:
        """A chat request: a turn if it asks for a streamed reply (read here
        when ``_body`` left that to later), else a relayed chat request."""
        if streams is None:
            parsed = _object(body)
            streams = parsed is not None and route.streams(parsed)
        if streams:
            self.turns += 1
            record.turn = self.turns
        record.chat = not streams

    def _request_sent(self, record: Relayed, t: float) -> None:
        if record.turn is not None:
            self.emit(RequestSent(t=t, lane=self.lane, turn=record.turn))
            if self.on_turn is not None:
                self.on_turn(record.turn)

    def _failed(self, record: Relayed, t: float, reason: str) -> None:
        if record.turn is not None and record.forward_s is None:
            self.emit(RequestSent(t=t, lane=self.lane, turn=record.turn))
        self.emit(Notice(t=t, message=reason, level="error", lane=self.lane))
        if record.turn is None:
            self.emit(RequestRelayed(t=t, lane=self.lane, method=record.method, path=record.path, chat=record.chat))

    def _relayed(self, record: Relayed, t: float, seconds: float | None) -> None:
        if record.turn is None:
            self.emit(RequestRelayed(t=t, lane=self.lane, method=record.method, path=record.path,
                                     status=record.status, chat=record.chat, seconds=seconds))

    def _notice(self, t: float, message: str) -> None:
        self.emit(Notice(t=t, message=message, level="error", lane=self.lane))

    # -- the answer --------------------------------------------------------------------

    async def _finish(self, req: Request, out: Responder, exchange: Exchange, record: Relayed) -> None:
        """The answer's end (it started in ``_start_answer``, as its head came in) or a 502."""
        later = loop_meter().later
        try:
            response = await exchange.response()
        except UpstreamError as exc:
            reason = f"gateway: {req.method} {req.path} to {self._pool.authority} failed: {exc}"
            later(self._failed, record, self.clock(), reason)
            await out.send_json(502, {"error": {"message": reason, "type": "gateway_error"}}, {"Server": SERVER_NAME})
            return
        try:
            try:
                await response.finish_relay(out.drain)
            except UpstreamError as exc:
                later(self._notice, self.clock(), f"gateway: upstream broke the reply: {exc}")
                out.abort()  # the agent sees the cut as it happened
                return
            await out.flush()
            await out.end()
        finally:
            response.release()
        seconds = time.monotonic() - exchange.sent if exchange.sent is not None else None
        later(self._relayed, record, self.clock(), seconds)

    def _start_answer(self, response: UpstreamResponse, out: Responder, route: Route | None, record: Relayed) -> None:
        """Start relaying ``response`` to the agent; parse it (``route``, if
        the request is a turn) into the turn's events. Called the moment its
        head is in (inside the upstream connection's callback), so each
        segment's bytes are written to the agent in the callback that read
        them, before anything else is done with them (whole chunks as they
        came, else framed anew); their events and parsing go to the loop's
        ``Meter`` (in order, in short slices between polls), so no lane's
        bytes wait for another lane's parsing."""
        headers = {k: v for k, v in response.headers if k.lower() not in _NOT_RELAYED}
        headers["Server"] = response.header("server") or SERVER_NAME
        length = response.header("content-length")
        chunked = length is None
        if not chunked:
            headers["Content-Length"] = str(length)
        out.hold(response.status, headers, chunked=chunked)
        reading = ReplyReading(self.emit, self.lane, record, route, response.status)
        later = loop_meter().later
        first = True

        def push(pieces: list[bytes], last: bool, framed: bytes | None) -> bool:
            nonlocal first
            t = self.clock()
            if first:
                arrived = time.monotonic()
                backed_up = out.write_now(pieces, last, framed)
                if pieces:
                    record.relay_s = time.monotonic() - arrived
                    first = False
                    later(reading.first, pieces, last, t)
                    return backed_up
            else:
                backed_up = out.write_now(pieces, last, framed)
            later(reading.feed, pieces, last, t)
            return backed_up

        response.start_relay(push)


_MODEL_FIRST = re.compile(rb'[ \t\n\r]*\{[ \t\n\r]*"model"[ \t\n\r]*:[ \t\n\r]*')
_SPACE = re.compile(rb"[ \t\n\r]*")
_ESCAPED_ASCII = re.compile(rb"\\u00[2-7][0-9A-Fa-f]")
"""A \\u escape of a printable ASCII character (how a key could spell ``model`` without those bytes)."""
_DIRECTIVE_QUOTED = json.dumps(DIRECTIVE_FIELD).encode()


def _object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` as ``json.loads`` reads it, if that is a JSON object; else None."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


__all__ = ["AGENT_KEYS", "Gateway", "Relayed"]
