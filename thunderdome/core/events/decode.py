"""Events from JSON: the type registry and the checked loader.

Invariant: ``event_from_dict`` returns an event only for a dict that names a
known ``type`` and whose every known field has its annotated type, with
``t`` a finite number of seconds from 0 to ``MAX_T``; anything else is an
``EventFormatError`` (recordings are untrusted input). Unknown fields are
ignored, so a recording that only gained fields still opens.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

from thunderdome.core.errors import ThunderdomeError
from thunderdome.core.events import lane, race, turn
from thunderdome.core.events.base import Event

EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        race.RaceStarted,
        race.WinnerDecided,
        race.RaceFinished,
        lane.LaneStarted,
        turn.RequestSent,
        turn.FirstByte,
        turn.TokenDelta,
        turn.Usage,
        turn.ServerTimings,
        turn.StreamEnded,
        turn.ToolCallStarted,
        turn.ToolCallDelta,
        turn.ToolCallDone,
        turn.ReasoningSigned,
        turn.CommandExtracted,
        turn.ExecFinished,
        turn.Verdict,
        turn.FeedbackSent,
        lane.LaneFinished,
        lane.LaneEliminated,
        lane.LaneFailed,
        lane.LaneStopped,
        lane.FighterSpawned,
        lane.RequestRelayed,
        race.Notice,
    )
}


class EventFormatError(ThunderdomeError, ValueError):
    """A dict could not be turned into an event."""


MAX_T = 2 * 86400.0
"""No event comes later than this (a race's timeout is at most a day)."""
MAX_INT = 2**53
"""Integers beyond this are no count or code a race produces (and lose
precision as floats)."""


def _is_number(value: Any) -> bool:
    """A finite number a race can produce (no NaN, no infinity, no
    overflow when used as a float)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and -MAX_INT <= value <= MAX_INT and (
        isinstance(value, int) or math.isfinite(value)
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_INT <= value <= MAX_INT


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "float": _is_number,
    "int": _is_int,
    "str": lambda v: type(v) is str or isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "Channel": lambda v: v in ("answer", "reasoning"),
    "tuple[dict[str, Any], ...]": lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, dict) for x in v),
}


def _check_for(annotation: str) -> Callable[[Any], bool]:
    parts = [p.strip() for p in annotation.split("|")]
    optional = "None" in parts
    inner = [_CHECKS[p] for p in parts if p != "None"]
    if len(inner) == 1:  # every field today: one type, maybe optional (the loader's hot path)
        check = inner[0]
        return (lambda v: v is None or check(v)) if optional else check
    return lambda v: (optional and v is None) or any(check(v) for check in inner)


@functools.cache
def _field_checks(cls: type[Event]) -> dict[str, Callable[[Any], bool]]:
    """Per-field type checks from the dataclass annotations (recordings are
    untrusted input: a wrongly typed field is a format error, not a crash later)."""
    return {f.name: _check_for(str(f.type)) for f in dataclasses.fields(cls)}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from ``to_dict`` output. Raises EventFormatError."""
    if not isinstance(data, dict):
        raise EventFormatError("event is not a JSON object")
    kind = data.get("type")
    cls = EVENT_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise EventFormatError(f"unknown event type {kind!r}")
    checks = _field_checks(cls)
    kwargs = {k: v for k, v in data.items() if k in checks}
    if "t" not in kwargs or not _is_number(kwargs["t"]):
        raise EventFormatError(f"{kind} event has no numeric 't'")
    if not 0 <= kwargs["t"] <= MAX_T:
        raise EventFormatError(f"{kind} event: 't' must be seconds from 0 to {MAX_T:g}, got {kwargs['t']!r}")
    for name, value in kwargs.items():
        if not checks[name](value):
            raise EventFormatError(f"{kind} event: field {name!r} has the wrong type ({type(value).__name__})")
    if cls is race.RaceStarted and "lanes" in kwargs:
        kwargs["lanes"] = tuple(kwargs["lanes"])
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required field such as 'lane'
        raise EventFormatError(f"{kind} event: {exc}") from None

__all__ = ["EVENT_TYPES", "EventFormatError", "MAX_INT", "MAX_T", "event_from_dict"]
