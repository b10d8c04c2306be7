"""Metric functions on hand-made event lists, including the known traps."""

from __future__ import annotations

import pytest

from thunderdome.core.events import (
    FirstByte,
    LaneFailed,
    LaneFinished,
    LaneEliminated,
    LaneStarted,
    RaceFinished,
    RaceStarted,
    RequestSent,
    StreamEnded,
    TokenDelta,
    Usage,
    Verdict,
)
from thunderdome.core.metrics import Standings, compute_results, lane_stats, percentile


def lane_events(lane="a", start=0.0, ttft=1.0, gaps=(0.1, 0.1, 0.1), reasoning=0, usage=None, finish="stop"):
    """Request at ``start``; first delta at start+ttft; deltas spaced by gaps."""
    events = [RequestSent(t=start, lane=lane), FirstByte(t=start + ttft / 2, lane=lane)]
    t = start + ttft
    times = [t]
    for g in gaps:
        t += g
        times.append(t)
    for i, ti in enumerate(times):
        channel = "reasoning" if i < reasoning else "answer"
        events.append(TokenDelta(t=ti, lane=lane, text=f"w{i} ", channel=channel))
    end = times[-1] + 0.05
    if usage is not None:
        events.append(Usage(t=end, lane=lane, output_tokens=usage, source="usage"))
    events.append(StreamEnded(t=end + 0.01, lane=lane, finish_reason=finish))
    events.append(LaneFinished(t=end + 0.02, lane=lane))
    return events


def stats_of(events, lane="a"):
    st = Standings().apply_all(events)
    return lane_stats(st.lanes[lane])


def test_basic_long_race_metrics():
    s = stats_of(lane_events(ttft=1.0, gaps=(0.1,) * 9, usage=None))
    assert s.ttft_s == pytest.approx(1.0)
    assert s.ttfa_s == pytest.approx(1.0)
    assert s.ttfb_s == pytest.approx(0.5)
    assert s.e2e_s == pytest.approx(1.9)
    assert s.tokens == 10 and s.tokens_source == "estimate"
    assert s.output_tps == pytest.approx(9 / 0.9)
    assert s.itl_p50_ms == pytest.approx(100.0)


def test_role_only_and_empty_chunks_never_become_first_token():
    # The clients never emit empty deltas; a role-only chunk gives only FirstByte.
    events = [
        RequestSent(t=0.0, lane="a"),
        FirstByte(t=0.2, lane="a"),  # role-only chunk arrives here
        TokenDelta(t=0.7, lane="a", text="hi"),
        StreamEnded(t=0.8, lane="a", finish_reason="stop"),
    ]
    s = stats_of(events)
    assert s.ttfb_s == pytest.approx(0.2)
    assert s.ttft_s == pytest.approx(0.7)


def test_reasoning_counts_for_ttft_not_ttfa():
    s = stats_of(lane_events(ttft=0.5, gaps=(0.1,) * 5, reasoning=3))
    assert s.ttft_s == pytest.approx(0.5)
    assert s.ttfa_s == pytest.approx(0.8)
    assert s.tokens == 6


def test_usage_frame_and_done_do_not_end_e2e():
    events = lane_events(ttft=1.0, gaps=(0.5,), usage=2)
    # usage arrives at 1.55 and the end marker at 1.56: e2e is the last delta
    s = stats_of(events)
    assert s.e2e_s == pytest.approx(1.5)
    assert s.tokens == 2 and s.tokens_source == "usage"


def test_cumulative_anthropic_usage_is_assigned_not_added():
    events = [
        RequestSent(t=0.0, lane="a"),
        Usage(t=0.1, lane="a", output_tokens=1, source="usage"),  # message_start
        TokenDelta(t=0.3, lane="a", text="Hello"),
        TokenDelta(t=0.4, lane="a", text=" world"),
        Usage(t=0.5, lane="a", output_tokens=7, source="usage"),  # message_delta (cumulative)
        Usage(t=0.6, lane="a", output_tokens=9, source="usage"),
        StreamEnded(t=0.7, lane="a", finish_reason="end_turn"),
    ]
    s = stats_of(events)
    assert s.tokens == 9
    assert s.output_tps == pytest.approx(8 / 0.1)


def test_chunk_with_several_tokens_uses_server_count():
    events = [
        RequestSent(t=0.0, lane="a"),
        TokenDelta(t=1.0, lane="a", text="one two three"),
        TokenDelta(t=2.0, lane="a", text=" four five"),
        Usage(t=2.1, lane="a", output_tokens=5, source="usage"),
        StreamEnded(t=2.2, lane="a", finish_reason="stop"),
    ]
    s = stats_of(events)
    assert s.tokens == 5
    assert s.output_tps == pytest.approx(4 / 1.0)
    assert s.itl_p50_ms == pytest.approx(1000.0)


def test_server_reported_speed_shown_beside_client():
    events = lane_events(gaps=(0.1,) * 3)
    events.insert(-2, Usage(t=1.36, lane="a", output_tokens=4, source="server", server_tps=33.3))
    s = stats_of(events)
    assert s.server_tps == pytest.approx(33.3)
    assert s.tokens_source == "server"


def test_single_token_has_no_speed():
    s = stats_of(lane_events(gaps=()))
    assert s.tokens == 1
    assert s.output_tps is None
    assert s.itl_p50_ms is None


def test_percentiles_linear():
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile(list(range(101)), 99) == pytest.approx(99)


def test_itl_p99_sees_a_stall():
    gaps = (0.01,) * 97 + (2.0, 2.0)
    s = stats_of(lane_events(gaps=gaps))
    assert s.itl_p50_ms == pytest.approx(10.0)
    assert s.itl_p99_ms == pytest.approx(2000.0)


def test_multi_turn_lane_figures():
    events = [
        RequestSent(t=0.0, lane="a", turn=1),
        TokenDelta(t=1.0, lane="a", text="x", turn=1),
        TokenDelta(t=1.5, lane="a", text="y", turn=1),
        StreamEnded(t=1.6, lane="a", turn=1, finish_reason="stop"),
        Verdict(t=2.0, lane="a", turn=1, passed=False, detail="check failed"),
        RequestSent(t=2.1, lane="a", turn=2),
        TokenDelta(t=2.6, lane="a", text="z", turn=2),
        TokenDelta(t=3.1, lane="a", text="w", turn=2),
        StreamEnded(t=3.2, lane="a", turn=2, finish_reason="stop"),
        Verdict(t=3.5, lane="a", turn=2, passed=True, detail="pass"),
    ]
    s = stats_of(events)
    assert s.turns == 2
    assert s.ttft_s == pytest.approx(1.0)  # from turn 1
    assert s.e2e_s == pytest.approx(3.1)  # last delta of the last turn, from turn 1's request
    assert s.tokens == 4
    assert s.output_tps == pytest.approx(2 / 1.0)  # (1 + 1) tokens over (0.5 + 0.5) s
    assert s.itl_p50_ms == pytest.approx(500.0)  # no gap across the turn boundary
    assert s.completion_s == pytest.approx(3.5)


def race(kind="long", lanes=("a", "b", "c")):
    return RaceStarted(
        t=0.0,
        task="t",
        kind=kind,
        lanes=tuple({"name": n, "kind": "sim", "model": n} for n in lanes),
        max_tokens=100,
    )


def test_long_race_ranking_finished_then_projection_then_errors():
    events = [race()]
    events += [LaneStarted(t=0.0, lane=n) for n in "abc"]
    events += lane_events("a", ttft=0.5, gaps=(0.1,) * 9)[:-1]  # a still running
    events += lane_events("b", ttft=0.2, gaps=(0.01,) * 9)  # b finished at 0.29
    events += [RequestSent(t=0.0, lane="c"), LaneFailed(t=0.3, lane="c", reason="HTTP 500")]
    st = Standings().apply_all(events)
    order = [s.name for s in st.ranked(now=1.5)]
    assert order == ["b", "a", "c"]
    ranked = st.ranked(now=1.5)
    assert [s.rank for s in ranked] == [1, 2, 3]
    assert ranked[2].error == "HTTP 500"
    proj = st.projection(st.lanes["a"], 1.5)
    # a's stream ended (not streaming: its rate is 10 tok/s); b finished with
    # 10 tokens, which a has reached, so the cap (100) is left: 90 to go at
    # 10 tok/s from now (1.5), not from its last token (1.4)
    assert (proj.t, proj.tokens, proj.basis) == (pytest.approx(1.5 + 9.0), 100, "max_tokens")
    assert ranked[1].projected_t == proj.t and ranked[1].projection_basis == "max_tokens"


def test_thunderdome_ranking_winner_alive_then_eliminated():
    events = [race(kind="thunderdome")]
    events += [RequestSent(t=0.0, lane=n) for n in "abc"]
    events += [
        Verdict(t=1.04, lane="a", passed=True, detail="last standing"),
        LaneEliminated(t=1.03, lane="b", reason="killed by a", by="a"),
        LaneEliminated(t=1.02, lane="c", reason="killed by a", by="a"),
        LaneFinished(t=1.05, lane="a"),
        RaceFinished(t=1.06, winner="a"),
    ]
    results = compute_results(events)
    names = [lane["name"] for lane in results["lanes"]]
    assert names == ["a", "b", "c"]  # b survived longer than c
    first = results["lanes"][0]
    assert first["status"] == "winner" and first["completion_s"] == pytest.approx(1.04)
    assert results["lanes"][1]["eliminated_by"] == "a"
    assert results["winner"] == "a"


def test_results_json_contract_fields():
    events = [race(lanes=("a",))] + lane_events("a") + [RaceFinished(t=2.0, winner="a")]
    results = compute_results(events)
    assert set(results) == {"race", "lanes", "winner"}
    assert {"task", "kind", "started_at", "isolation"} <= set(results["race"])
    lane = results["lanes"][0]
    for key in (
        "name", "kind", "model", "status", "rank", "ttft_s", "ttfa_s", "e2e_s", "tokens",
        "tokens_source", "output_tps", "itl_p50_ms", "itl_p99_ms", "server_tps",
        "completion_s", "verdict", "error",
    ):
        assert key in lane
    assert lane["status"] == "winner"


def test_standings_status_follows_events():
    st = Standings()
    st.apply(race(lanes=("a",)))
    st.apply(RequestSent(t=0.0, lane="a"))
    assert st.lanes["a"].status == "waiting"
    st.apply(TokenDelta(t=0.1, lane="a", text="hm", channel="reasoning"))
    assert st.lanes["a"].status == "thinking"
    st.apply(TokenDelta(t=0.2, lane="a", text="ok"))
    assert st.lanes["a"].status == "streaming"
    st.apply(LaneFailed(t=0.3, lane="a", reason="connection dropped after 1 tokens"))
    assert st.lanes["a"].status == "error"
    st.apply(TokenDelta(t=0.4, lane="a", text="late"))
    assert st.lanes["a"].status == "error"  # an ended lane stays ended
