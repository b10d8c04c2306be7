"""Metrics: a pure reducer over events (no I/O, no clock reads).

Invariant: every number Thunderdome reports is computed here from events, and
only from events, so a replayed race gives exactly the live race's figures.
``Standings.apply(event)`` folds one event in; ``Standings.ranked(now)`` and
``Standings.results()`` read the state out. Reads cost O(1) per lane however
long the race (running totals per lane, ITL percentiles sorted only when read:
see ``lane_state`` and ``lane_stats``), so every consumer reads the reducer itself,
as often as it shows. Reads fill those caches: read a ``Standings`` on the
thread that folds it. Definitions follow the metric table of DESIGN.md:

- times are measured from the turn's ``RequestSent``;
- TTFT: first non-empty delta of any channel (tool-call argument deltas
  count); TTFA: first answer delta;
- time to first tool call (TTFTC): the first ``ToolCallStarted`` (its name
  has arrived); time to action (TTA): the first ``ToolCallDone`` (its
  arguments are complete: the command can run);
- model time of a turn: its request to its ``StreamEnded`` (else its last
  delta); tool time: its ``ExecFinished`` durations, else (a turn that
  called tools) its last ``ToolCallDone`` to the next ``RequestSent``;
  an agent's non-streamed chat (``RequestRelayed`` with ``chat``) is model
  time for its whole reply, counted once where it overlaps a turn or another
  chat, and out of the tool time it falls in; requests: turns plus every
  ``RequestRelayed`` (probes: model lists, versions, token counts); TTFT,
  TTFTC, TTA and an agent's start-up come from its streamed turns only (a
  non-streamed reply is relayed whole, read by no parser: it has no TTFT);
- e2e: last delta (usage frames and end markers don't count);
- N: server-reported tokens when present (``usage`` / ``server``), else the
  count of deltas (``estimate``);
- output speed: (N - 1) / (e2e - TTFT);
- ITL: gaps between consecutive deltas of one turn; ITL max is the longest,
  and a *stall* is a gap beyond ``stall_threshold`` (max(1 s, 10 x the
  lane's median gap)); a lane silent that long right now is stalled;
- cost: input and output tokens x the backend's per-million price;
- TTFT split (turn 1): the queue / load / prefill seconds the server reported
  (``ServerTimings``), and the rest of the client's TTFT; a prompt served
  from the server's cache (``cached_tokens``) marks the lane a warm start.

Reads at a moment ``now`` (``ranked(now)``) are anchored at now, not at the
last token: the output speed of a streaming lane counts its silence so far,
and the projected finish is when the lane reaches its expected reply length
at that rate. The expected length: the median token count of the lanes that
already finished this race, else the task's ``expected_tokens``, else
``max_tokens``: the first of these the lane has not passed yet, capped by
``max_tokens``; ``Projection.basis`` says which.

A lane may run several turns (the Thunderdome agent loop). Lane figures:
TTFB/TTFT/TTFA come from turn 1 (TTFTC/TTA: the lane's first call, from
turn 1's request); model and tool time are summed over turns; e2e runs from turn 1's request to the last
delta of the last turn; N is summed over turns; output speed is
sum(N_i - 1) / sum(e2e_i - TTFT_i) over the turns that produced two or more
tokens; ITL gaps are pooled over turns (never across a turn boundary).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from thunderdome.core.events import (
    CommandExtracted,
    Event,
    ExecFinished,
    FighterSpawned,
    FirstByte,
    LaneEliminated,
    LaneFailed,
    LaneFinished,
    LaneStarted,
    LaneStopped,
    RaceFinished,
    RaceStarted,
    RequestRelayed,
    RequestSent,
    ServerTimings,
    StreamEnded,
    TokenDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
    Usage,
    Verdict,
    WinnerDecided,
)
from thunderdome.core.lane_state import _ENDED, LaneState  # re-exported: the metrics API
from thunderdome.core.lane_stats import (  # re-exported: the metrics API
    LaneStats,
    Projection,
    TurnState,
    TurnTotals,
    _r,
    lane_stats,
)
from thunderdome.core.specs import PRICE_KEYS
from thunderdome.core.turn_stats import percentile

SERVER_FIELDS = ("queue_s", "load_s", "prefill_s", "cached_tokens", "prompt_tokens")
"""The ``ServerTimings`` fields a turn keeps (``TurnState.server``)."""

_DELTAS = (TokenDelta, ToolCallDelta)
"""Output deltas: both count for TTFT, e2e, the delta count and ITL."""


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
        self.expected_tokens = 0
        self.time_scale = 1.0
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

    def apply(self, event: Event) -> None:
        self.events_seen += 1
        t = event.t
        if t > self.last_t:
            self.last_t = t
        if isinstance(event, _DELTAS):  # the hot path first: lookups inlined
            lane = self.lanes.get(event.lane) or self._lane(event.lane)
            turns = lane.turns
            turn = turns[-1] if turns and turns[-1].turn == event.turn else lane.turn(event.turn, t)
            last = turn.last_token_t
            if turn.first_token_t is None:
                turn.first_token_t = t
            elif last is not None:
                lane.gaps.arrived.append(t - last)
            turn.last_token_t = t
            turn.deltas += 1
            turn.chars += len(event.text)
            if type(event) is ToolCallDelta:  # tool arguments: output, not answer text
                if lane.status not in _ENDED:
                    lane.status = "streaming"
            elif event.channel == "answer":
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
            self.expected_tokens, self.time_scale = event.expected_tokens, event.time_scale
            for info in event.lanes:
                lane = self._lane(str(info.get("name", "")))
                lane.kind = str(info.get("kind", ""))
                lane.model = str(info.get("model", ""))
                lane.program = str(info["program"]) if info.get("program") else None
                lane.price = _price(info.get("price"))
                scale = info.get("time_scale")
                lane.time_scale = (
                    float(scale) if _finite(scale) else event.time_scale if lane.kind == "sim" else 1.0
                )
        elif isinstance(event, LaneStarted):
            lane = self._lane(event.lane)
            lane.started_t, lane.skew = event.t, event.skew
        elif isinstance(event, RequestSent):
            lane = self._lane(event.lane)
            if lane.turns and lane.turns[-1].turn != event.turn and lane.turns[-1].next_request_t is None:
                lane.turns[-1].next_request_t = event.t  # ends the previous turn's tool time
            lane.turn(event.turn, event.t).request_t = event.t
            if not lane.ended:
                lane.status = "waiting"
        elif isinstance(event, RequestRelayed):
            self._lane(event.lane).side_request(event.t, event.seconds, event.chat)
        elif isinstance(event, FirstByte):
            lane = self._lane(event.lane)
            turn = lane.turn(event.turn, event.t)
            if turn.first_byte_t is None:
                turn.first_byte_t = event.t
        elif isinstance(event, Usage):
            lane = self._lane(event.lane)
            turn = lane.turn(event.turn, event.t)
            if event.output_tokens is not None:
                turn.usage_tokens = event.output_tokens  # assigned, never added
                turn.usage_source = event.source
            if event.input_tokens is not None:
                turn.input_tokens = event.input_tokens
            if event.server_tps is not None:
                turn.server_tps = event.server_tps
        elif isinstance(event, ServerTimings):
            turn = self._lane(event.lane).turn(event.turn, event.t)
            turn.server.update(
                (name, value) for name in SERVER_FIELDS if (value := getattr(event, name)) is not None
            )
        elif isinstance(event, StreamEnded):
            lane = self._lane(event.lane)
            turn = lane.turn(event.turn, event.t)
            turn.ended, turn.finish_reason = True, event.finish_reason
            turn.ended_t = event.t
        elif isinstance(event, ToolCallStarted):
            turn = self._lane(event.lane).turn(event.turn, event.t)
            if turn.first_call_t is None:
                turn.first_call_t = event.t
        elif isinstance(event, ToolCallDone):
            turn = self._lane(event.lane).turn(event.turn, event.t)
            if turn.first_action_t is None:
                turn.first_action_t = event.t
            turn.last_action_t = event.t
        elif isinstance(event, CommandExtracted):
            lane = self._lane(event.lane)
            lane.last_command = event.command
            if not lane.ended:
                lane.status = "executing"
        elif isinstance(event, ExecFinished):
            lane = self._lane(event.lane)
            lane.last_exit = event.exit_code
            if any(turn.turn == event.turn for turn in lane.turns):  # never opens a turn
                turn = lane.turn(event.turn, event.t)
                turn.exec_s = (turn.exec_s or 0.0) + event.duration
        elif isinstance(event, FighterSpawned):
            self._lane(event.lane).pid = event.pid
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
        elif isinstance(event, LaneFailed):
            lane = self._lane(event.lane)
            lane.status, lane.end_t, lane.reason = "error", event.t, event.reason
        elif isinstance(event, LaneStopped):
            lane = self._lane(event.lane)
            lane.status, lane.end_t, lane.reason = "stopped", event.t, event.reason
        elif isinstance(event, WinnerDecided):
            self._crown(event.winner)
        elif isinstance(event, RaceFinished):
            self.finished, self.finished_t = True, event.t
            self._crown(event.winner)

    def _crown(self, winner: str | None) -> None:
        """``winner`` won: said the moment it was called (``WinnerDecided``),
        and again by ``RaceFinished`` (the only word in older recordings)."""
        self.winner = winner
        if winner and winner in self.lanes:
            self.lanes[winner].status = "winner"

    def apply_all(self, events: Iterable[Event]) -> "Standings":
        for event in events:
            self.apply(event)
        return self

    # -- reading -------------------------------------------------------------------

    def finished_length(self) -> int | None:
        """The median token count of the lanes that finished this race
        cleanly (a projection's first basis); None while none has."""
        counts = sorted(lane.tokens for lane in self.lanes.values() if lane.status in ("finished", "winner"))
        counts = [n for n in counts if n > 0]
        return None if not counts else round(percentile(counts, 50, presorted=True))  # type: ignore[arg-type]

    def projection(self, lane: LaneState, now: float) -> Projection | None:
        """When a running lane will reach its expected reply length at its
        rate at ``now`` (see the module docstring), or None (ended, no rate
        yet, no length known). The one projection formula: ``ranked(now)``
        puts it in each lane's ``projected_t`` / ``projection_basis``."""
        return self._projection(lane, now, lane.totals(), self.finished_length())

    def _projection(self, lane: LaneState, now: float, totals: TurnTotals, finished: int | None) -> Projection | None:
        if lane.ended or not lane.turns:
            return None
        tps = lane.rate_at(now, totals)
        if not tps or tps <= 0:
            return None
        cap = self.max_tokens
        bases = [(n if not cap else min(n, cap), basis) for n, basis in (
            (finished, "finished"), (self.expected_tokens, "task"), (cap, "max_tokens")) if n]
        if not bases:
            return None
        done = totals.live_tokens
        tokens, basis = next(((n, b) for n, b in bases if n > done), max(bases))
        last = totals.last_token_t if totals.last_token_t is not None else now
        return Projection(max(now, last) + max(tokens - done, 0) / tps, tokens, basis)

    def _rank_key(self, lane: LaneState, totals: TurnTotals, projected: float | None) -> tuple:
        """A lane's place in ``ranked``: smaller first; ``lane.index`` breaks ties."""
        if self.kind == "thunderdome":
            if lane.status == "winner":
                return (0, lane.completion_t or 0.0, lane.index)
            if lane.completion_t is not None:
                return (1, lane.completion_t, lane.index)
            if not lane.ended:
                return (2, 0.0, lane.index)
            if lane.status in ("eliminated", "stopped", "finished"):  # later end ranks higher
                return (3, -(lane.end_t or 0.0), lane.index)
            return (4, 0.0, lane.index)
        # long race: finished by finish time, running by projection, errors last
        if lane.status in ("finished", "winner") and totals.last_token_t is not None:
            return (0, totals.last_token_t, lane.index)
        if not lane.ended:
            return (1, projected if projected is not None else math.inf, lane.index)
        return (2, -(totals.tokens), lane.index)

    def ranked(self, now: float | None = None) -> list[LaneStats]:
        """Lanes in leaderboard order, each with its 1-based rank and its
        projected finish at ``now`` (default: the last event's time). O(1)
        per lane: call it as often as the figures are shown."""
        now = self.last_t if now is None else now
        finished = self.finished_length()
        rows = []
        for lane in self.lanes.values():
            totals = lane.totals()
            projection = self._projection(lane, now, totals, finished)
            key = self._rank_key(lane, totals, None if projection is None else projection.t)
            rows.append((key, lane, totals, projection))
        rows.sort(key=lambda row: row[0])  # keys are unique (lane.index)
        return [
            lane_stats(lane, totals, rank=i + 1, now=now, projection=projection)
            for i, (_, lane, totals, projection) in enumerate(rows)
        ]

    def results(self) -> dict[str, Any]:
        """The ``--json`` contract of DESIGN.md."""
        ranked = self.ranked(self.finished_t)
        lanes = [s.to_dict() for s in ranked]
        return {
            "race": {
                "task": self.task,
                "kind": self.kind,
                "title": self.title,
                "win_rule": self.win_rule or None,
                "started_at": self.started_at,
                "isolation": self.isolation,
                "max_tokens": self.max_tokens,
                "expected_tokens": self.expected_tokens or None,
                "time_scale": self.time_scale,
                "duration_s": _r(self.finished_t),
                "client_limited": client_limited(ranked),
            },
            "lanes": lanes,
            "winner": self.winner,
        }


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _price(value: Any) -> dict[str, float] | None:
    """A lane's ``price`` from a race_started lanes entry (recordings are
    untrusted: only the known keys with finite numbers are kept)."""
    if not isinstance(value, dict):
        return None
    price = {key: float(value[key]) for key in PRICE_KEYS if _finite(value.get(key))}
    return price or None


def client_limited(lanes: list[LaneStats]) -> bool:
    """Most lanes with output read several deltas at once: the machine, not
    the servers, set the ITL figures (``LaneStats.itl_limited``)."""
    read = [s for s in lanes if s.deltas_per_read is not None]
    return bool(read) and 2 * sum(s.itl_limited for s in read) > len(read)


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


__all__ = [
    "LaneState",
    "LaneStats",
    "Projection",
    "Standings",
    "TurnState",
    "compute_results",
    "lane_stats",
    "long_race_winner",
    "percentile",
]
