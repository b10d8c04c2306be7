"""An agent lane's requests that are no turn (``RequestRelayed``) in its figures,
folded by the reducer from hand-made events: every one is a request; a
non-streamed chat's whole reply is model time, each moment counted once
(where it overlaps a turn or another chat), and out of the tool time of the
gap it falls in (or of the agent's start-up, before its first turn): start-up,
model time and tool time never overlap; a probe is a request and nothing else. The real path (a
scripted agent through its gateway, recorded and replayed) is
``test_agent_figures``."""

from __future__ import annotations

import pytest

from thunderdome.core.events import (
    Event,
    LaneStarted,
    RaceStarted,
    RequestRelayed,
    RequestSent,
    StreamEnded,
    TokenDelta,
    ToolCallDone,
    ToolCallStarted,
)
from thunderdome.core.metrics import Standings
from thunderdome.core.turn_stats import uncovered


def _turn(turn: int, sent: float, ended: float, *, calls: bool) -> list[Event]:
    events: list[Event] = [RequestSent(t=sent, lane="a", turn=turn), TokenDelta(t=sent + 0.1, lane="a", turn=turn, text="x")]
    if calls:
        events += [ToolCallStarted(t=sent + 0.1, lane="a", turn=turn, call_id="c", name="bash"),
                   ToolCallDone(t=ended, lane="a", turn=turn, call_id="c", name="bash", arguments="{}")]
    return [*events, StreamEnded(t=ended, lane="a", turn=turn, finish_reason="tool_calls" if calls else "stop")]


def _chat(end: float, seconds: float | None, *, chat: bool = True) -> RequestRelayed:
    return RequestRelayed(t=end, lane="a", method="POST", path="/v1/chat/completions", status=200, chat=chat,
                          seconds=seconds)


def _figures(events: list[Event]):
    race = RaceStarted(t=0.0, task="t", kind="thunderdome", lanes=({"name": "a", "kind": "sim", "program": "command"},))
    standings = Standings().apply_all([race, LaneStarted(t=0.0, lane="a"), *events])
    (stats,) = standings.ranked()
    return stats


def test_a_chat_in_a_tool_gap_is_model_time_not_tool_time() -> None:
    plain = [*_turn(1, 1.0, 2.0, calls=True), *_turn(2, 5.0, 6.0, calls=False)]
    base = _figures(plain)
    # the chat's [2.5, 3.5] lies inside turn 1's tool gap [2, 5]
    side = _figures([*_turn(1, 1.0, 2.0, calls=True), _chat(3.5, 1.0), *_turn(2, 5.0, 6.0, calls=False)])
    assert (base.model_s, base.tool_s, base.requests) == pytest.approx((2.0, 3.0, 2))
    assert (side.model_s, side.tool_s, side.requests, side.turns) == pytest.approx((3.0, 2.0, 3, 2))
    assert side.ttft_s == base.ttft_s and side.tta_s == base.tta_s  # first figures come from streamed turns


def test_overlapping_time_counts_once() -> None:
    events = [*_turn(1, 1.0, 3.0, calls=True),
              _chat(3.5, 1.0),  # [2.5, 3.5]: half under turn 1's model time
              _chat(4.0, 1.0),  # [3.0, 4.0]: half under the first chat
              *_turn(2, 6.0, 7.0, calls=False)]
    stats = _figures(events)
    assert stats.model_s == pytest.approx(2.0 + 1.0 + 1.0)  # the turns, then 3.0..4.0 once
    assert stats.tool_s == pytest.approx(3.0 - 1.0)  # turn 1's gap [3, 6] less the chat time in it [3, 4]


def test_a_chat_while_a_turn_streams_adds_only_what_the_turn_does_not_cover() -> None:
    opened = [RequestSent(t=1.0, lane="a", turn=1), TokenDelta(t=1.2, lane="a", turn=1, text="x")]
    stats = _figures([*opened, _chat(2.0, 1.5), StreamEnded(t=4.0, lane="a", turn=1, finish_reason="stop")])
    assert stats.model_s == pytest.approx(3.0 + 0.5)  # the chat's [0.5, 1.0] came before the turn's request


def test_probes_and_unreached_requests_are_requests_and_no_time() -> None:
    events = [_chat(0.5, 0.2, chat=False), _chat(0.7, None), *_turn(1, 1.0, 2.0, calls=False)]
    stats = _figures(events)
    assert (stats.requests, stats.turns, stats.model_s) == pytest.approx((3, 1, 1.0))
    assert stats.to_dict()["requests"] == 3
    only = _figures([_chat(0.5, 0.25)])  # a lane that only ever chatted without streaming
    assert (only.turns, only.requests, only.model_s, only.tool_s) == (0, 1, 0.25, None)


def test_uncovered_pieces() -> None:
    assert uncovered(0.0, 10.0, []) == [(0.0, 10.0)]
    assert uncovered(0.0, 10.0, [(2.0, 3.0), (1.0, 2.5), (8.0, 12.0)]) == [(0.0, 1.0), (3.0, 8.0)]
    assert uncovered(2.0, 3.0, [(0.0, 5.0)]) == []


def test_a_chat_before_the_first_turn_is_model_time_out_of_the_start_up() -> None:
    turns = [*_turn(1, 2.0, 3.0, calls=True), *_turn(2, 4.0, 5.0, calls=False)]
    base, side = _figures(turns), _figures([_chat(0.5, 0.2, chat=False), _chat(1.5, 1.0), *turns])
    assert (base.startup_s, base.model_s) == pytest.approx((2.0, 2.0))
    assert (side.startup_s, side.model_s, side.tool_s, side.requests) == pytest.approx((1.0, 3.0, 1.0, 4))
    assert side.startup_s + side.model_s + side.tool_s == pytest.approx(5.0)  # the lane's whole time, once
