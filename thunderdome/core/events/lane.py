"""A lane's life-cycle events, outside its turns: start, fighter, gateway
traffic, and its ending.

Invariant: every lane ends with exactly one of ``LANE_END_TYPES``
(finished, eliminated, failed, stopped), after its ``LaneStarted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from thunderdome.core.events.base import LaneEvent


@dataclass(frozen=True, slots=True)
class LaneStarted(LaneEvent):
    """The lane passed the start barrier. ``skew``: seconds between the barrier
    opening and this lane actually starting (start skew, recorded honestly)."""

    type: ClassVar[str] = "lane_started"
    skew: float = 0.0


@dataclass(frozen=True, slots=True)
class FighterSpawned(LaneEvent):
    """A ``last_standing`` lane's fighter process is up: ``pid`` is its PID as
    the arena's commands see it (what the lane's prompt names)."""

    type: ClassVar[str] = "fighter_spawned"
    pid: int = 0


@dataclass(frozen=True, slots=True)
class RequestRelayed(LaneEvent):
    """An agent lane's gateway relayed a request that is not a turn of the
    lane: a model listing, a version probe, a token count, or a chat request
    that asked for no stream (``chat``: model work outside the lane's turns,
    e.g. a title; its time is the whole reply's, so it is never a TTFT).
    ``seconds``: from the request on the upstream socket to the reply
    relayed whole; ``status`` None and ``seconds`` None: upstream could not
    be reached."""

    type: ClassVar[str] = "request_relayed"
    method: str = "GET"
    path: str = ""
    status: int | None = None
    chat: bool = False
    seconds: float | None = None


# --- lane endings (exactly one per lane) -------------------------------------------


@dataclass(frozen=True, slots=True)
class LaneFinished(LaneEvent):
    """The lane ended normally (long race: its stream finished)."""

    type: ClassVar[str] = "lane_finished"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LaneEliminated(LaneEvent):
    """The lane is out of the race. ``by``: the lane that eliminated it, if any."""

    type: ClassVar[str] = "lane_eliminated"
    reason: str = ""
    by: str | None = None


@dataclass(frozen=True, slots=True)
class LaneFailed(LaneEvent):
    """The lane failed (network, protocol, timeout). ``reason`` is one line a
    person can act on, e.g. ``HTTP 429, retry after 20 s``. (Recordings of
    format version 1 call it ``lane_error``.)"""

    type: ClassVar[str] = "lane_failed"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LaneStopped(LaneEvent):
    """The race was won while this lane still worked, and the task does not
    race on for places: the lane was stopped, keeping what it had done
    (``reason``: e.g. ``race won by cloud``)."""

    type: ClassVar[str] = "lane_stopped"
    reason: str = ""


LANE_END_TYPES = (LaneFinished, LaneEliminated, LaneFailed, LaneStopped)
