"""Reading a relayed reply into its turn's events, after it has gone to the agent.

Invariant: run by the loop's ``Meter`` (never inside a relaying callback),
in the order the reply's segments came; it reads only copies of what was
already written to the agent, so a reply that cannot be parsed is still
relayed whole: its parse failure is one ``Notice`` and the parsing stops.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from thunderdome.backends.base import BackendError
from thunderdome.backends.sse import FrameError
from thunderdome.core.events import Event, FirstByte, Notice
from thunderdome.gateway.routes import Route

Emit = Callable[[Event], None]


class Relayed(Protocol):
    """What the reading needs of the gateway's record of the request (``server.Relayed``)."""

    turn: int | None
    """Its turn, once the ``Meter`` has classified the request; None for a request that is no turn."""


class ReplyReading:
    """One answer's measuring, run by the ``Meter`` after its request's
    ``Gateway._classify``: a turn's ``FirstByte`` and its parsing (``TurnReader``);
    nothing for any other request."""

    def __init__(self, emit: Emit, lane: str, record: Relayed, route: Route | None, status: int) -> None:
        self.emit = emit
        self.lane = lane
        self.record = record
        self.route = route
        self.status = status
        self.reader: TurnReader | None = None

    def first(self, pieces: list[bytes], last: bool, t: float) -> None:
        """The reply's first body bytes."""
        turn = self.record.turn
        if turn is not None:
            self.emit(FirstByte(t=t, lane=self.lane, turn=turn, status=self.status))
            if self.route is not None:
                self.reader = TurnReader(self.emit, self.lane, self.route, turn)
        self.feed(pieces, last, t)

    def feed(self, pieces: list[bytes], last: bool, t: float) -> None:
        if self.reader is None:
            if self.route is None or self.record.turn is None:
                return
            self.reader = TurnReader(self.emit, self.lane, self.route, self.record.turn)  # a body with no bytes
        if pieces:
            self.reader.feed_all(pieces, t)
        if last:
            self.reader.close(t)


class TurnReader:
    """Parses one relayed reply into its turn's events; a failure stops the
    parsing (a ``Notice``), never the relaying."""

    def __init__(self, emit: Emit, lane: str, route: Route, turn: int) -> None:
        self.emit = emit
        self.lane = lane
        self.frames = route.decoder()
        self.parser = route.parser(lane, turn)
        self.failed = False
        self.out: list[Event] = []

    def _take(self, got: Any, error: FrameError | None, t: float) -> None:
        try:
            self.parser.take(got, t, self.out)
            if error is not None and not self.parser.ended:
                raise error
        except (FrameError, BackendError) as exc:
            self.failed = True
            self.out.append(Notice(t=t, message=f"gateway: turn {self.parser.turn}: {exc.reason}", level="warning",
                                   lane=self.lane))
        emit = self.emit
        for event in self.out:
            emit(event)
        self.out.clear()

    def feed_all(self, pieces: list[bytes], t: float) -> None:
        """One segment's body pieces, stamped ``t``."""
        for piece in pieces:
            if self.failed or self.parser.ended:
                return
            got, error = self.frames.split(piece)
            if got or error is not None:
                self._take(got, error, t)

    def close(self, t: float) -> None:
        if self.failed or self.parser.ended:
            return
        got, error = self.frames.close_split()
        self._take(got, error, t)
        if not self.failed and not self.parser.ended:
            self.emit(Notice(t=t, message=f"gateway: turn {self.parser.turn}: {self.parser.cut_reason()}",
                             level="warning", lane=self.lane))


__all__ = ["ReplyReading", "TurnReader"]
