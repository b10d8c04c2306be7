"""What the reducer knows about one lane: ``LaneState`` (pure, no I/O).

Invariant: a ``LaneState`` is changed only by the reducer in
``thunderdome.core.metrics``, and a turn only through ``turn()`` (or the last
turn directly), so the totals of its closed turns (``TurnTotals``, folded
once per turn, in turn order) are the sums a fold over all turns would
give. Reads cost O(1) however long the race: the closed turns' totals plus
the live turn.

An agent lane's requests that are not turns (``RequestRelayed``: probes,
and chats that asked for no stream) are counted (``side_requests``); a
non-streamed chat's whole reply is model time, folded once when it is
relayed: only the part that no turn's model time and no earlier chat
already covers (``side_model_s``); a part after a turn's end lies in that
turn's tool gap and is taken out of its tool time (``TurnState.side_s``), a
part before the first turn out of the agent's start-up (``side_startup_s``):
start-up, model time and tool time never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thunderdome.core.turn_stats import STALL_MIN_S, Gaps, TurnState, TurnTotals, stall_threshold, uncovered

_ENDED = frozenset({"finished", "winner", "eliminated", "error", "stopped"})
"""Lane statuses after its end."""


@dataclass
class LaneState:
    """Everything the reducer knows about one lane."""

    name: str
    kind: str = ""
    model: str = ""
    program: str | None = None
    """The agent preset that ran the lane (``claude-code``, ...); None: the race's own loop."""
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
    side_requests: int = 0
    """Requests relayed that were no turn: probes and non-streamed chats."""
    side_model_s: float = 0.0
    """Non-streamed chats' model time that no turn covers (``side_request``)."""
    side_startup_s: float = 0.0
    """The part of ``side_model_s`` before the lane's first turn (out of its start-up)."""
    side_spans: list[tuple[float, float]] = field(default_factory=list, repr=False, compare=False)
    """The pieces ``side_model_s`` sums (race clock), so overlapping chats count once."""
    _numbered: dict[int, TurnState] = field(default_factory=dict, init=False, repr=False, compare=False)
    """``turns`` by their number (a turn is found in one step however many came before it)."""
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
        existing = self._numbered.get(number)
        if existing is not None:  # an earlier turn, still streaming or changed again
            self._closed, self._closed_n = TurnTotals(), 0
            return existing
        state = self._numbered[number] = TurnState(turn=number, request_t=t)
        turns.append(state)
        return state

    def side_request(self, end_t: float, seconds: float | None, chat: bool) -> None:
        """A request that was no turn, relayed whole at ``end_t`` after
        ``seconds`` upstream: counted; a chat's time is model time, each
        moment once. A turn still open at ``end_t`` covers up to it."""
        self.side_requests += 1
        if not chat or seconds is None or seconds <= 0:
            return
        live = self.turns[-1] if self.turns and not self.turns[-1].ended else None
        ends = {id(turn): end_t if turn is live else _end(turn) for turn in self.turns}
        spans = [*self.side_spans, *((turn.request_t, ends[id(turn)]) for turn in self.turns)]
        for lo, hi in uncovered(end_t - seconds, end_t, spans):
            self.side_spans.append((lo, hi))
            self.side_model_s += hi - lo
            before = [turn for turn in self.turns if ends[id(turn)] <= lo]
            if before:  # in the tool gap of the turn that ended last before it
                max(before, key=lambda turn: ends[id(turn)]).side_s += hi - lo
                self._closed, self._closed_n = TurnTotals(), 0
            else:  # before the first turn: in the agent's start-up
                self.side_startup_s += hi - lo

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


def _end(turn: TurnState) -> float:
    """Where a turn's model time ends (its request, if nothing came)."""
    end = turn.model_end_t()
    return turn.request_t if end is None else end
