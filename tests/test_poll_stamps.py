"""Arrival stamps taken at the poll (``backends/poll_stamps.py``).

The selector alone: every socket one poll reports readable gets that poll's
stamp, however much work is done before each is looked at; a stamp is only
given once the socket's read window is closed, and a new window forgets the
last one's. Then the whole client over real loopback: eight lanes whose
first tokens are all waiting when the race loop polls, read one after the
other with CPU work between, are stamped alike on the race loop and one
after the other on asyncio's default loop (the clock after each read).
"""

from __future__ import annotations

import asyncio
import select
import selectors
import socket
import threading
import time
from typing import Any

from _emulator import raw_spec  # type: ignore[import-not-found]
from thunderdome.backends import ChatRequest, make_backend
from thunderdome.backends.poll_stamps import PollStampSelector, RaceLoop, race_selector, run_on_race_loop
from thunderdome.core.events import Event, FirstByte, RequestSent, TokenDelta

LANES = 8
SAME = 1e-5
"""Stamps of one poll differ only by each turn's reading of the race clock's
origin (``clock_origin``: tens of nanoseconds); lanes handled one after the
other are at least the 2 ms of CPU work apart."""
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
FRAMES = [
    b'data: {"choices":[{"index":0,"delta":{"content":"first"}}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
]


def spin(seconds: float) -> None:
    """CPU work, as parsing and the race's sinks do (no sleeping: the loop stays busy)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def piece(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


# --- the selector alone --------------------------------------------------------------------


def test_one_poll_stamps_every_socket_it_reports_alike() -> None:
    selector = PollStampSelector()
    pairs = [socket.socketpair() for _ in range(LANES)]
    try:
        for ours, _ in pairs:
            selector.register(ours, selectors.EVENT_READ)
        for _, theirs in pairs:
            theirs.send(b"token")
        before = time.monotonic()
        ready = selector.select(1.0)
        after = time.monotonic()
        assert {key.fileobj for key, _ in ready} == {ours for ours, _ in pairs}
        assert selector.arrival(pairs[0][0].fileno()) is None  # the read window is still open
        stamps = []
        for ours, _ in pairs:  # read one after the other, with work between
            ours.recv(100)
            selector.unregister(ours)  # the read is over: its window closes
            spin(0.002)
            stamps.append(selector.arrival(ours.fileno()))
        assert len(set(stamps)) == 1
        assert stamps[0] is not None and before <= stamps[0] <= after
    finally:
        selector.close()
        for a, b in pairs:
            a.close()
            b.close()


def test_a_window_keeps_its_first_poll_and_the_next_window_forgets_it() -> None:
    selector = PollStampSelector()
    ours, theirs = socket.socketpair()
    try:
        selector.register(ours, selectors.EVENT_READ | selectors.EVENT_WRITE)
        theirs.send(b"a")
        selector.select(1.0)
        first = time.monotonic()
        theirs.send(b"b")
        selector.select(1.0)  # still readable in the same window: not the stamp
        selector.modify(ours, selectors.EVENT_WRITE)  # reading paused, writing still watched
        stamp = selector.arrival(ours.fileno())
        assert stamp is not None and stamp <= first
        ours.recv(10)
        selector.modify(ours, selectors.EVENT_READ | selectors.EVENT_WRITE)  # a new read window
        assert selector.arrival(ours.fileno()) is None
        selector.modify(ours, selectors.EVENT_WRITE)  # closed before any poll saw bytes
        assert selector.arrival(ours.fileno()) is None
        selector.modify(ours, selectors.EVENT_READ)
        theirs.send(b"c")
        selector.select(1.0)
        selector.unregister(ours)
        later = selector.arrival(ours.fileno())
        assert later is not None and later > stamp
    finally:
        selector.close()
        ours.close()
        theirs.close()


def test_the_race_loop_is_found_by_the_backends_and_others_are_not() -> None:
    async def which() -> Any:
        return race_selector()

    assert isinstance(run_on_race_loop(which()), PollStampSelector)
    assert asyncio.run(which()) is None
    loop = RaceLoop()
    try:
        assert loop.run_until_complete(which()) is loop.poll_stamps
    finally:
        loop.close()


# --- the client over real loopback ---------------------------------------------------------


class SameInstantServer:
    """A blocking server on its own thread: it answers ``LANES`` requests
    with the response head (and says so, ``heads_sent``), then, when told
    (``go``), writes every lane's first token and the end, and says so
    (``written``)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.heads_sent = threading.Event()
        self.go = threading.Event()
        self.written = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"

    def _serve(self) -> None:
        conns = []
        try:
            for _ in range(LANES):
                conn, _ = self.listener.accept()
                conns.append(conn)
                _read_request(conn)
                conn.sendall(HEAD)
            self.heads_sent.set()
            self.go.wait(30)
            for conn in conns:
                conn.sendall(b"".join(piece(f) for f in FRAMES) + b"0\r\n\r\n")
        finally:
            self.written.set()
            for conn in conns:
                conn.close()
            self.listener.close()


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += conn.recv(65536)


async def same_instant_race() -> list[list[tuple[Event, float]]]:
    """Eight lanes; once all wait for their first token, the loop is held
    while the server writes them all, so one poll finds them all waiting.
    Each event is followed by 2 ms of CPU work. Per lane: (event, clock when
    the lane got it)."""
    server = SameInstantServer()
    t0 = time.monotonic()

    def clock() -> float:
        return time.monotonic() - t0

    backends = [make_backend(raw_spec("openai", server.url)) for _ in range(LANES)]
    # The loop's selector (on asyncio's default loop, its private one: a test may look).
    selector = race_selector() or asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
    idle = set(selector.get_map())  # the loop's own self-pipe

    def every_lane_waits_for_its_body() -> bool:
        """Every head is out and every lane's socket is back in the loop's
        read set with nothing to read: each lane has read its head and waits
        in its body read."""
        if not server.heads_sent.is_set():
            return False
        reading = [fd for fd in selector.get_map() if fd not in idle]
        return len(reading) == LANES and not select.select(reading, [], [], 0)[0]
    got: list[list[tuple[Event, float]]] = [[] for _ in range(LANES)]

    async def lane(i: int) -> None:
        req = ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=8, lane=f"lane{i}")
        async for event in backends[i].stream(req, clock):
            got[i].append((event, clock()))
            spin(0.002)

    async def hold_the_loop_while_the_server_writes() -> None:
        deadline = time.monotonic() + 30
        while not every_lane_waits_for_its_body():
            assert time.monotonic() < deadline, "the lanes never all waited for their bodies"
            await asyncio.sleep(0.005)
        server.go.set()
        server.written.wait(30)

    try:
        await asyncio.gather(*(lane(i) for i in range(LANES)), hold_the_loop_while_the_server_writes())
    finally:
        await asyncio.gather(*(b.aclose() for b in backends))
        server.go.set()
    return got


def _firsts(got: list[list[tuple[Event, float]]], kind: type) -> list[tuple[Event, float]]:
    return [next((e, seen) for e, seen in events if isinstance(e, kind)) for events in got]


def _spread(stamps: list[float]) -> float:
    return max(stamps) - min(stamps)


def _check_bounds(got: list[list[tuple[Event, float]]]) -> None:
    """Never before the request went out, never after the lane had the event, never backwards."""
    for events in got:
        stamps = [e.t for e, _ in events]
        assert stamps == sorted(stamps)
        for event, seen in events:
            assert event.t <= seen
        sent = next(e.t for e, _ in events if isinstance(e, RequestSent))
        assert _firsts([events], FirstByte)[0][0].t >= sent


def test_eight_lanes_in_one_poll_are_stamped_alike_on_the_race_loop() -> None:
    got = run_on_race_loop(same_instant_race())
    _check_bounds(got)
    firsts = _firsts(got, TokenDelta)
    assert [e.text for e, _ in firsts] == ["first"] * LANES
    assert _spread([e.t for e, _ in firsts]) < SAME
    assert _spread([e.t for e, _ in _firsts(got, FirstByte)]) < SAME
    handled = sorted(seen for _, seen in firsts)  # the lanes were handled one after another
    assert handled[-1] > handled[0]


def test_on_the_default_loop_each_lane_waits_for_the_ones_before() -> None:
    got = asyncio.run(same_instant_race())
    _check_bounds(got)
    stamps = sorted(e.t for e, _ in _firsts(got, TokenDelta))
    assert all(b - a > SAME for a, b in zip(stamps, stamps[1:]))
