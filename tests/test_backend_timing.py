"""When a turn runs out of time, over real loopback HTTP: the turn's
deadlines are kept by one watchdog per turn: the same reasons as ever, a
consumer that holds an event is not "idle", and a cancellation from outside
stays a cancellation. And the clients' TLS set-up.
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
from thunderdome.backends.http import make_client, tls_context
from thunderdome.backends.watchdog import TurnTimer, budget
from thunderdome.events import Event, FirstByte, RequestSent, StreamEnded, TokenDelta
from thunderdome.specs import Timeouts

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
