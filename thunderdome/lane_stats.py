"""Per-lane state and figures: what one lane's events add up to (pure).

Invariant: ``lane_stats`` is a pure function of a ``LaneState``; the state is
only ever changed by the reducer in ``thunderdome.metrics``. The definitions
(TTFT, TTFA, e2e, N, output speed, ITL, multi-turn lanes) are documented in
``thunderdome.metrics``.

Reads cost O(1) per lane however long the race: a lane keeps the running
totals of its closed turns (``TurnTotals``, folded once per turn, in turn
order, so every sum is the one a fold over all turns would give) and adds its
live turn on each read; its inter-token gaps are kept in arrival order and
sorted only when an ITL percentile is read (``Gaps``), the sort cached until
new gaps arrive. Those caches are the only state a read changes, and they
never change a figure.

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

from thunderdome.turn_stats import (
    STALL_MIN_S,
    Gaps,
    TurnState,
    TurnTotals,
    _r,
    stall_threshold,
)


_ENDED = frozenset({"finished", "winner", "eliminated", "error", "stopped"})
"""Lane statuses after its end."""

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
    eliminated | error | stopped (the race was won while it worked)."""
    end_t: float | None = None
    reason: str = ""
    eliminated_by: str | None = None
    completion_t: float | None = None
    verdict: str = ""
    last_command: str = ""
    last_exit: int | None = None
    pid: int | None = None
    """``last_standing``: the lane's fighter PID as the arena's commands see it."""
    price: dict[str, float] | None = None
    """The backend's ``input_per_mtok`` / ``output_per_mtok`` (dollars), if given."""
    time_scale: float = 1.0
    """What the lane's delays were multiplied by (sim lanes under
    ``--time-scale``); 1.0 is real time."""
    gaps: Gaps = field(default_factory=Gaps, repr=False, compare=False)
    """Inter-token gaps in arrival order (the reducer appends them)."""
    _closed: TurnTotals = field(default_factory=TurnTotals, init=False, repr=False, compare=False)
    """Totals of ``turns[:_closed_n]``, none of which changed since it was folded in."""
    _closed_n: int = field(default=0, init=False, repr=False, compare=False)

    @property
    def ended(self) -> bool:
        return self.status in _ENDED

    def turn(self, number: int, t: float) -> TurnState:
        """Turn ``number``, opened at ``t`` if new. The reducer changes a turn
        only through this (or the last turn directly), so a closed turn that
        changes again drops the cached totals."""
        turns = self.turns
        if turns and turns[-1].turn == number:
            return turns[-1]
        for existing in turns:
            if existing.turn == number:
                self._closed, self._closed_n = TurnTotals(), 0
                return existing
        state = TurnState(turn=number, request_t=t)
        turns.append(state)
        return state

    def closed(self) -> TurnTotals:
        """Totals of every turn but the live (last) one: each turn folded once."""
        closed, end = self._closed, len(self.turns) - 1
        while self._closed_n < end:
            closed.add(self.turns[self._closed_n])
            self._closed_n += 1
        return closed

    def totals(self) -> TurnTotals:
        """Totals over all turns (a copy: the closed turns' plus the live turn)."""
        totals = self.closed().copy()
        if self.turns:
            totals.add(self.turns[-1])
        return totals

    @property
    def tokens(self) -> int:
        return self.closed().tokens + (self.turns[-1].tokens if self.turns else 0)

    def streaming_turn(self) -> TurnState | None:
        """The live turn while it streams (a first delta came, its stream has
        not ended, the lane is running): the one whose silence counts."""
        turn = self.turns[-1] if self.turns else None
        if turn is None or turn.first_token_t is None or turn.ended or self.status in _ENDED:
            return None
        return turn

    def rate_at(self, now: float, totals: TurnTotals) -> float | None:
        """Output speed at ``now`` (tok/s): while a turn streams, its
        (N - 1) / (now - TTFT) pooled with the closed turns' generation, so
        silence since the last delta slows it; otherwise ``totals.output_tps``.
        ``totals``: ``self.totals()``."""
        turn = self.streaming_turn()
        if turn is None or turn.tokens < 2:
            return totals.output_tps
        closed = self.closed()
        spent = closed.gen_time + max(now, turn.last_token_t or now) - turn.first_token_t  # type: ignore[operator]
        return (closed.gen_tokens + turn.tokens - 1) / spent if spent > 0 else totals.output_tps

    def stalled_for(self, now: float) -> float | None:
        """Seconds of silence at ``now`` if the lane is stalled (its streaming
        turn silent beyond ``stall_threshold`` of its median gap), else None."""
        turn = self.streaming_turn()
        if turn is None or turn.last_token_t is None:
            return None
        silence = now - turn.last_token_t
        if silence <= STALL_MIN_S:  # the common case: no percentile read
            return None
        gaps = self.gaps
        count = len(gaps.arrived)
        if count:  # the gaps of a turn add up to its span, and a median is at most twice the mean (Markov):
            span = sum(t.last_token_t - t.first_token_t for t in self.turns if t.first_token_t is not None)  # type: ignore[operator]
            if silence > stall_threshold(2.0 * max(span, 0.0) / count) * (1 + 1e-9):
                return silence  # far past any threshold: no sort of new gaps needed to say so
        return silence if silence > stall_threshold(gaps.percentile(50, count)) else None

    @property
    def live_tokens(self) -> int:
        """Deltas seen so far (usage arrives at the end of a turn)."""
        last = self.turns[-1] if self.turns else None
        return self.closed().live_tokens + (last.tokens if last else 0)


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
    tool_s: float | None = None
    """Summed over turns (``TurnState.model_s`` / ``TurnState.tool_s``)."""
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
        model_s=totals.model_s,
        tool_s=totals.tool_s,
        end_t=lane.end_t,
        count_check=totals.count_check,
        server_split=first.server if first is not None else {},
        turn_log=turns,
    )


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000.0
