"""Metrics: a pure reducer over events (no I/O, no clock reads).

Invariant: every number Thunderdome reports is computed here from events, and
only from events, so a replayed race gives exactly the live race's figures.
``Standings.apply(event)`` folds one event in; ``Standings.results()`` and
``Standings.leaderboard(now)`` read the state out. Definitions follow the
metric table of DESIGN.md:

- times are measured from the turn's ``RequestSent``;
- TTFT: first non-empty delta of any channel; TTFA: first answer delta;
- e2e: last delta (usage frames and end markers don't count);
- N: server-reported tokens when present (``usage`` / ``server``), else the
  count of deltas (``estimate``);
- output speed: (N - 1) / (e2e - TTFT);
- ITL: gaps between consecutive deltas of one turn.

A lane may run several turns (the Thunderdome agent loop). Lane figures:
TTFB/TTFT/TTFA come from turn 1; e2e runs from turn 1's request to the last
delta of the last turn; N is summed over turns; output speed is
sum(N_i - 1) / sum(e2e_i - TTFT_i) over the turns that produced two or more
tokens; ITL gaps are pooled over turns (never across a turn boundary).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from thunderdome.events import (
    CommandExtracted,
    Event,
    ExecFinished,
    LaneEliminated,
    LaneError,
    LaneFinished,
    LaneStarted,
    RaceFinished,
    RaceStarted,
    RequestSent,
    FirstByte,
    StreamEnded,
    TokenDelta,
    Usage,
    Verdict,
)


_ENDED = frozenset({"finished", "winner", "eliminated", "error"})
"""Lane statuses after its end."""


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of ``values``; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
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
    gaps = [g for t in turns for g in t.gaps]
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
        itl_p50_ms=_ms(percentile(gaps, 50)),
        itl_p90_ms=_ms(percentile(gaps, 90)),
        itl_p99_ms=_ms(percentile(gaps, 99)),
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


class Standings:
    """The reducer. Feed every event of a race in order with ``apply``."""

    def __init__(self) -> None:
        self.task = ""
        self.kind = "long"
        self.title = ""
        self.win_rule = ""
        self.started_at = ""
        self.isolation = "none"
        self.max_tokens = 0
        self.lanes: dict[str, LaneState] = {}
        self.winner: str | None = None
        self.finished = False
        self.finished_t: float | None = None
        self.last_t = 0.0
        self.events_seen = 0

    # -- folding -------------------------------------------------------------------

    def _lane(self, name: str) -> LaneState:
        lane = self.lanes.get(name)
        if lane is None:
            lane = LaneState(name=name, index=len(self.lanes))
            self.lanes[name] = lane
        return lane

    def _turn(self, lane: LaneState, turn: int, t: float) -> TurnState:
        if lane.turns and lane.turns[-1].turn == turn:
            return lane.turns[-1]
        for existing in lane.turns:
            if existing.turn == turn:
                return existing
        state = TurnState(turn=turn, request_t=t)
        lane.turns.append(state)
        return state

    def apply(self, event: Event) -> None:
        self.events_seen += 1
        t = event.t
        if t > self.last_t:
            self.last_t = t
        if isinstance(event, TokenDelta):  # the hot path first: lookups inlined
            lane = self.lanes.get(event.lane) or self._lane(event.lane)
            turns = lane.turns
            turn = turns[-1] if turns and turns[-1].turn == event.turn else self._turn(lane, event.turn, t)
            last = turn.last_token_t
            if turn.first_token_t is None:
                turn.first_token_t = t
            elif last is not None:
                turn.gaps.append(t - last)
            turn.last_token_t = t
            turn.deltas += 1
            if event.channel == "answer":
                turn.answer_chars += len(event.text)
                if turn.first_answer_t is None:
                    turn.first_answer_t = t
                if lane.status not in _ENDED:
                    lane.status = "streaming"
            elif lane.status not in _ENDED:
                lane.status = "thinking"
            return
        if isinstance(event, RaceStarted):
            self.task, self.kind, self.title = event.task, event.kind, event.title
            self.win_rule, self.started_at = event.win_rule, event.started_at
            self.isolation, self.max_tokens = event.isolation, event.max_tokens
            for info in event.lanes:
                lane = self._lane(str(info.get("name", "")))
                lane.kind = str(info.get("kind", ""))
                lane.model = str(info.get("model", ""))
        elif isinstance(event, LaneStarted):
            lane = self._lane(event.lane)
            lane.started_t, lane.skew = event.t, event.skew
        elif isinstance(event, RequestSent):
            lane = self._lane(event.lane)
            self._turn(lane, event.turn, event.t).request_t = event.t
            if not lane.ended:
                lane.status = "waiting"
        elif isinstance(event, FirstByte):
            lane = self._lane(event.lane)
            turn = self._turn(lane, event.turn, event.t)
            if turn.first_byte_t is None:
                turn.first_byte_t = event.t
        elif isinstance(event, Usage):
            lane = self._lane(event.lane)
            turn = self._turn(lane, event.turn, event.t)
            if event.output_tokens is not None:
                turn.usage_tokens = event.output_tokens  # assigned, never added
                turn.usage_source = event.source
            if event.input_tokens is not None:
                turn.input_tokens = event.input_tokens
            if event.server_tps is not None:
                turn.server_tps = event.server_tps
        elif isinstance(event, StreamEnded):
            lane = self._lane(event.lane)
            turn = self._turn(lane, event.turn, event.t)
            turn.ended, turn.finish_reason = True, event.finish_reason
        elif isinstance(event, CommandExtracted):
            lane = self._lane(event.lane)
            lane.last_command = event.command
            if not lane.ended:
                lane.status = "executing"
        elif isinstance(event, ExecFinished):
            self._lane(event.lane).last_exit = event.exit_code
        elif isinstance(event, Verdict):
            lane = self._lane(event.lane)
            lane.verdict = event.detail or ("pass" if event.passed else "fail")
            if event.passed and lane.completion_t is None:
                lane.completion_t = event.t
        elif isinstance(event, LaneFinished):
            lane = self._lane(event.lane)
            lane.status, lane.end_t, lane.reason = "finished", event.t, event.reason
        elif isinstance(event, LaneEliminated):
            lane = self._lane(event.lane)
            lane.status, lane.end_t = "eliminated", event.t
            lane.reason, lane.eliminated_by = event.reason, event.by
        elif isinstance(event, LaneError):
            lane = self._lane(event.lane)
            lane.status, lane.end_t, lane.reason = "error", event.t, event.reason
        elif isinstance(event, RaceFinished):
            self.finished, self.finished_t = True, event.t
            self.winner = event.winner
            if event.winner and event.winner in self.lanes:
                self.lanes[event.winner].status = "winner"

    def apply_all(self, events: Iterable[Event]) -> "Standings":
        for event in events:
            self.apply(event)
        return self

    # -- reading -------------------------------------------------------------------

    def projected_finish(self, lane: LaneState, now: float) -> float | None:
        """Long race: when a running lane will reach max_tokens at its current
        speed (race-clock seconds); None until it has a speed."""
        if lane.ended or not self.max_tokens or not lane.turns:
            return None
        stats = lane_stats(lane)
        if not stats.output_tps or stats.output_tps <= 0:
            return None
        remaining = max(self.max_tokens - lane.live_tokens, 0)
        last = stats.finish_t if stats.finish_t is not None else now
        return max(now, last + remaining / stats.output_tps)

    def ranked(self, now: float | None = None) -> list[LaneStats]:
        """Lanes in leaderboard order, each with its 1-based rank."""
        now = self.last_t if now is None else now
        stats = [lane_stats(lane) for lane in self.lanes.values()]
        by_name = {lane.name: lane for lane in self.lanes.values()}

        def key(s: LaneStats) -> tuple:
            lane = by_name[s.name]
            if self.kind == "thunderdome":
                if s.status == "winner":
                    return (0, s.completion_s or 0.0, lane.index)
                if s.completion_s is not None:
                    return (1, s.completion_s, lane.index)
                if not lane.ended:
                    return (2, 0.0, lane.index)
                if s.status == "eliminated":  # later elimination ranks higher
                    return (3, -(lane.end_t or 0.0), lane.index)
                if s.status == "finished":
                    return (3, -(lane.end_t or 0.0), lane.index)
                return (4, 0.0, lane.index)
            # long race: finished by finish time, running by projection, errors last
            if s.status in ("finished", "winner") and s.finish_t is not None:
                return (0, s.finish_t, lane.index)
            if not lane.ended:
                proj = self.projected_finish(lane, now)
                return (1, proj if proj is not None else math.inf, lane.index)
            return (2, -(s.tokens), lane.index)

        ordered = sorted(stats, key=key)
        return [dataclasses.replace(s, rank=i + 1) for i, s in enumerate(ordered)]

    def results(self) -> dict[str, Any]:
        """The ``--json`` contract of DESIGN.md."""
        return {
            "race": {
                "task": self.task,
                "kind": self.kind,
                "title": self.title,
                "win_rule": self.win_rule or None,
                "started_at": self.started_at,
                "isolation": self.isolation,
                "max_tokens": self.max_tokens,
                "duration_s": _r(self.finished_t),
            },
            "lanes": [s.to_dict() for s in self.ranked(self.finished_t)],
            "winner": self.winner,
        }


def compute_results(events: Iterable[Event]) -> dict[str, Any]:
    """Fold a whole race's events and return its results dict."""
    return Standings().apply_all(events).results()


def long_race_winner(standings: Standings) -> str | None:
    """First lane to finish cleanly (by finish time)."""
    done = [
        lane_stats(lane)
        for lane in standings.lanes.values()
        if lane.status in ("finished", "winner")
    ]
    done = [s for s in done if s.finish_t is not None]
    if not done:
        return None
    return min(done, key=lambda s: s.finish_t).name  # type: ignore[arg-type, return-value]
