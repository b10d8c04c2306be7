"""The event stream: the spine every other part of Thunderdome consumes.

Invariant: an event is an immutable fact stamped with ``t``, seconds since the
race's start barrier on the monotonic clock, taken by the *source* at the
moment the thing happened (for network events: when the bytes arrived, before
any parsing). Everything the TUI shows and every metric is derived from events,
so a replayed race shows and computes exactly what the live race did.

Events round-trip through JSON (``to_dict`` / ``from_dict``); the ``type``
field names the class. Unknown fields are ignored on load so newer recordings
still open in older tools when only fields were added.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

from thunderdome.errors import ThunderdomeError

Channel = Literal["answer", "reasoning"]

NATURAL_ENDS = frozenset({"stop", "end_turn", "stop_sequence", "tool_calls", "tool_use", "function_call"})
"""``StreamEnded.finish_reason`` values meaning the model stopped by itself
(each protocol's words); anything else (``length``, ``max_tokens``, …) is
worth a note."""


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


# --- race-level ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RaceStarted(Event):
    """The start barrier opened. ``lanes``: one dict per lane with name, kind,
    model, url (never a key). ``started_at``: wall-clock ISO time (for humans);
    ``isolation``: the sandbox level in force (``bwrap``/``unshare``/``rlimits``
    or ``none`` for long races). ``max_tokens``: the cap sent to every lane;
    ``expected_tokens``: the task's expected reply length (0: not given);
    ``time_scale``: what sim lanes' delays were multiplied by (1.0: real
    time; a lanes entry's own ``time_scale`` overrides it for that lane).
    A lanes entry may carry the backend's ``price``."""

    type: ClassVar[str] = "race_started"
    task: str = ""
    kind: str = "long"
    title: str = ""
    lanes: tuple[dict[str, Any], ...] = ()
    started_at: str = ""
    isolation: str = "none"
    win_rule: str = ""
    max_tokens: int = 0
    expected_tokens: int = 0
    time_scale: float = 1.0


@dataclass(frozen=True, slots=True)
class WinnerDecided(Event):
    """The race has its winner, ``winner``, called the moment it is certain (a
    Thunderdome lane's command passed first, or its fighter stands alone; a
    long race's first lane to finish, once no lane still running can have
    finished before it), while other lanes may still run. At most one per
    race, before ``RaceFinished``, whose ``winner`` names the same lane.
    Recordings made before this event existed (format 2 too) have none: there
    ``RaceFinished`` names the winner."""

    type: ClassVar[str] = "winner_decided"
    winner: str = ""


@dataclass(frozen=True, slots=True)
class RaceFinished(Event):
    """Every lane has ended. ``winner`` is the winning lane's name, or None."""

    type: ClassVar[str] = "race_finished"
    winner: str | None = None
    reason: str = ""


# --- lane life-cycle -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaneStarted(LaneEvent):
    """The lane passed the start barrier. ``skew``: seconds between the barrier
    opening and this lane actually starting (start skew, recorded honestly)."""

    type: ClassVar[str] = "lane_started"
    skew: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestSent(LaneEvent):
    """The request for ``turn`` (1-based) was handed to the socket."""

    type: ClassVar[str] = "request_sent"
    turn: int = 1


@dataclass(frozen=True, slots=True)
class FirstByte(LaneEvent):
    """The first byte of the response body arrived (TTFB)."""

    type: ClassVar[str] = "first_byte"
    turn: int = 1
    status: int = 200


@dataclass(frozen=True, slots=True)
class TokenDelta(LaneEvent):
    """A non-empty piece of generated text. ``channel``: answer or reasoning.
    One delta may carry several tokens; empty and role-only chunks never
    become a TokenDelta."""

    type: ClassVar[str] = "token_delta"
    text: str = ""
    channel: Channel = "answer"
    turn: int = 1


@dataclass(frozen=True, slots=True)
class Usage(LaneEvent):
    """Server-reported counts for ``turn``. ``output_tokens`` is the *total*
    so far for that turn (cumulative protocols are assigned, never added).
    ``source``: ``usage`` (a usage object) or ``server`` (Ollama eval_count).
    ``server_tps``: the server's own tokens/s figure, if it sent one."""

    type: ClassVar[str] = "usage"
    turn: int = 1
    output_tokens: int | None = None
    input_tokens: int | None = None
    source: str = "usage"
    server_tps: float | None = None


@dataclass(frozen=True, slots=True)
class ServerTimings(LaneEvent):
    """What the server says ``turn``'s time to first token went to (seconds;
    None: not said). ``queue_s``: waiting for a slot; ``load_s``: loading the
    model (Ollama ``load_duration``); ``prefill_s``: processing the prompt
    (llama.cpp ``timings.prompt_ms``, Ollama ``prompt_eval_duration``);
    ``cached_tokens``: prompt tokens served from the server's cache (llama.cpp
    ``cache_n``, OpenAI ``cached_tokens``, Anthropic ``cache_read_input_tokens``)
    of the prompt's ``prompt_tokens``."""

    type: ClassVar[str] = "server_timings"
    turn: int = 1
    queue_s: float | None = None
    load_s: float | None = None
    prefill_s: float | None = None
    cached_tokens: int | None = None
    prompt_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class StreamEnded(LaneEvent):
    """The response stream for ``turn`` ended cleanly. ``finish_reason`` is the
    server's (``stop``, ``length``, ...); None means the stream closed without
    one, which usually means it was cut (see DESIGN.md)."""

    type: ClassVar[str] = "stream_ended"
    turn: int = 1
    finish_reason: str | None = None


# --- tool calls (streamed, every protocol) ------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCallStarted(LaneEvent):
    """A tool call of ``turn`` has its name: ``index`` is its 0-based place
    among the turn's calls, ``call_id`` the server's id (a stand-in for
    servers that send none, e.g. Ollama)."""

    type: ClassVar[str] = "tool_call_started"
    turn: int = 1
    call_id: str = ""
    name: str = ""
    index: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallDelta(LaneEvent):
    """A non-empty fragment of call ``index``'s JSON arguments. Output like a
    ``TokenDelta`` (it counts for TTFT, the delta count and ITL); built
    positionally on the hot path, so the field order is fixed."""

    type: ClassVar[str] = "tool_call_delta"
    turn: int = 1
    index: int = 0
    text: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallDone(LaneEvent):
    """Call ``index`` is complete: ``arguments`` is its whole JSON text, the
    moment the command could run (time to action). A call cut mid-arguments
    never gets one."""

    type: ClassVar[str] = "tool_call_done"
    turn: int = 1
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    index: int = 0


@dataclass(frozen=True, slots=True)
class ReasoningSigned(LaneEvent):
    """A reasoning block of ``turn`` closed with the server's signature over
    it (Anthropic's ``signature_delta``; for a ``redacted_thinking`` block,
    ``redacted`` and its opaque ``data`` as ``signature``). Not output: it
    counts for no figure. The block's text is the reasoning deltas since the
    turn's previous ``ReasoningSigned``; the next turn sends block and
    signature back as they came (Anthropic requires it for tool use with thinking)."""

    type: ClassVar[str] = "reasoning_signed"
    turn: int = 1
    signature: str = ""
    redacted: bool = False


# --- Thunderdome agent loop -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandExtracted(LaneEvent):
    """A shell command was found in the streamed reply of ``turn``."""

    type: ClassVar[str] = "command_extracted"
    turn: int = 1
    command: str = ""


@dataclass(frozen=True, slots=True)
class ExecFinished(LaneEvent):
    """A command finished in the sandbox. Output is truncated for the record."""

    type: ClassVar[str] = "exec_finished"
    turn: int = 1
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class Verdict(LaneEvent):
    """The checker's ruling on ``turn``. ``passed`` True means the lane completed
    the task at ``t`` (its completion time)."""

    type: ClassVar[str] = "verdict"
    turn: int = 1
    passed: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FeedbackSent(LaneEvent):
    """After a failed ``turn``, what the model is told before its next one
    (turn + 1, whose ``RequestSent`` follows): ``text`` is the message as
    sent (command output, exit code, what was wrong; its tail when longer
    than the race keeps), ``role`` its chat role: ``user`` (text mode) or
    ``tool`` (a tool result). Outside text: redacted when recorded, made
    visible and redacted when shown."""

    type: ClassVar[str] = "feedback_sent"
    turn: int = 1
    text: str = ""
    role: str = "user"


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


@dataclass(frozen=True, slots=True)
class Notice(Event):
    """Something worth telling the viewer (e.g. sandbox fell back). ``lane`` may
    be empty for race-wide notices."""

    type: ClassVar[str] = "notice"
    message: str = ""
    level: str = "info"
    lane: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RaceStarted,
        WinnerDecided,
        RaceFinished,
        LaneStarted,
        RequestSent,
        FirstByte,
        TokenDelta,
        Usage,
        ServerTimings,
        StreamEnded,
        ToolCallStarted,
        ToolCallDelta,
        ToolCallDone,
        ReasoningSigned,
        CommandExtracted,
        ExecFinished,
        Verdict,
        FeedbackSent,
        LaneFinished,
        LaneEliminated,
        LaneFailed,
        LaneStopped,
        FighterSpawned,
        RequestRelayed,
        Notice,
    )
}

LANE_END_TYPES = (LaneFinished, LaneEliminated, LaneFailed, LaneStopped)


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
    if cls is RaceStarted and "lanes" in kwargs:
        kwargs["lanes"] = tuple(kwargs["lanes"])
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required field such as 'lane'
        raise EventFormatError(f"{kind} event: {exc}") from None


__all__ = [
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

