"""When a turn's clock starts and when it runs out, over real loopback HTTP.

RequestSent is stamped when the request is on the socket: after the TCP
connection exists (a connect held up by a full accept queue is not TTFT) and
before the server can have read it. The turn's deadlines are kept by one
watchdog per turn: the same reasons as ever, a consumer that holds an event
is not "idle", and a cancellation from outside stays a cancellation.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import time
from typing import Any

import pytest

from _emulator import HANG_GUARD_S, RawServer, chunked, collect, raw_spec, request  # type: ignore[import-not-found]
from thunderdome.backends import BackendError, make_backend
from thunderdome.backends.http import BODY_COMPLETE, BODY_STARTED, SYNC_WRITE_LIMIT, _sent_at, make_client, tls_context
from thunderdome.backends.watchdog import TurnTimer, budget
from thunderdome.core.events import Event, FirstByte, RequestSent, StreamEnded, TokenDelta
from thunderdome.core.specs import Timeouts

pytestmark = pytest.mark.both_loops  # every test on the default loop and on the race loop

FRAME = b'data: {"choices":[{"index":0,"delta":{"content":"tok "}}]}\n\n'
END = [b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n', b"data: [DONE]\n\n"]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def piece(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


# --- RequestSent ---------------------------------------------------------------------------


def _handshake_completes_on_a_full_queue(port: int) -> bool:
    probe = socket.socket()
    probe.setblocking(False)
    try:
        probe.connect_ex(("127.0.0.1", port))
        _, writable, _ = select.select([], [probe], [], 0.2)
        return bool(writable) and probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    finally:
        probe.close()


async def test_request_sent_comes_after_the_connection_is_set_up() -> None:
    """A listener whose accept queue is full drops the SYN; the client's
    connect can only complete after the queue is freed (at ``released``), so a
    stamp taken before connecting (the old behaviour) is earlier than that."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))  # fills the queue of a backlog-0 listener
    try:
        if _handshake_completes_on_a_full_queue(port):
            pytest.skip("this kernel completes TCP handshakes on a full accept queue")
        t0 = time.monotonic()

        def clock() -> float:
            return time.monotonic() - t0

        events: list[Event] = []
        received: list[float] = []

        async def run() -> None:
            backend = make_backend(raw_spec("openai", f"http://127.0.0.1:{port}/v1"))
            try:
                async for event in backend.stream(request(), clock):
                    events.append(event)
            finally:
                await backend.aclose()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            received.append(clock())
            writer.write(HEAD + b"".join(piece(f) for f in [FRAME, *END]) + b"0\r\n\r\n")
            await writer.drain()
            writer.close()

        task = asyncio.create_task(run())
        await asyncio.sleep(0.2)  # the client's first SYN meets the full queue (not a timing assertion)
        assert not events
        released = clock()
        accepted, _ = listener.accept()
        accepted.close()
        listener.setblocking(False)
        server = await asyncio.start_server(serve, sock=listener)
        try:
            await asyncio.wait_for(task, HANG_GUARD_S)
        finally:
            server.close()
    finally:
        filler.close()
    sent, first_byte, delta = events[0], events[1], events[2]
    assert isinstance(sent, RequestSent) and isinstance(first_byte, FirstByte) and isinstance(delta, TokenDelta)
    assert released <= sent.t <= received[0] <= first_byte.t
    assert isinstance(events[-1], StreamEnded)


async def test_request_sent_is_stamped_before_the_server_has_the_request() -> None:
    """Same loop, same clock: the stamp is taken before the bytes are written,
    so it can never be after the server read them; and it is the send time,
    not the time of the timeout that ends the turn."""
    received: list[float] = []
    t0 = time.monotonic()

    def clock() -> float:
        return time.monotonic() - t0

    def respond(seen: Any) -> list[Any]:
        received.append(clock())
        return [5.0]  # never answers within the turn

    async with RawServer(respond) as server:
        spec = raw_spec("openai", server.url + "/v1", timeouts=Timeouts(first_token=0.5))
        backend = make_backend(spec)
        events: list[Event] = []
        with pytest.raises(BackendError, match=r"^no token within 0\.5 s$"):
            async for event in backend.stream(request(), clock):
                events.append(event)
        failed = clock()
        await backend.aclose()
    assert [type(e) for e in events] == [RequestSent]
    assert events[0].t <= received[0] < failed


async def test_connection_reused_for_turn_two_keeps_the_order() -> None:
    async with RawServer(lambda seen: chunked([FRAME, *END])) as server:
        backend = make_backend(raw_spec("openai", server.url + "/v1"))
        try:
            for turn in (1, 2):
                out = await collect(backend, request(turn=turn), close=False)
                assert [type(e) for e in out.events[:3]] == [RequestSent, FirstByte, TokenDelta]
                assert out.events[0].t <= out.events[1].t and out.events[0].turn == turn
        finally:
            await backend.aclose()
    assert [s.connection for s in server.seen] == [1, 1]


def test_which_trace_event_stamps_request_sent() -> None:
    now = lambda: 9.0  # noqa: E731
    both = {BODY_STARTED: 1.0, BODY_COMPLETE: 1.5}
    assert _sent_at(both, True, now) == 1.0  # written in one synchronous send right after .started
    assert _sent_at(both, False, now) == 1.5  # a big body: once httpcore2 says it is written
    assert _sent_at({BODY_STARTED: 1.0}, False, now) == 1.0  # the write failed half-way
    assert _sent_at({}, True, now) == 9.0  # never got to send: stamped at the failure


async def test_a_body_over_the_sync_write_limit_is_still_well_ordered() -> None:
    big = [{"role": "user", "content": "x" * (SYNC_WRITE_LIMIT * 4)}]
    async with RawServer(lambda seen: chunked([FRAME, *END])) as server:
        req = request()
        req = type(req)(messages=big, max_tokens=req.max_tokens, lane=req.lane)
        out = await collect(make_backend(raw_spec("openai", server.url + "/v1")), req)
    assert out.error is None
    assert [type(e) for e in out.events[:2]] == [RequestSent, FirstByte]
    assert out.events[0].t <= out.events[1].t
    assert len(server.seen[0].body) > SYNC_WRITE_LIMIT * 4


# --- the watchdog ----------------------------------------------------------------------------


def test_budget_rules_and_reasons() -> None:
    t = Timeouts(first_token=5.0, idle=2.0, total=10.0)
    assert budget(t, 0.0, 1.0, 0, 1.0) == (4.0, "no token within 5 s")
    assert budget(t, 0.0, 9.0, 3, 8.5) == (1.0, "turn exceeded 10 s")
    assert budget(t, 0.0, 6.0, 3, 5.0) == (1.0, "no bytes for 2 s after 3 tokens")
    assert budget(Timeouts(first_token=60, total=0.5), 0.0, 0.0, 0, 0.0) == (0.5, "turn exceeded 0.5 s")


async def test_a_steady_trickle_slower_than_nothing_but_faster_than_idle_is_not_cut() -> None:
    script = [HEAD]
    for _ in range(10):
        script += [piece(FRAME), 0.1]  # a chunk every 100 ms for 1 s; idle allows 400 ms
    script += [piece(b"".join(END)), b"0\r\n\r\n"]
    async with RawServer(lambda seen: script) as server:
        spec = raw_spec("openai", server.url + "/v1", timeouts=Timeouts(idle=0.4, first_token=0.4))
        out = await collect(make_backend(spec))
    assert out.error is None, out.error
    assert len(out.deltas) == 10 and out.ended is not None


async def test_a_consumer_holding_an_event_is_not_idle_time() -> None:
    """The idle budget runs from when a read starts, as before: a slow
    consumer between reads does not make the stream look silent."""
    async with RawServer(lambda seen: chunked([FRAME, FRAME, *END])) as server:
        spec = raw_spec("openai", server.url + "/v1", timeouts=Timeouts(idle=0.2))
        backend = make_backend(spec)
        t0 = time.monotonic()
        events: list[Event] = []
        try:
            async for event in backend.stream(request(), lambda: time.monotonic() - t0):
                events.append(event)
                if isinstance(event, TokenDelta) and len(events) == 3:
                    await asyncio.sleep(0.5)  # longer than idle, between two reads
        finally:
            await backend.aclose()
    assert isinstance(events[-1], StreamEnded)
    assert sum(isinstance(e, TokenDelta) for e in events) == 2


async def test_total_spent_while_the_consumer_held_an_event_ends_the_next_read() -> None:
    async with RawServer(lambda seen: chunked([FRAME, FRAME, *END])) as server:
        spec = raw_spec("openai", server.url + "/v1", timeouts=Timeouts(total=0.3))
        backend = make_backend(spec)
        t0 = time.monotonic()
        events: list[Event] = []
        with pytest.raises(BackendError, match=r"^turn exceeded 0\.3 s$"):
            try:
                async for event in backend.stream(request(), lambda: time.monotonic() - t0):
                    events.append(event)
                    if isinstance(event, TokenDelta):
                        await asyncio.sleep(0.5)
            finally:
                await backend.aclose()
    assert sum(isinstance(e, TokenDelta) for e in events) == 1  # the held event was delivered, nothing lost before


async def test_cancelling_the_consumer_mid_read_is_a_cancellation_not_a_timeout() -> None:
    script = [HEAD, piece(FRAME), 0.0, 5.0]
    async with RawServer(lambda seen: script) as server:
        backend = make_backend(raw_spec("openai", server.url + "/v1", timeouts=Timeouts(idle=60)))
        got_token = asyncio.Event()
        t0 = time.monotonic()

        async def consume() -> None:
            async for event in backend.stream(request(), lambda: time.monotonic() - t0):
                if isinstance(event, TokenDelta):
                    got_token.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_token.wait(), HANG_GUARD_S)
        await asyncio.sleep(0.05)  # the stream is back in its read
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, HANG_GUARD_S)
        await backend.aclose()


async def _guarded_read(timer: TurnTimer, read: Any) -> str:
    """One wait under the watchdog, as the stream does it: 'data', or the
    timeout reason; an outside cancellation propagates."""
    timer.begin(0)
    try:
        await read
    except asyncio.CancelledError:
        timer.end()
        reason = timer.expired()
        if reason is None:
            raise
        return reason
    timer.end()
    return "data"


async def test_watchdog_cuts_a_read_at_its_deadline_with_the_reason() -> None:
    timer = TurnTimer(Timeouts(first_token=0.1), lambda: 0)
    try:
        assert await asyncio.wait_for(_guarded_read(timer, asyncio.sleep(30)), HANG_GUARD_S) == "no token within 0.1 s"
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]  # its cancel was taken back
    finally:
        timer.close()


@pytest.mark.parametrize("outside_first", [True, False])
async def test_watchdog_and_an_outside_cancel_in_one_loop_turn_stay_a_cancel(outside_first: bool) -> None:
    """The owner's cancel and the watchdog's deadline land in the same loop
    turn (a blocked loop makes both overdue), in either order: the owner wins."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    box: list[TurnTimer] = []

    async def owner() -> str:
        timer = TurnTimer(Timeouts(first_token=0.2), lambda: 0)
        box.append(timer)
        ready.set()
        try:
            return await _guarded_read(timer, asyncio.sleep(30))
        finally:
            timer.close()

    task = asyncio.create_task(owner())
    await ready.wait()
    deadline = box[0].start + 0.2
    loop.call_at(deadline - 0.05, time.sleep, 0.1)  # block the loop past both
    loop.call_at(deadline + (-0.001 if outside_first else 0.001), task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, HANG_GUARD_S)


async def test_a_deadline_passed_between_reads_ends_the_next_read_before_it_waits() -> None:
    timer = TurnTimer(Timeouts(total=0.1), lambda: 3)
    try:
        assert await _guarded_read(timer, asyncio.sleep(0)) == "data"
        await asyncio.sleep(0.3)  # the consumer holds an event past the turn's end
        with pytest.raises(BackendError, match=r"^turn exceeded 0\.1 s$"):
            timer.begin(3)
    finally:
        timer.close()


# --- TLS set-up --------------------------------------------------------------------------------


def test_plain_http_on_loopback_loads_no_ca_store_and_https_verifies() -> None:
    plain = tls_context("http://127.0.0.1:8080/v1", trust_env=False)
    assert plain.verify_mode == ssl.CERT_NONE and plain.cert_store_stats()["x509_ca"] == 0
    secure = tls_context("https://api.example.com/v1", trust_env=True)
    assert secure.verify_mode == ssl.CERT_REQUIRED and secure.check_hostname
    assert secure.cert_store_stats()["x509_ca"] > 0
    assert tls_context("https://other.example.com", trust_env=True) is secure  # loaded once, shared
    assert tls_context("http://lan-box:11434", trust_env=True).verify_mode == ssl.CERT_REQUIRED  # a proxy may be TLS


async def test_clients_share_the_context() -> None:
    a = make_client(Timeouts(), "http://127.0.0.1:1234/v1")
    b = make_client(Timeouts(), "http://localhost:1234/v1")
    try:
        assert a._transport._pool._ssl_context is b._transport._pool._ssl_context  # type: ignore[attr-defined]
    finally:
        await a.aclose()
        await b.aclose()
