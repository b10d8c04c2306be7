"""Per-lane figures: what one lane's events add up to (pure).

Invariant: ``lane_stats`` is a pure function of a ``LaneState``
(``thunderdome.core.lane_state``, changed only by the reducer in
``thunderdome.core.metrics``), and a ``LaneStats`` is frozen: what a lane's
figures were at the moment read. The definitions (TTFT, TTFA, e2e, N, output
speed, ITL, multi-turn lanes) are documented in ``thunderdome.core.metrics``.

Reads cost O(1) per lane however long the race (``LaneState`` keeps the
running totals of its closed turns); the inter-token gaps are sorted only
when an ITL percentile is read (``Gaps``), the sort cached until new gaps
arrive. Those caches are the only state a read changes, and they never
change a figure.

Figures read at a moment ``now`` (``lane_stats(..., now=...)``, what
``Standings.ranked(now)`` passes) are anchored at *now*, not at the last
token: while a turn is streaming, the output speed counts the silence since
the last delta ((N - 1) / (now - TTFT), pooled with the closed turns), and a
lane silent for longer than ``stall_threshold`` of its own median gap is
*stalled* (``LaneStats.stalled_s``). At the last token the rate at now is
the output speed, so a lane's figure never jumps when it finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from thunderdome.core.lane_state import LaneState
from thunderdome.core.turn_stats import Gaps, TurnState, TurnTotals, _r


SPLIT_PARTS = ("queue_s", "load_s", "prefill_s")
"""The parts of a TTFT a server may report (``ServerTimings``), in order."""

ITL_LIMITED_AT = 1.5
"""Mean deltas per read from which a lane's ITL figures are marked as limited
by the client (it read several deltas at once: busy, or a saturated machine)."""


def ttft_split_note(ttft: float, split: dict[str, float]) -> str:
    """``TTFT 1.892 s = queue 0.991 + prefill 0.900 + rest 0.001``: the parts
    in ``SPLIT_PARTS`` order, then the rest (seconds, 1 ms digits)."""
    said = " + ".join(f"{name[:-2]} {split[name]:.3f}" for name in (*SPLIT_PARTS, "rest_s") if name in split)
    return f"TTFT {ttft:.3f} s = {said}"


def itl_limited_note(deltas_per_read: float | None) -> str:
    return f"ITL limited by the client ({deltas_per_read or 0:.1f} deltas per read)"


CLIENT_LIMITED_NOTE = (
    "most lanes read several deltas at once: this machine, not the servers, set the ITL figures"
)


def cost_of(
    price: dict[str, float] | None, input_tokens: int | None, output_tokens: int, *, input_known: bool = True
) -> float | None:
    """Dollars: input and output tokens x the per-million prices of ``price``
    (``input_per_mtok`` / ``output_per_mtok``; a price not given costs
    nothing; a turn that produced no output is not billed). None without a
    price, or when input is priced but a turn with output did not report its
    input count (``input_known`` False: a partial sum would understate the bill)."""
    if not price:
        return None
    per_in, per_out = price.get("input_per_mtok", 0.0), price.get("output_per_mtok", 0.0)
    if per_in and not input_known:
        return None
    return ((input_tokens or 0) * per_in + output_tokens * per_out) / 1e6


@dataclass(frozen=True, slots=True)
class Projection:
    """When a running lane is expected to finish (``Standings.projection``)."""

    t: float
    """Race-clock seconds: when it reaches ``tokens`` at its rate at now."""
    tokens: int
    """The reply length it is projected to: ``basis``'s, capped by max_tokens."""
    basis: str
    """Where ``tokens`` comes from: ``finished`` (median of the lanes that
    finished this race), ``task`` (the task's ``expected_tokens``) or
    ``max_tokens`` (the cap: nothing better known, or the lane passed the others)."""


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
    """(N - 1) / (e2e - TTFT); read at a moment ``now``, the rate at now
    (``LaneState.rate_at``): what the lane sustains, stalls included."""
    server_tps: float | None
    completion_s: float | None
    finish_t: float | None
    turns: int
    verdict: str
    error: str
    eliminated_by: str | None
    finish_reason: str | None
    start_skew_ms: float
    gaps: Gaps = field(default_factory=Gaps, repr=False, compare=False)
    """The lane's gap log: the ITL percentiles are read from it when asked for."""
    gap_count: int = 0
    """How many gaps had arrived when these figures were taken (the log only
    grows, so the percentiles are this moment's whenever they are read)."""
    rank: int = 0
    """1-based leaderboard place, set by ``Standings.ranked``."""
    projected_t: float | None = None
    """Long race, running lane: when it reaches its expected length at its
    rate at now (race clock, ``Standings.projection``), set by ``Standings.ranked``."""
    projected_tokens: int | None = None
    """The expected length ``projected_t`` is for (see ``Projection.tokens``)."""
    projection_basis: str | None = None
    """What ``projected_tokens`` is based on (see ``Projection.basis``)."""
    stalled_s: float | None = None
    """Seconds the lane has been silent at the moment read, if that is a stall
    (``LaneState.stalled_for``); None while it keeps its pace, or has ended."""
    input_tokens: int | None = None
    """Server-reported input tokens, summed over turns (None: never reported)."""
    price: dict[str, float] | None = None
    """The backend's price (``input_per_mtok`` / ``output_per_mtok``, dollars)."""
    cost: float | None = None
    """Dollars (``cost_of``): None without a price or with an unknown priced count."""
    time_scale: float = 1.0
    """The lane's delays were multiplied by this (1.0: real time)."""
    ttftc_s: float | None = None
    """Time to first tool call: turn 1's request to the lane's first call's name."""
    tta_s: float | None = None
    """Time to action: turn 1's request to the lane's first complete call."""
    model_s: float | None = None
    """Seconds the lane waited on its model: its turns' model time
    (``TurnState.model_s``) plus the non-streamed chats' time no turn covers
    (``LaneState.side_model_s``)."""
    tool_s: float | None = None
    """Summed over turns (``TurnState.tool_s``: a non-streamed chat between
    turns is model time, not tool time)."""
    requests: int = 0
    """Every request the lane sent upstream: its turns, plus (agent lanes)
    the probes and non-streamed chats its gateway relayed (``RequestRelayed``)."""
    program: str | None = None
    """The agent preset that ran the lane (``LaneState.program``); None: the race's own loop."""
    startup_s: float | None = None
    """Agent lanes: the lane's start (the agent launched) to its first turn's
    request, less the non-streamed chat time in between (model time): the
    agent's own start-up; None for other lanes and before that request."""
    end_t: float | None = None
    """When the lane ended (its ending event's ``t``, race clock); None while it runs."""
    count_check: str = ""
    """Why the server's token count was not used (``token_count``); '' if it was."""
    server_split: dict[str, Any] = field(default_factory=dict)
    """Turn 1's ``ServerTimings`` fields (``queue_s``, ``load_s``, ``prefill_s``,
    ``cached_tokens``, ``prompt_tokens``): what the server said its TTFT went to."""
    turn_log: list[TurnState] = field(default_factory=list, repr=False, compare=False)
    """The lane's turns: ``per_turn`` figures are read from the first ``turns``."""

    @property
    def itl_max_ms(self) -> float | None:
        """The longest gap between deltas (ms)."""
        return _ms(self.gaps.longest(self.gap_count))

    @property
    def stalls(self) -> int:
        """Gaps longer than ``stall_threshold`` of the lane's median gap."""
        return self.gaps.stalls(self.gap_count)

    @property
    def itl_p50_ms(self) -> float | None:
        return _ms(self.gaps.percentile(50, self.gap_count))

    @property
    def itl_p90_ms(self) -> float | None:
        return _ms(self.gaps.percentile(90, self.gap_count))

    @property
    def itl_p99_ms(self) -> float | None:
        return _ms(self.gaps.percentile(99, self.gap_count))

    @property
    def deltas_per_read(self) -> float | None:
        """Mean deltas per stamped read (1.0: each delta had its own read);
        None without deltas. Deltas read together share one stamp, so their
        gaps are 0 whatever the server's pace."""
        opened = sum(1 for turn in self.turn_log[: self.turns] if turn.deltas)
        reads = self.gap_count - self.gaps.shared(self.gap_count) + opened
        return (self.gap_count + opened) / reads if reads else None

    @property
    def itl_limited(self) -> bool:
        """The ITL figures say more about the client than the server: on
        average ``ITL_LIMITED_AT`` deltas or more shared a read."""
        per_read = self.deltas_per_read
        return per_read is not None and per_read >= ITL_LIMITED_AT

    @property
    def ttft_split(self) -> dict[str, float] | None:
        """Turn 1's TTFT split by what the server said: ``queue_s``,
        ``load_s``, ``prefill_s`` where said, and ``rest_s``: the remainder
        (network, client, decoding the first token; 0 if the server's parts
        add up to more than the client saw). None if the server said nothing
        about its time or there is no TTFT."""
        parts = {k: self.server_split[k] for k in SPLIT_PARTS if k in self.server_split}
        if not parts or self.ttft_s is None:
            return None
        return {**parts, "rest_s": max(self.ttft_s - sum(parts.values()), 0.0)}

    @property
    def prompt_cached(self) -> bool:
        """Turn 1's prompt was served (partly) from the server's cache: its
        TTFT is a warm start, not comparable with a cold one."""
        return bool(self.server_split.get("cached_tokens"))

    @staticmethod
    def ttft_split_worth_a_note(split: dict[str, float], ttft: float) -> bool:
        """A split is news when a quarter or more of a TTFT of 50 ms or more
        went to something other than prefill: loading, a queue, or time the
        server does not account for (waiting before it started, the network)."""
        return ttft >= 0.05 and any(split.get(k, 0.0) >= 0.25 * ttft for k in ("queue_s", "load_s", "rest_s"))

    def figure_notes(self) -> list[str]:
        """What a person must know to read this lane's figures right (the
        token count not believed, ITL limited by the client, where TTFT went,
        a warm prompt); [] if nothing."""
        notes = [self.count_check] if self.count_check else []
        split = self.ttft_split
        if split is not None and self.ttft_s is not None and self.ttft_split_worth_a_note(split, self.ttft_s):
            notes.append(ttft_split_note(self.ttft_s, split))
        if self.prompt_cached:
            cached, prompt = self.server_split["cached_tokens"], self.server_split.get("prompt_tokens")
            of = f" of {prompt}" if prompt else ""
            notes.append(f"prompt from cache ({cached}{of} tokens): a warm start, not comparable with a cold one")
        if self.itl_limited:
            notes.append(itl_limited_note(self.deltas_per_read))
        return notes

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "program": self.program,
            "status": self.status,
            "rank": self.rank,
            "ttfb_s": _r(self.ttfb_s),
            "ttft_s": _r(self.ttft_s),
            "ttfa_s": _r(self.ttfa_s),
            "e2e_s": _r(self.e2e_s),
            "finish_s": _r(self.finish_t),
            "tokens": self.tokens,
            "tokens_source": self.tokens_source,
            "count_check": self.count_check or None,
            "output_tps": _r(self.output_tps, 2),
            "itl_p50_ms": _r(self.itl_p50_ms, 3),
            "itl_p90_ms": _r(self.itl_p90_ms, 3),
            "itl_p99_ms": _r(self.itl_p99_ms, 3),
            "itl_max_ms": _r(self.itl_max_ms, 3),
            "stalls": self.stalls,
            "deltas_per_read": _r(self.deltas_per_read, 3),
            "itl_limited": self.itl_limited,
            "ttft_split": None if (split := self.ttft_split) is None else {k: _r(v) for k, v in split.items()},
            "cached_tokens": self.server_split.get("cached_tokens"),
            "prompt_cached": self.prompt_cached,
            "server_tps": _r(self.server_tps, 2),
            "completion_s": _r(self.completion_s),
            "turns": self.turns,
            "verdict": self.verdict,
            "error": self.error or None,
            "eliminated_by": self.eliminated_by,
            "finish_reason": self.finish_reason,
            "start_skew_ms": _r(self.start_skew_ms, 3),
            "input_tokens": self.input_tokens,
            "price_input_per_mtok": (self.price or {}).get("input_per_mtok"),
            "price_output_per_mtok": (self.price or {}).get("output_per_mtok"),
            "cost": _r(self.cost, 6),
            "time_scale": self.time_scale,
            "ttftc_s": _r(self.ttftc_s),
            "tta_s": _r(self.tta_s),
            "model_s": _r(self.model_s),
            "tool_s": _r(self.tool_s),
            "requests": self.requests,
            "startup_s": _r(self.startup_s),
            "per_turn": [turn.figures() for turn in self.turn_log[: self.turns]],
        }


def lane_stats(
    lane: LaneState,
    totals: TurnTotals | None = None,
    *,
    rank: int = 0,
    now: float | None = None,
    projection: Projection | None = None,
) -> LaneStats:
    """Compute a lane's figures from its state (pure; O(1): the ITL
    percentiles are computed when read). ``totals``: ``lane.totals()`` if the
    caller has it already; ``now``: read the output speed and the stall at
    that moment (None: as of the last token); ``rank`` and ``projection``:
    see ``LaneStats``."""
    turns = lane.turns
    first = turns[0] if turns else None
    totals = lane.totals() if totals is None else totals
    ttfb = ttft = ttfa = e2e = None
    if first is not None:
        if first.first_byte_t is not None:
            ttfb = first.first_byte_t - first.request_t
        ttft = first.ttft()
        if totals.first_answer_t is not None:  # the lane's first answer delta, from turn 1's request
            ttfa = totals.first_answer_t - first.request_t
        if totals.last_token_t is not None:
            e2e = totals.last_token_t - first.request_t
    sources = totals.sources
    if not sources:
        tokens_source = "estimate"
    elif len(sources) == 1:
        (tokens_source,) = sources
    else:
        tokens_source = "estimate" if "estimate" in sources else "usage"
    return LaneStats(
        name=lane.name,
        kind=lane.kind,
        model=lane.model,
        status=lane.status,
        ttfb_s=ttfb,
        ttft_s=ttft,
        ttfa_s=ttfa,
        e2e_s=e2e,
        tokens=totals.tokens,
        tokens_source=tokens_source,
        output_tps=totals.output_tps if now is None else lane.rate_at(now, totals),
        server_tps=totals.server_tps,
        completion_s=lane.completion_t,
        finish_t=totals.last_token_t,
        turns=len(turns),
        verdict=lane.verdict,
        error=lane.reason if lane.status == "error" else "",
        eliminated_by=lane.eliminated_by,
        finish_reason=turns[-1].finish_reason if turns else None,
        start_skew_ms=lane.skew * 1000.0,
        gaps=lane.gaps,
        gap_count=len(lane.gaps.arrived),
        rank=rank,
        projected_t=None if projection is None else projection.t,
        projected_tokens=None if projection is None else projection.tokens,
        projection_basis=None if projection is None else projection.basis,
        stalled_s=None if now is None else lane.stalled_for(now),
        input_tokens=totals.input_tokens,
        price=lane.price,
        cost=cost_of(lane.price, totals.input_tokens, totals.tokens, input_known=totals.input_known),
        time_scale=lane.time_scale,
        ttftc_s=first.since_request(totals.first_call_t) if first is not None else None,
        tta_s=first.since_request(totals.first_action_t) if first is not None else None,
        model_s=_model_s(totals.model_s, lane.side_model_s if lane.side_spans else None),
        tool_s=totals.tool_s,
        requests=len(turns) + lane.side_requests,
        program=lane.program,
        startup_s=startup_of(lane),
        end_t=lane.end_t,
        count_check=totals.count_check,
        server_split=first.server if first is not None else {},
        turn_log=turns,
    )


def startup_of(lane: LaneState) -> float | None:
    """An agent lane's start-up: its ``LaneStarted`` to its first ``RequestSent``,
    less the model time of the non-streamed chats it sent before that."""
    if lane.program is None or lane.started_t is None or not lane.turns:
        return None
    return max(lane.turns[0].request_t - lane.started_t - lane.side_startup_s, 0.0)


def _model_s(turns: float | None, side: float | None) -> float | None:
    """The turns' model time plus the side chats'; None if neither has one."""
    return turns if side is None else (turns or 0.0) + side


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000.0
