"""A lane's turn events: one request, its streamed reply, and what the
Thunderdome agent loop did with it.

Invariant: every event here names its ``turn`` (1-based); within a turn
``RequestSent`` comes first, and output (``TokenDelta``, ``ToolCallDelta``)
is never empty. The stream events are built on the token hot path, some
positionally, so field order is part of the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from thunderdome.core.events.base import Channel, LaneEvent

NATURAL_ENDS = frozenset({"stop", "end_turn", "stop_sequence", "tool_calls", "tool_use", "function_call"})
"""``StreamEnded.finish_reason`` values meaning the model stopped by itself
(each protocol's words); anything else (``length``, ``max_tokens``, …) is
worth a note."""


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

