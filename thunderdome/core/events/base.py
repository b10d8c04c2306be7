"""The base of every event: a frozen fact stamped with ``t``.

Invariant: an event is immutable and carries ``t``, seconds since the race's
start barrier on the monotonic clock, taken by the *source* when the thing
happened; ``to_dict`` gives every field plus ``type``, the class's name in a
recording (``decode.event_from_dict`` is its inverse). A ``LaneEvent`` belongs
to exactly one lane.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Channel = Literal["answer", "reasoning"]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class. ``t``: seconds since race start (monotonic)."""

    t: float
    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            data[f.name] = getattr(self, f.name)
        return data


@dataclass(frozen=True, slots=True)
class LaneEvent(Event):
    """An event that belongs to one lane (``lane`` is the backend's name)."""

    lane: str

