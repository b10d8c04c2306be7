"""The gateway's HTTP on both sides, byte by byte: framing, reuse, cuts, pipelining, back-pressure.

The gateway relays in its connections' own callbacks (``gateway/agent_link.py``
for the agent's side, ``gateway/upstream.py`` for the backend's), so it reads
HTTP framing itself. These tests put a real gateway between raw sockets: an
upstream that answers scripted bytes (``Scripted``) and an agent that writes
raw requests, so every framing case, broken one included, is exercised
over real loopback TCP. ``BodyFraming`` is also checked against every split
of a body's bytes (hypothesis).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from thunderdome.core.events import Event, Notice, TokenDelta
from thunderdome.gateway import Gateway, Upstream
from thunderdome.gateway.agent_link import AgentLink
from thunderdome.gateway.framing import BodyFraming, FramingError

SSE = (b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
       b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
CHAT = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()


def _chunked(payloads: list[bytes], trailer: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads if p) + b"0\r\n" + trailer + b"\r\n"


def _request(body: bytes = CHAT, path: str = "/v1/chat/completions", extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


# --- BodyFraming: any split of the bytes reads the same ------------------------------------


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)]) if b > a]


@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(st.binary(min_size=0, max_size=40), max_size=6), cuts=st.lists(st.integers(0, 10_000), max_size=12),
       trailer=st.sampled_from([b"", b"x-t: 1\r\n", b"a: b\r\nc: d\r\n"]), after=st.binary(max_size=8))
def test_a_chunked_body_split_anywhere_reads_as_its_payload(payloads, cuts, trailer, after):
    framing = BodyFraming(None, True)
    got = []
    for segment in _split(_chunked(payloads, trailer) + after, cuts):
        got += framing.take(segment)
    assert framing.done
    assert b"".join(got) == b"".join(payloads)
    assert framing.extra == after


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200), cuts=st.lists(st.integers(0, 10_000), max_size=8), after=st.binary(max_size=8))
def test_a_content_length_body_split_anywhere_ends_at_its_length(body, cuts, after):
    framing = BodyFraming(len(body), False)
    got = []
    for segment in _split(body + after, cuts):
        got += framing.take(segment)
    assert framing.done and b"".join(got) == body and framing.extra == after


def _sized(payloads: list[bytes], sizes: list[str]) -> bytes:
    """Whole chunks, each size written as ``sizes`` says (lower, upper, zero-padded hex), then the bare last chunk."""
    spell = {"lower": "%x", "upper": "%X", "padded": "%04x"}
    return b"".join((spell[sizes[i % len(sizes)]] % len(p)).encode() + b"\r\n" + p + b"\r\n"
                    for i, p in enumerate(payloads) if p) + b"0\r\n\r\n"


def _framed_anew(pieces: list[bytes], end: bool) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + (b"0\r\n\r\n" if end else b"")


@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(st.binary(min_size=0, max_size=40), max_size=6), cuts=st.lists(st.integers(0, 10_000), max_size=12),
       trailer=st.sampled_from([b"", b"x-t: 1\r\n"]), sizes=st.lists(st.sampled_from(["lower", "upper", "padded"]), min_size=1))
def test_what_is_passed_on_of_a_chunked_body_split_anywhere_frames_its_payload(payloads, cuts, trailer, sizes):
    """Each segment goes on as it came when it is whole chunks (``verbatim``),
    else its pieces framed anew: either way the agent reads the same payload,
    whatever the split, and never upstream's trailers."""
    raw = _sized(payloads, sizes)
    raw = raw[:-2] + trailer + b"\r\n"
    framing = BodyFraming(None, True)
    out = b""
    for segment in _split(raw, cuts):
        pieces = framing.take(segment)
        out += framing.verbatim if framing.verbatim is not None else _framed_anew(pieces, framing.done)
    assert framing.done
    assert BodyFramingRead(out) == b"".join(payloads)
    assert out.endswith(b"0\r\n\r\n") and not out.endswith(b"x-t: 1\r\n\r\n")


@given(payloads=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=6),
       sizes=st.lists(st.sampled_from(["lower", "upper", "padded"]), min_size=1))
def test_whole_chunks_go_on_as_they_came(payloads, sizes):
    raw = _sized(payloads, sizes)
    framing = BodyFraming(None, True)
    seen = b""
    for n, payload in enumerate(payloads):  # one segment a chunk, as servers write them
        framing.take(_sized([payload], sizes[n % len(sizes):] + sizes)[:-5])
        seen += framing.verbatim or b""
    framing.take(b"0\r\n\r\nNEXT")
    assert framing.verbatim == b"0\r\n\r\n" and framing.extra == b"NEXT"
    assert seen + framing.verbatim == raw


@pytest.mark.parametrize("raw", [b"zz\r\n", b"-1\r\n", b"0x5\r\nhello\r\n", b"\r\n", b"5\nhello", b"5\r\nhelloXY0\r\n\r\n",
                                 b"+5\r\nhello\r\n", b"1_0\r\n"])
def test_bad_chunked_framing_is_one_line_error(raw):
    framing = BodyFraming(None, True)
    with pytest.raises(FramingError):
        framing.take(raw)
        framing.end()


def test_an_endless_chunk_line_is_refused_not_buffered():
    framing = BodyFraming(None, True)
    with pytest.raises(FramingError, match="over 4 KiB"):
        for _ in range(10):
            framing.take(b"f" * 1000)


def test_the_end_of_the_connection_ends_only_a_body_that_ends_with_it():
    until_close = BodyFraming(None, False)
    assert until_close.take(b"abc") == [b"abc"]
    until_close.end()
    assert until_close.done
    short = BodyFraming(10, False)
    short.take(b"abc")
    with pytest.raises(FramingError, match="7 bytes short"):
        short.end()
    cut = BodyFraming(None, True)
    cut.take(b"5\r\nhel")
    with pytest.raises(FramingError, match="before its last chunk"):
        cut.end()


# --- a scripted upstream and a raw agent ---------------------------------------------------


class Scripted:
    """An upstream that reads each request (head and Content-Length body) and answers with ``answer(n)``:
    a list of byte strings written one by one (``None``: close the connection there)."""

    def __init__(self, answer: Callable[[int], list[bytes | None]]) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.written = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.serving: set[asyncio.Task[Any]] = set()
        self.ended = asyncio.Event()
        """Set when a connection's serving ends (the gateway closed it, or the script did)."""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self.serving.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                for piece in self.answer(len(self.requests)):
                    if piece is None:
                        writer.transport.abort()
                        return
                    writer.write(piece)
                    await writer.drain()
                    self.written += len(piece)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.ended.set()

    async def __aenter__(self) -> "Scripted":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await asyncio.gather(*self.serving, return_exceptions=True)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"


def _head(status: str = "200 OK", *headers: str) -> bytes:
    return (f"HTTP/1.1 {status}\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode()


@pytest.fixture
async def gateway_to() -> AsyncIterator[Callable[[Scripted], Any]]:
    made: list[Gateway] = []

    async def make(upstream: Scripted) -> tuple[Gateway, list[Event], int]:
        events: list[Event] = []
        t0 = time.monotonic()
        gateway = Gateway("lane", Upstream(upstream.url, {}, "m"), events.append, lambda: time.monotonic() - t0)
        made.append(gateway)
        port = int((await gateway.listen_tcp()).rsplit(":", 1)[1])
        return gateway, events, port

    yield make
    for gateway in made:
        await gateway.aclose()


async def _exchange(port: int, data: bytes, *, until: Callable[[bytes], bool], timeout: float = 5) -> tuple[bytes, bool]:
    """Write ``data`` as an agent; read until ``until(received)`` or the connection closes. (bytes, closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    got = b""
    closed = False
    try:
        async with asyncio.timeout(timeout):
            while not until(got):
                piece = await reader.read(65536)
                if not piece:
                    closed = True
                    break
                got += piece
    finally:
        writer.close()
    return got, closed


async def _until(condition: Callable[[], Any], timeout: float = 10) -> None:
    """Let the loop run (its I/O included) until ``condition()`` holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)


def _ends_chunked(n: int = 1) -> Callable[[bytes], bool]:
    return lambda got: got.count(b"0\r\n\r\n") >= n


async def test_a_chunked_reply_with_trailers_is_relayed_and_its_connection_reused(gateway_to):
    body = _chunked([SSE[:30], SSE[30:]], trailer=b"x-trailer: 1\r\n")
    async with Scripted(lambda n: [_head("200 OK", "Transfer-Encoding: chunked", "Content-Type: text/event-stream")
                                   + body[:7], body[7:40], body[40:]]) as upstream:
        gateway, events, port = await gateway_to(upstream)
        for _ in range(3):
            got, _ = await _exchange(port, _request(), until=_ends_chunked())
            head, _, rest = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower()
            assert BodyFramingRead(rest) == SSE
        gateway.flush()  # every event of the three, before reading the count
        assert gateway.turns == 3
        assert upstream.connections <= 2  # the kept-alive one (and the spare kept warm), never one per request
        assert not [e for e in events if isinstance(e, Notice)]


async def test_whole_chunks_reach_the_agent_as_upstream_framed_them(gateway_to):
    chunks = [b"1E\r\n" + SSE[:30] + b"\r\n", b"%04x\r\n" % len(SSE[30:]) + SSE[30:] + b"\r\n", b"0\r\n\r\n"]
    async with Scripted(lambda n: [_head("200 OK", "Transfer-Encoding: chunked", "Content-Type: text/event-stream"),
                                   *chunks]) as upstream:
        gateway, events, port = await gateway_to(upstream)
        got, _ = await _exchange(port, _request(), until=_ends_chunked())
    assert got.partition(b"\r\n\r\n")[2] == b"".join(chunks)  # the same bytes, not framed anew
    gateway.flush()
    assert "".join(e.text for e in events if isinstance(e, TokenDelta)) and gateway.turns == 1


def BodyFramingRead(chunked: bytes) -> bytes:  # noqa: N802  # reads like the value it gives
    framing = BodyFraming(None, True)
    out = b"".join(framing.take(chunked))
    assert framing.done
    return out


async def test_a_content_length_reply_cut_short_reaches_the_agent_cut_with_a_notice(gateway_to):
    async with Scripted(lambda n: [_head("200 OK", "Content-Length: 500", "Content-Type: text/event-stream") + SSE[:50],
                                   None]) as upstream:
        gateway, events, port = await gateway_to(upstream)
        got, closed = await _exchange(port, _request(), until=lambda got: False)
        assert closed and b"Content-Length: 500" in got and got.endswith(SSE[:50])
        gateway.flush()  # the notice was queued before the agent's connection was cut
        assert any(isinstance(e, Notice) and "upstream broke the reply" in e.message and "short" in e.message
                   for e in events)


async def test_a_reply_that_ends_with_the_connection_is_relayed_whole_and_its_connection_dropped(gateway_to):
    async with Scripted(lambda n: [_head("200 OK", "Content-Type: text/event-stream", "Connection: close"), SSE, None]) as upstream:
        gateway, events, port = await gateway_to(upstream)
        for _ in range(2):
            got, _ = await _exchange(port, _request(), until=_ends_chunked())
            assert BodyFramingRead(got.partition(b"\r\n\r\n")[2]) == SSE
        assert len(upstream.requests) == 2 and upstream.connections >= 2
        assert not [e for e in events if isinstance(e, Notice) and e.level == "error"]


async def test_a_kept_alive_connection_the_backend_closed_is_retried_once_on_a_fresh_one(gateway_to):
    def answer(n: int) -> list[bytes | None]:
        reply = [_head("200 OK", f"Content-Length: {len(SSE)}") + SSE]
        return reply + [None] if n == 1 else reply  # the first connection is closed after its answer

    async with Scripted(answer) as upstream:
        gateway, events, port = await gateway_to(upstream)
        first, _ = await _exchange(port, _request(), until=lambda got: got.endswith(SSE))
        second, _ = await _exchange(port, _request(), until=lambda got: got.endswith(SSE))
        assert first.endswith(SSE) and second.endswith(SSE)
        assert not [e for e in events if isinstance(e, Notice)]


async def test_bytes_after_a_body_mean_its_connection_is_not_reused(gateway_to):
    async with Scripted(lambda n: [_head("200 OK", f"Content-Length: {len(SSE)}") + SSE + b"HTTP/1.1 200 OK\r\n"]) as upstream:
        gateway, events, port = await gateway_to(upstream)
        for _ in range(2):
            got, _ = await _exchange(port, _request(), until=lambda got: got.endswith(SSE))
            assert got.endswith(SSE) and b"HTTP/1.1 200 OK\r\n\r\n" not in got.partition(b"\r\n\r\n")[2]
        assert upstream.connections >= 2


async def test_pipelined_requests_are_answered_in_order_on_one_connection(gateway_to):
    answers = {1: b"first", 2: b"second"}
    async with Scripted(lambda n: [_head("200 OK", f"Content-Length: {len(answers[n])}") + answers[n]]) as upstream:
        gateway, events, port = await gateway_to(upstream)
        got, _ = await _exchange(port, _request(path="/v1/models") + _request(path="/v1/models"),
                                 until=lambda got: got.endswith(b"second"))
        assert got.index(b"first") < got.index(b"second") and got.count(b"HTTP/1.1 200") == 2


@pytest.mark.parametrize("raw, status", [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"POST /v1/chat/completions HTTP/2.0\r\n\r\n", b"505"),
    (b"POST /x HTTP/1.1\r\nContent-Length: nope\r\n\r\n", b"400"),
    (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", b"413"),
    (b"POST /v1/chat\ncompletions HTTP/1.1\r\n\r\n", b"400"),
    (b"POST /x HTTP/1.1\r\nX-A: a\nX-Api-Key: injected\r\n\r\n", b"400"),
    (b"POST /x HTTP/1.1\r\nX-A: a\rb\r\n\r\n", b"400"),
    (b"POST /x HTTP/1.1\r\nX-A: \x00\r\n\r\n", b"400"),
])
async def test_a_request_that_cannot_be_read_gets_a_json_error_and_the_connection_closes(gateway_to, raw, status):
    async with Scripted(lambda n: []) as upstream:
        gateway, events, port = await gateway_to(upstream)
        got, closed = await _exchange(port, raw, until=lambda got: False)
        assert closed and got.startswith(b"HTTP/1.1 " + status) and b"thunderdome-gateway" in got
        assert json.loads(got.partition(b"\r\n\r\n")[2])["error"]["type"] == "bad_request"
        assert upstream.requests == []


async def test_an_endless_request_head_is_refused(gateway_to):
    async with Scripted(lambda n: []) as upstream:
        gateway, events, port = await gateway_to(upstream)
        got, closed = await _exchange(port, b"GET / HTTP/1.1\r\nX: " + b"a" * 300_000, until=lambda got: False)
        assert closed and got.startswith(b"HTTP/1.1 431")


async def test_a_chunked_request_body_and_expect_continue_go_upstream_as_one_body(gateway_to):
    async with Scripted(lambda n: [_head("200 OK", "Content-Length: 2") + b"ok"]) as upstream:
        gateway, events, port = await gateway_to(upstream)
        raw = (b"POST /v1/models HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
               + _chunked([b'{"a":', b"1}"]))
        got, _ = await _exchange(port, raw, until=lambda got: got.endswith(b"ok"))
        assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")
        sent = upstream.requests[0]
        assert sent.endswith(b'\r\n\r\n{"a":1}') and b"Content-Length: 7" in sent and b"chunked" not in sent.lower()


async def test_an_http10_agent_gets_the_stream_unframed_and_the_connection_closed(gateway_to):
    body = _chunked([SSE])
    async with Scripted(lambda n: [_head("200 OK", "Transfer-Encoding: chunked") + body]) as upstream:
        gateway, events, port = await gateway_to(upstream)
        raw = _request().replace(b"HTTP/1.1", b"HTTP/1.0", 1)
        got, closed = await _exchange(port, raw, until=lambda got: False)
        assert closed and got.partition(b"\r\n\r\n")[2] == SSE


async def test_an_agent_that_goes_away_mid_reply_drops_the_upstream_connection(gateway_to):
    whole = 400 * 65536  # more than the kernel's buffers hold between the two

    def answer(n: int) -> list[bytes | None]:
        return [_head("200 OK", "Transfer-Encoding: chunked")] + [_chunked([b"x" * 65536])[:-5]] * 400

    async with Scripted(answer) as upstream:
        gateway, events, port = await gateway_to(upstream)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_request())
        await reader.read(1000)
        writer.transport.abort()
        async with asyncio.timeout(10):
            await upstream.ended.wait()  # the gateway dropped its upstream connection
        assert not gateway._links  # the agent's link is gone
        assert upstream.written < whole  # the rest of the reply was never pulled through


async def test_a_slow_agent_pauses_the_upstream_instead_of_buffering_the_reply(gateway_to):
    total = 48 * 1024 * 1024
    piece = b"y" * 65536

    def answer(n: int) -> list[bytes | None]:
        return [_head("200 OK", f"Content-Length: {total}")] + [piece] * (total // len(piece))

    async with Scripted(answer) as upstream:
        gateway, events, port = await gateway_to(upstream)
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(_request(path="/v1/models"))
        await _until(lambda: any(not conn.transport.is_reading() for conn in gateway._pool._busy))  # the agent reads nothing
        (link,) = gateway._links
        assert link.transport is not None
        assert link.transport.get_write_buffer_size() <= 1024 * 1024  # what the gateway holds for the agent
        assert upstream.written < total  # it stopped reading upstream (the kernel's buffers hold the rest)
        got = 0
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(30):
            while got < total:
                got += len(await loop.sock_recv(sock, 1 << 20)) or 0
        sock.close()
        assert upstream.written == total + len(answer(1)[0])


async def test_a_request_is_on_the_upstream_socket_when_the_callback_that_read_it_returns(gateway_to):
    async with Scripted(lambda n: [_head("200 OK", "Content-Length: 2") + b"ok"]) as upstream:
        gateway, events, port = await gateway_to(upstream)
        await _until(lambda: gateway._pool._idle)  # the spare upstream connection is open

        link = gateway._links_factory()
        link.connection_made(_Transport())
        link.data_received(_request())
        assert gateway.relayed[-1].forward_s is not None  # on the socket before the loop ran anything else
        assert isinstance(link, AgentLink) and link.task is not None
        await asyncio.wait_for(link.task, 5)
        assert link.transport.written.endswith(b"ok")  # type: ignore[union-attr]


class _Transport(asyncio.Transport):
    """A transport that keeps what is written (for the synchronous paths)."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 65536)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def _no_drain() -> None:
    pass


async def test_a_replys_first_bytes_are_passed_on_in_the_callback_that_read_its_head():
    from thunderdome.gateway.upstream import Exchange, UpstreamPool, _Conn, _Wire

    pool = UpstreamPool("http://127.0.0.1:9/v1", 1.0)
    wire = _Wire()
    wire.connection_made(_Transport())
    exchange = Exchange(pool, "POST", b"POST / HTTP/1.1\r\n\r\n", None)
    got: list[bytes] = []
    exchange.on_response = lambda response: response.start_relay(lambda pieces, last, verbatim: got.extend(pieces) or False)
    exchange.write(_Conn(wire))
    wire.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
    assert got == [b"hel"]  # no task has run: the head was read and the relay begun in that callback
    wire.data_received(b"lo\r\n0\r\n\r\n")
    assert got == [b"hel", b"lo"]
    response = await exchange.response()
    await response.finish_relay(_no_drain)
    assert response.status == 200


async def test_the_meter_runs_in_order_in_slices_with_polls_between_and_flushes_on_demand():
    from thunderdome.gateway import meter as meter_module

    meter = meter_module.loop_meter()
    assert meter is meter_module.loop_meter()  # one a loop, shared by its gateways
    done: list[int] = []

    def slow(n: int) -> None:
        end = time.perf_counter() + meter_module.SLICE_S / 2
        while time.perf_counter() < end:
            pass
        done.append(n)

    for n in range(40):
        meter.later(slow, n)
    await _until(lambda: done)
    polled = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(lambda: polled.set_result(len(done)))
    await polled
    assert 0 < polled.result() < 40  # other callbacks ran between slices, with work still queued
    meter.later(lambda: 1 / 0)  # a failure is logged, the rest goes on
    meter.later(done.append, 99)
    meter.flush()
    assert done == [*range(40), 99]


def test_on_a_race_loop_bytes_that_come_in_wait_behind_one_measuring_item_at_most():
    from thunderdome.backends.poll_stamps import run_on_race_loop
    from thunderdome.gateway.meter import loop_meter

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        sender, receiver = socket.socketpair()
        receiver.setblocking(False)
        order: list[Any] = []
        loop.add_reader(receiver, lambda: order.append(receiver.recv(16)))

        def item(n: int) -> None:
            if n == 0:
                sender.send(b"bytes")  # they come in while the measuring runs
            order.append(n)

        for n in range(5):
            loop_meter().later(item, n)  # each far quicker than a slice: one slice would run them all
        try:
            await _until(lambda: len(order) == 6)
        finally:
            loop.remove_reader(receiver)
            sender.close()
            receiver.close()
        return order

    assert run_on_race_loop(main()) == [0, b"bytes", 1, 2, 3, 4]


async def test_a_chunked_request_body_in_many_segments_goes_upstream_whole(gateway_to):
    async with Scripted(lambda n: [_head("200 OK", "Content-Length: 2") + b"ok"]) as upstream:
        gateway, events, port = await gateway_to(upstream)
        payload = [b"x" * 1000] * 300
        raw = b"POST /v1/models HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(payload)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for at in range(0, len(raw), 997):  # in pieces that split chunk lines and data alike
            writer.write(raw[at : at + 997])
            await writer.drain()
        async with asyncio.timeout(5):
            got = await reader.readuntil(b"ok")
        writer.close()
        assert got.startswith(b"HTTP/1.1 200") and upstream.requests[0].endswith(b"x" * 300_000)


@pytest.mark.parametrize("answer, says", [
    ([b"HTTP/1.1 200 OK\r\nX: " + b"a" * 600_000], "over 256 KiB"),
    ([b"SMTP ready\r\n\r\n"], "not an HTTP response"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n"], "bad Content-Length"),
    ([b"HTTP/1.1 200 OK\r\nContent-", None], "closed in the middle of the response head"),
])
async def test_a_reply_head_that_cannot_be_read_is_a_502_with_a_notice(gateway_to, answer, says):
    async with Scripted(lambda n: list(answer)) as upstream:
        gateway, events, port = await gateway_to(upstream)
        got, _ = await _exchange(port, _request(), until=lambda got: b"\r\n\r\n" in got and got.endswith(b"}"))
        assert got.startswith(b"HTTP/1.1 502") and says.encode() in got
        gateway.flush()
        assert any(isinstance(e, Notice) and says in e.message for e in events)
