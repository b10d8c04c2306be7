"""One turn's state, and the sums and gaps a lane keeps over its turns (pure).

Invariant: these are the pieces ``lane_stats`` is built from, changed only
by the reducer in ``thunderdome.core.metrics``: a ``TurnState`` per request and
response; ``TurnTotals``, the running sums of a lane's closed turns, folded
once per turn in turn order (so every sum is the one a fold over all turns
would give); ``Gaps``, the lane's inter-token gaps in arrival order, sorted
only when a percentile is read; ``uncovered``, the part of a span no other
span covers (a non-streamed chat's model time, counted once). Reads fill
those caches and never change a figure.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace
from typing import Any

from thunderdome.core.token_count import Count, defended_count

STALL_MIN_S = 1.0
"""No silence shorter than this is a stall, however quick the lane's pace."""
STALL_FACTOR = 10.0
"""A silence beyond this many of the lane's own median gaps is a stall: an
order of magnitude past its pace, so jitter, batching and a slow but steady
lane never trip it (the 8.7 tok/s 4090 profile: 115 ms gaps, 1.15 s)."""


def stall_threshold(median_gap: float | None) -> float:
    """Seconds of silence after which a lane with this median gap is stalled:
    max(``STALL_MIN_S``, ``STALL_FACTOR`` x median gap)."""
    return max(STALL_MIN_S, STALL_FACTOR * (median_gap or 0.0))


def percentile(values: list[float], q: float, *, presorted: bool = False) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of ``values``; None if empty.
    ``presorted``: ``values`` is already in ascending order (skip the sort)."""
    if not values:
        return None
    ordered = values if presorted else sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class TurnState:
    """What one request/response turn has shown so far."""

    turn: int
    request_t: float
    first_byte_t: float | None = None
    first_token_t: float | None = None
    first_answer_t: float | None = None
    last_token_t: float | None = None
    deltas: int = 0
    chars: int = 0
    """Characters of every output delta (answer, reasoning, tool arguments)."""
    answer_chars: int = 0
    usage_tokens: int | None = None
    usage_source: str | None = None
    input_tokens: int | None = None
    server_tps: float | None = None
    ended: bool = False
    finish_reason: str | None = None
    server: dict[str, Any] = field(default_factory=dict)
    """What the server said the turn's TTFT went to (``ServerTimings`` fields
    that were not None, the latest of each)."""

    # tool calls and the split of a turn into model time and tool time
    ended_t: float | None = None
    """When the turn's stream ended cleanly (``StreamEnded``)."""
    first_call_t: float | None = None
    """The turn's first ``ToolCallStarted`` (the call's name has arrived)."""
    first_action_t: float | None = None
    """The turn's first ``ToolCallDone`` (a call's arguments are complete)."""
    last_action_t: float | None = None
    exec_s: float | None = None
    """Sum of the turn's ``ExecFinished.duration`` (commands run by Thunderdome)."""
    next_request_t: float | None = None
    """The next turn's ``RequestSent``, once there is one."""
    side_s: float = 0.0
    """Seconds of non-streamed chat replies after this turn's end (in its
    tool gap) that no turn was waiting through: model time, never tool time."""

    def since_request(self, t: float | None) -> float | None:
        return None if t is None else t - self.request_t

    def model_end_t(self) -> float | None:
        """Where the turn's model time ends: its stream's end, else its last delta."""
        return self.ended_t if self.ended_t is not None else self.last_token_t

    def model_s(self) -> float | None:
        """Model time: the turn's request to its stream's end (else its last delta)."""
        return self.since_request(self.model_end_t())

    def tool_s(self) -> float | None:
        """Tool time: the turn's ``ExecFinished`` durations when commands ran
        in the sandbox; else, for a turn that called tools, its end (its
        stream's end, else its last ``ToolCallDone``) to the next turn's
        ``RequestSent``, less the non-streamed chat time in between
        (``side_s``: the agent waited on the model then): running the tools
        and sending their results, never overlapping a model time; None for a
        turn with neither."""
        if self.exec_s is not None:
            return self.exec_s
        if self.last_action_t is not None and self.next_request_t is not None:
            end = self.ended_t if self.ended_t is not None else self.last_action_t
            return max(self.next_request_t - end - self.side_s, 0.0)
        return None

    def figures(self) -> dict[str, Any]:
        """The turn's own figures (``--json`` ``per_turn``), from its request."""
        return {
            "turn": self.turn,
            "ttft_s": _r(self.ttft()),
            "ttftc_s": _r(self.since_request(self.first_call_t)),
            "tta_s": _r(self.since_request(self.first_action_t)),
            "model_s": _r(self.model_s()),
            "tool_s": _r(self.tool_s()),
        }

    def count(self) -> Count:
        """The turn's output-token count, cross-checked against its stream."""
        return defended_count(self.usage_tokens, self.usage_source, self.deltas, self.chars)

    @property
    def tokens(self) -> int:
        return self.count().tokens

    @property
    def tokens_source(self) -> str:
        return self.count().source

    def ttft(self) -> float | None:
        return None if self.first_token_t is None else self.first_token_t - self.request_t

    def e2e(self) -> float | None:
        return None if self.last_token_t is None else self.last_token_t - self.request_t


class Gaps:
    """A lane's inter-token gaps (seconds, pooled over its turns, never across a
    turn boundary) in arrival order; sorted only when a percentile is asked for.

    Invariant: ``arrived`` only grows, and ``_sorted`` is always the ascending
    sort of ``arrived[:len(_sorted)]``."""

    __slots__ = ("arrived", "_sorted")

    def __init__(self) -> None:
        self.arrived: list[float] = []
        self._sorted: list[float] = []

    def _ordered(self, count: int) -> list[float]:
        """The first ``count`` gaps that arrived, in ascending order."""
        done = self._sorted
        if count > len(done):  # sort the new gaps in (a sorted run plus a tail: cheap for timsort)
            done.extend(self.arrived[len(done):count])
            done.sort()
        return done if count == len(done) else sorted(self.arrived[:count])  # figures older than the cache

    def percentile(self, q: float, count: int) -> float | None:
        """``percentile`` of the first ``count`` gaps that arrived."""
        return percentile(self._ordered(count), q, presorted=True)

    def longest(self, count: int) -> float | None:
        """The longest of the first ``count`` gaps (ITL max); None if none."""
        ordered = self._ordered(count)
        return ordered[-1] if ordered else None

    def shared(self, count: int) -> int:
        """How many of the first ``count`` gaps are zero: deltas that came in
        the same read (every chunk read is stamped once)."""
        return bisect.bisect_right(self._ordered(count), 0.0)

    def stalls(self, count: int) -> int:
        """How many of the first ``count`` gaps were stalls: longer than
        ``stall_threshold`` of their median."""
        ordered = self._ordered(count)
        if not ordered:
            return 0
        return len(ordered) - bisect.bisect_right(ordered, stall_threshold(percentile(ordered, 50, presorted=True)))


@dataclass(slots=True)
class TurnTotals:
    """Lane figures summed over whole turns, folded in turn order."""

    tokens: int = 0
    live_tokens: int = 0
    gen_tokens: int = 0
    """Output speed's numerator: sum(N_i - 1) over turns with two or more tokens."""
    gen_time: float = 0.0
    """Output speed's denominator: sum(e2e_i - TTFT_i) over the same turns."""
    last_token_t: float | None = None
    first_answer_t: float | None = None
    """The first answer delta of the first turn that has one."""
    sources: frozenset[str] = frozenset()
    """``tokens_source`` of the turns that produced output."""
    count_check: str = ""
    """The first turn's ``Count.check`` that is not empty: why a server's
    count was not used."""
    server_tps: float | None = None
    """From the last turn that reported one."""
    input_tokens: int | None = None
    """Server-reported input (prompt) tokens, summed over the turns that
    reported them; None if none did."""
    input_known: bool = True
    """Every turn that produced output reported its input tokens."""
    first_call_t: float | None = None
    first_action_t: float | None = None
    """The first tool call started / complete, of the first turn that has one."""
    model_s: float | None = None
    tool_s: float | None = None
    """Sums of the turns' model and tool times (None: no turn has one)."""

    def add(self, turn: TurnState) -> None:
        """Fold in the next turn."""
        count = turn.count()
        tokens = count.tokens
        self.tokens += tokens
        if count.check and not self.count_check:
            self.count_check = count.check if turn.turn == 1 else f"turn {turn.turn}: {count.check}"
        self.live_tokens += tokens
        ttft, e2e = turn.ttft(), turn.e2e()
        if tokens >= 2 and ttft is not None and e2e is not None and e2e > ttft:
            self.gen_tokens += tokens - 1
            self.gen_time += e2e - ttft
        last = turn.last_token_t
        if last is not None and (self.last_token_t is None or last > self.last_token_t):
            self.last_token_t = last
        if self.first_answer_t is None:
            self.first_answer_t = turn.first_answer_t
        if tokens or turn.deltas:
            source = count.source
            if source not in self.sources:
                self.sources = self.sources | {source}
        if turn.server_tps is not None:
            self.server_tps = turn.server_tps
        if turn.input_tokens is not None:
            self.input_tokens = (self.input_tokens or 0) + turn.input_tokens
        elif tokens or turn.deltas:
            self.input_known = False

        if self.first_call_t is None:
            self.first_call_t = turn.first_call_t
        if self.first_action_t is None:
            self.first_action_t = turn.first_action_t
        model, tool = turn.model_s(), turn.tool_s()
        if model is not None:
            self.model_s = (self.model_s or 0.0) + model
        if tool is not None:
            self.tool_s = (self.tool_s or 0.0) + tool

    def copy(self) -> TurnTotals:
        return replace(self)

    @property
    def output_tps(self) -> float | None:
        """(N - 1) / (e2e - TTFT), pooled over the turns (tok/s)."""
        return self.gen_tokens / self.gen_time if self.gen_time > 0 else None


def uncovered(start: float, end: float, spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The pieces of ``[start, end]`` that none of ``spans`` covers, in order."""
    pieces, at = [], start
    for lo, hi in sorted(spans):
        if hi <= at or lo >= end:
            continue
        if lo > at:
            pieces.append((at, lo))
        at = max(at, hi)
        if at >= end:
            return pieces
    if at < end:
        pieces.append((at, end))
    return pieces


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
