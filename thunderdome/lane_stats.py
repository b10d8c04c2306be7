"""Per-lane state and figures: what one lane's events add up to (pure).

Invariant: ``lane_stats`` is a pure function of a ``LaneState``; the state is
only ever changed by the reducer in ``thunderdome.metrics``. The definitions
(TTFT, TTFA, e2e, N, output speed, ITL, multi-turn lanes) are documented in
``thunderdome.metrics``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


_ENDED = frozenset({"finished", "winner", "eliminated", "error"})
"""Lane statuses after its end."""


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
    answer_chars: int = 0
    gaps: list[float] = field(default_factory=list)
    usage_tokens: int | None = None
    usage_source: str | None = None
    input_tokens: int | None = None
    server_tps: float | None = None
    ended: bool = False
    finish_reason: str | None = None

    @property
    def tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else self.deltas

    @property
    def tokens_source(self) -> str:
        return self.usage_source if self.usage_tokens is not None else "estimate"

    def ttft(self) -> float | None:
        return None if self.first_token_t is None else self.first_token_t - self.request_t

    def e2e(self) -> float | None:
        return None if self.last_token_t is None else self.last_token_t - self.request_t


@dataclass
class LaneState:
    """Everything the reducer knows about one lane."""

    name: str
    kind: str = ""
    model: str = ""
    index: int = 0
    started_t: float | None = None
    skew: float = 0.0
    turns: list[TurnState] = field(default_factory=list)
    status: str = "waiting"
    """waiting | thinking | streaming | executing | finished | winner |
    eliminated | error."""
    end_t: float | None = None
    reason: str = ""
    eliminated_by: str | None = None
    completion_t: float | None = None
    verdict: str = ""
    last_command: str = ""
    last_exit: int | None = None
    pid: int | None = None
    """``last_standing``: the lane's fighter PID as the arena's commands see it."""

    @property
    def ended(self) -> bool:
        return self.status in _ENDED

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.turns)

    @property
    def live_tokens(self) -> int:
        """Deltas seen so far (usage arrives at the end of a turn)."""
        return sum(max(t.deltas, t.usage_tokens or 0) for t in self.turns)


@dataclass(frozen=True)
class LaneStats:
    """A lane's final (or current) figures, in seconds / tokens / tok/s / ms."""

    name: str
    kind: str
    model: str
    status: str
    ttfb_s: float | None
    ttft_s: float | None
    ttfa_s: float | None
    e2e_s: float | None
    tokens: int
    tokens_source: str
    output_tps: float | None
    itl_p50_ms: float | None
    itl_p90_ms: float | None
    itl_p99_ms: float | None
    server_tps: float | None
    completion_s: float | None
    finish_t: float | None
    turns: int
    verdict: str
    error: str
    eliminated_by: str | None
    finish_reason: str | None
    start_skew_ms: float
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "status": self.status,
            "rank": self.rank,
            "ttfb_s": _r(self.ttfb_s),
            "ttft_s": _r(self.ttft_s),
            "ttfa_s": _r(self.ttfa_s),
            "e2e_s": _r(self.e2e_s),
            "tokens": self.tokens,
            "tokens_source": self.tokens_source,
            "output_tps": _r(self.output_tps, 2),
            "itl_p50_ms": _r(self.itl_p50_ms, 3),
            "itl_p90_ms": _r(self.itl_p90_ms, 3),
            "itl_p99_ms": _r(self.itl_p99_ms, 3),
            "server_tps": _r(self.server_tps, 2),
            "completion_s": _r(self.completion_s),
            "turns": self.turns,
            "verdict": self.verdict,
            "error": self.error or None,
            "eliminated_by": self.eliminated_by,
            "finish_reason": self.finish_reason,
            "start_skew_ms": _r(self.start_skew_ms, 3),
        }


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def lane_stats(lane: LaneState) -> LaneStats:
    """Compute a lane's figures from its state (pure)."""
    turns = lane.turns
    first = turns[0] if turns else None
    ttfb = ttft = ttfa = e2e = None
    if first is not None:
        if first.first_byte_t is not None:
            ttfb = first.first_byte_t - first.request_t
        ttft = first.ttft()
        # TTFA: the first answer delta of the lane, measured from turn 1's request
        for turn in turns:
            if turn.first_answer_t is not None:
                ttfa = turn.first_answer_t - first.request_t
                break
        last_t = max((t.last_token_t for t in turns if t.last_token_t is not None), default=None)
        if last_t is not None:
            e2e = last_t - first.request_t
    tokens = sum(t.tokens for t in turns)
    sources = {t.tokens_source for t in turns if t.tokens or t.deltas}
    if not sources:
        tokens_source = "estimate"
    elif len(sources) == 1:
        tokens_source = sources.pop()
    else:
        tokens_source = "estimate" if "estimate" in sources else "usage"
    gen_tokens = 0
    gen_time = 0.0
    for t in turns:
        t_ttft, t_e2e = t.ttft(), t.e2e()
        if t.tokens >= 2 and t_ttft is not None and t_e2e is not None and t_e2e > t_ttft:
            gen_tokens += t.tokens - 1
            gen_time += t_e2e - t_ttft
    output_tps = gen_tokens / gen_time if gen_time > 0 else None
    gaps = sorted(g for t in turns for g in t.gaps)  # sorted once for the three percentiles
    server = [t.server_tps for t in turns if t.server_tps is not None]
    completion = lane.completion_t
    finish_t = max((t.last_token_t for t in turns if t.last_token_t is not None), default=None)
    return LaneStats(
        name=lane.name,
        kind=lane.kind,
        model=lane.model,
        status=lane.status,
        ttfb_s=ttfb,
        ttft_s=ttft,
        ttfa_s=ttfa,
        e2e_s=e2e,
        tokens=tokens,
        tokens_source=tokens_source,
        output_tps=output_tps,
        itl_p50_ms=_ms(percentile(gaps, 50, presorted=True)),
        itl_p90_ms=_ms(percentile(gaps, 90, presorted=True)),
        itl_p99_ms=_ms(percentile(gaps, 99, presorted=True)),
        server_tps=server[-1] if server else None,
        completion_s=completion,
        finish_t=finish_t,
        turns=len(turns),
        verdict=lane.verdict,
        error=lane.reason if lane.status == "error" else "",
        eliminated_by=lane.eliminated_by,
        finish_reason=turns[-1].finish_reason if turns else None,
        start_skew_ms=lane.skew * 1000.0,
    )


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000.0
