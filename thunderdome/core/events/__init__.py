"""The event stream: the spine every other part of Thunderdome consumes.

Invariant: an event is an immutable fact stamped with ``t``, seconds since the
race's start barrier on the monotonic clock, taken by the *source* at the
moment the thing happened (for network events: when the bytes arrived, before
any parsing). Everything the TUI shows and every metric is derived from events,
so a replayed race shows and computes exactly what the live race did.

Events round-trip through JSON (``to_dict`` / ``from_dict``); the ``type``
field names the class. Unknown fields are ignored on load so newer recordings
still open in older tools when only fields were added.

The modules: ``base`` (``Event``, ``LaneEvent``), ``race`` (race-level
events), ``turn`` (a turn's request, stream, tool calls and agent loop),
``lane`` (a lane's start and ending), ``decode`` (the type registry and the
checked loader). Every public name is re-exported here.
"""

from __future__ import annotations

from thunderdome.core.events.base import Channel, Event, LaneEvent
from thunderdome.core.events.decode import EVENT_TYPES, EventFormatError, event_from_dict
from thunderdome.core.events.lane import LANE_END_TYPES, FighterSpawned, LaneEliminated, LaneFailed, LaneFinished
from thunderdome.core.events.lane import LaneStarted, LaneStopped, RequestRelayed
from thunderdome.core.events.race import Notice, RaceFinished, RaceStarted, WinnerDecided
from thunderdome.core.events.turn import NATURAL_ENDS, CommandExtracted, ExecFinished, FeedbackSent, FirstByte
from thunderdome.core.events.turn import ReasoningSigned, RequestSent, ServerTimings, StreamEnded, TokenDelta
from thunderdome.core.events.turn import ToolCallDelta, ToolCallDone, ToolCallStarted, Usage, Verdict

__all__ = [
    "NATURAL_ENDS",
    "Channel",
    "Event",
    "LaneEvent",
    "RaceStarted",
    "WinnerDecided",
    "RaceFinished",
    "LaneStarted",
    "RequestSent",
    "FirstByte",
    "TokenDelta",
    "Usage",
    "ServerTimings",
    "StreamEnded",
    "ToolCallStarted",
    "ToolCallDelta",
    "ToolCallDone",
    "ReasoningSigned",
    "CommandExtracted",
    "ExecFinished",
    "Verdict",
    "FeedbackSent",
    "LaneFinished",
    "LaneEliminated",
    "LaneFailed",
    "LaneStopped",
    "FighterSpawned",
    "RequestRelayed",
    "Notice",
    "EVENT_TYPES",
    "LANE_END_TYPES",
    "EventFormatError",
    "event_from_dict",
]

