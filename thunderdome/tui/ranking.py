"""The live ranking: ``Standings.ranked(now)``, taken at a bounded rate.

Invariant: a ``Ranking`` holds exactly what ``Standings.ranked(now)`` returned
when it was taken (order, ranks and figures), and its projected finishes use
``Standings.projected_finish``'s formula with the token counts of that same
moment, so the numbers shown together always agree with each other.

Why a rate: ``ranked()`` computes every lane's stats (ITL percentiles sort
all of a lane's gaps, twice per running lane), so its cost grows with the
race: ~5 ms at 16 lanes x 3000 tokens. The race screen asks every frame;
``LiveRanking`` re-takes it when a lane's state changed (any event but a
token), and otherwise at most every ``RANK_INTERVAL`` seconds, or less often
when taking it is slow (it never uses more than ``1 / COST_SHARE`` of the
time). Token counts and clocks are read live by the widgets meanwhile.

Nothing here imports textual.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from thunderdome.metrics import LaneStats, Standings

RANK_INTERVAL = 0.2
"""Seconds between re-rankings while only tokens arrive (5 Hz: a tok/s gauge
that moves 5 times a second reads as live; the order can only change by
projection between lane events)."""
COST_SHARE = 20
"""Re-rank at most every ``COST_SHARE`` x the last ranking's cost."""


@dataclass
class Ranking:
    """``Standings.ranked(t)`` and the live token counts at that moment."""

    ranked: list[LaneStats] = field(default_factory=list)
    stats: dict[str, LaneStats] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    t: float = 0.0

    def projected_finish(self, standings: Standings, name: str, now: float) -> float | None:
        """``Standings.projected_finish`` of lane ``name`` at ``now``, from this ranking's figures."""
        lane = standings.lanes.get(name)
        stats = self.stats.get(name)
        if lane is None or stats is None or lane.ended or not standings.max_tokens or not lane.turns:
            return None
        if not stats.output_tps or stats.output_tps <= 0:
            return None
        remaining = max(standings.max_tokens - self.tokens.get(name, lane.live_tokens), 0)
        last = stats.finish_t if stats.finish_t is not None else now
        return max(now, last + remaining / stats.output_tps)


class LiveRanking:
    """``get(now)``: the current ranking, re-taken only when it is due."""

    def __init__(self, standings: Standings, clock: Callable[[], float] = time.perf_counter) -> None:
        self.standings = standings
        self.clock = clock
        self.ranking: Ranking | None = None
        self.taken = 0
        """How many times ``ranked()`` ran (tests, benchmarks)."""
        self._wall = 0.0
        self._cost = 0.0
        self._lanes = -1

    def get(self, now: float, *, changed: bool = False) -> Ranking:
        """The ranking at ``now``; ``changed``: a lane's state changed (not
        just its token count), so it is taken again whatever the rate."""
        wall = self.clock()
        standings = self.standings
        due = (
            self.ranking is None
            or changed
            or len(standings.lanes) != self._lanes
            or wall - self._wall >= max(RANK_INTERVAL, COST_SHARE * self._cost)
            or now < self.ranking.t
        )
        if due:
            ranked = standings.ranked(now)
            self.ranking = Ranking(
                ranked=ranked,
                stats={s.name: s for s in ranked},
                tokens={name: lane.live_tokens for name, lane in standings.lanes.items()},
                t=now,
            )
            self.taken += 1
            self._lanes = len(standings.lanes)
            end = self.clock()
            self._wall, self._cost = end, end - wall
        assert self.ranking is not None
        return self.ranking
