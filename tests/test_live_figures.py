"""Live figures that never mislead: projections, stalls, cost, time scale.

The projection test replays the demo's long race (the three public sim
profiles on ``long-essay``) through the reducer, its token times taken from
the profiles' own schedules (what the emulator paces by), so it is exact and
fast; the other tests feed the reducer hand-made and random lanes, and one
real race checks that ``--time-scale`` reaches the results.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thunderdome.config import demo_backends
from thunderdome.core.events import (
    Event,
    LaneFinished,
    LaneStarted,
    RaceFinished,
    RaceStarted,
    RequestSent,
    StreamEnded,
    TokenDelta,
    Usage,
    event_from_dict,
)
from thunderdome.core.turn_stats import STALL_FACTOR, STALL_MIN_S, stall_threshold
from thunderdome.core.metrics import Standings, compute_results
from thunderdome.race.tasks import load_task
from thunderdome.sim.profiles import PROFILES

# -- the demo's long race, from the profiles' schedules -----------------------------------


def demo_long_race() -> tuple[list[Event], dict[str, float]]:
    """The demo's ``long-essay`` race as the emulator paces it at time scale 1,
    and each lane's real finish (its last token)."""
    task = load_task("long-essay")
    specs = demo_backends()
    events: list[Event] = [RaceStarted(
        t=0.0, task=task.name, kind=task.kind, lanes=tuple(spec.public_dict() for spec in specs),
        max_tokens=task.max_tokens, expected_tokens=task.expected_tokens,
    )]
    timed: list[Event] = []
    finish: dict[str, float] = {}
    for spec in specs:
        profile = PROFILES[spec.profile or ""]
        n = min(profile.reply_tokens, task.max_tokens)
        due = profile.schedule(seed=0).due
        timed += [LaneStarted(t=0.0, lane=spec.name), RequestSent(t=0.0, lane=spec.name)]
        timed += [TokenDelta(t=due(i), lane=spec.name, text=" w") for i in range(n)]
        end = finish[spec.name] = due(n - 1)
        timed += [Usage(t=end, lane=spec.name, output_tokens=n, input_tokens=60),
                  StreamEnded(t=end, lane=spec.name, finish_reason="stop"), LaneFinished(t=end, lane=spec.name)]
    timed.sort(key=lambda e: e.t)  # stable: each lane's own order holds
    return events + timed + [RaceFinished(t=max(finish.values()), winner="cloud")], finish


def standings_at(events: list[Event], now: float) -> Standings:
    return Standings().apply_all(e for e in events if e.t <= now)


def test_demo_projections_at_half_race_are_within_ten_percent_of_the_real_finish():
    events, finish = demo_long_race()
    assert finish["rtx4090-offload"] == pytest.approx(93.89, abs=0.05)  # the public race, as the demo runs it
    halves = {f"half of {name}": t / 2 for name, t in finish.items()} | {"half of the race": max(finish.values()) / 2}
    checked = {}
    for moment, now in halves.items():
        for s in standings_at(events, now).ranked(now):
            if s.status != "streaming" or (moment != "half of the race" and moment != f"half of {s.name}"):
                continue
            assert s.projected_t is not None, (moment, s.name)
            checked[(moment, s.name)] = (s.projected_t / finish[s.name] - 1, s.projection_basis)
    # every lane at half its own race, the 4090 (the only one left) at half the race
    assert {lane for _, lane in checked} == set(finish)
    for key, (error, _) in checked.items():
        assert abs(error) < 0.10, (key, f"{error:+.1%}")
    # the basis moves on as lanes finish: the task's length first, then what finished lanes wrote
    assert checked[("half of cloud", "cloud")][1] == "task"
    assert checked[("half of the race", "rtx4090-offload")][1] == "finished"


def test_demo_projection_to_max_tokens_would_miss_by_far_more():
    """What the old projection (to max_tokens) said at half the race: the goal
    above is not met by any projection."""
    events, finish = demo_long_race()
    now = finish["rtx4090-offload"] / 2
    standings = standings_at(events, now)
    standings.lanes["cloud"].status = standings.lanes["dgx-spark"].status = "error"  # no finished lane to go by
    standings.expected_tokens = 0  # and no task length
    s = next(s for s in standings.ranked(now) if s.name == "rtx4090-offload")
    assert s.projection_basis == "max_tokens" and s.projected_tokens == 1024
    assert s.projected_t / finish["rtx4090-offload"] - 1 > 0.2


def test_projection_basis_falls_through_to_the_next_length_once_a_lane_passes_it():
    events: list[Event] = [RaceStarted(t=0.0, lanes=({"name": "done", "kind": "sim"}, {"name": "long", "kind": "sim"}),
                                       max_tokens=50, expected_tokens=20)]
    events += [RequestSent(t=0.0, lane=n) for n in ("done", "long")]
    events += [TokenDelta(t=0.01 * (i + 1), lane="done", text="w") for i in range(10)]
    events += [StreamEnded(t=0.1, lane="done", finish_reason="stop"), LaneFinished(t=0.1, lane="done")]
    events += [TokenDelta(t=0.1 * (i + 1), lane="long", text="w") for i in range(40)]  # 10 tok/s
    events.sort(key=lambda e: e.t)
    seen = {}
    for n in (5, 15, 30):
        now = 0.1 * n + 0.05
        p = standings_at(events, now).projection(standings_at(events, now).lanes["long"], now)
        seen[n] = (p.basis, p.tokens, p.t)
    assert seen[5][:2] == ("finished", 10)  # the finished lane wrote 10
    assert seen[15][:2] == ("task", 20)  # past that: the task's expected length
    assert seen[30][:2] == ("max_tokens", 50)  # past that too: the cap
    rate = 4 / (0.5 + 0.05 - 0.1)  # 5 tokens, first at 0.1, read at 0.55
    assert seen[5][2] == pytest.approx(0.55 + (10 - 5) / rate)


# -- stalls ---------------------------------------------------------------------------------


def steady_lane(name: str, tps: float, n: int, *, start: float = 0.0, ttft: float = 0.5) -> list[Event]:
    """A lane's request and ``n`` deltas at ``tps``, still streaming."""
    return [RequestSent(t=start, lane=name)] + [
        TokenDelta(t=start + ttft + i / tps, lane=name, text=" w") for i in range(n)
    ]


def long_race(*lanes: str) -> RaceStarted:
    return RaceStarted(t=0.0, lanes=tuple({"name": n, "kind": "openai", "model": "m"} for n in lanes), max_tokens=1000)


def test_a_lane_that_stops_slows_down_is_marked_stalled_and_loses_its_place():
    events = [long_race("fast", "steady")]
    events += steady_lane("fast", 120.0, 300)  # last token at 0.5 + 299/120 = 2.99 s, then silence
    events += steady_lane("steady", 60.0, 500)  # keeps going to 8.8 s
    events.sort(key=lambda e: e.t)
    last = 0.5 + 299 / 120
    before = Standings().apply_all(e for e in events if e.t <= last)
    s = {s.name: s for s in before.ranked(last)}
    assert s["fast"].output_tps == pytest.approx(120.0) and s["fast"].stalled_s is None
    assert [x.name for x in before.ranked(last)] == ["fast", "steady"]
    now = last + 5.0
    later = Standings().apply_all(e for e in events if e.t <= now)
    ranked = later.ranked(now)
    s = {s.name: s for s in ranked}
    assert s["fast"].output_tps == pytest.approx(299 / (now - 0.5))  # tokens so far over (now - TTFT)
    assert s["fast"].stalled_s == pytest.approx(5.0)
    assert s["steady"].stalled_s is None
    assert [x.name for x in ranked] == ["steady", "fast"]
    assert s["fast"].status == "streaming"  # the state is unchanged: the stall is a reading at now


def test_results_report_the_longest_gap_and_the_stall_count():
    events = [long_race("a")]
    gaps = [0.01] * 100 + [5.0] + [0.01] * 100 + [2.0] + [0.01] * 50 + [0.5]
    t = 0.3
    events += [RequestSent(t=0.0, lane="a"), TokenDelta(t=t, lane="a", text="w")]
    for gap in gaps:
        t += gap
        events.append(TokenDelta(t=t, lane="a", text="w"))
    events += [StreamEnded(t=t, lane="a", finish_reason="stop"), LaneFinished(t=t, lane="a"),
               RaceFinished(t=t, winner="a")]
    lane = json.loads(json.dumps(compute_results(events)))["lanes"][0]
    assert lane["itl_max_ms"] == pytest.approx(5000.0)
    assert lane["stalls"] == 2  # 5 s and 2 s; 0.5 s is under the 1 s floor
    assert lane["itl_p99_ms"] < 1000.0  # what the percentiles alone would have hidden


@settings(max_examples=60, deadline=None)
@given(
    pace=st.lists(st.floats(0.001, 0.3), min_size=3, max_size=60),
    silence=st.floats(0.0, 20.0),
)
def test_stall_flag_follows_its_definition_and_the_rate_only_drops_during_silence(pace, silence):
    events: list[Event] = [long_race("a"), RequestSent(t=0.0, lane="a")]
    t = 0.2
    events.append(TokenDelta(t=t, lane="a", text="w"))
    for gap in pace:
        t += gap
        events.append(TokenDelta(t=t, lane="a", text="w"))
    standings = Standings().apply_all(events)
    at_last = standings.ranked(t)[0]
    measured = len(pace) / (t - 0.2)
    assert at_last.output_tps == pytest.approx(measured)  # at the last token: the output speed itself
    s = standings.ranked(t + silence)[0]
    ordered = sorted(pace)
    median = (ordered[(len(pace) - 1) // 2] + ordered[len(pace) // 2]) / 2
    threshold = max(STALL_MIN_S, STALL_FACTOR * median)
    assert stall_threshold(median) == threshold
    if abs(silence - threshold) > 1e-9:  # clear of the boundary's rounding
        assert (s.stalled_s is not None) == (silence > threshold)
    if s.stalled_s is not None:
        assert s.stalled_s == pytest.approx(silence)
    assert s.output_tps == pytest.approx(len(pace) / (t + silence - 0.2))
    assert s.output_tps <= at_last.output_tps * (1 + 1e-12)
    if silence > 0:
        assert s.projected_t >= at_last.projected_t  # a silent lane's finish only moves out


@settings(max_examples=60, deadline=None)
@given(short=st.integers(20, 80), stalls=st.lists(st.floats(1.01, 30.0), max_size=8))
def test_stall_count_is_the_number_of_long_silences(short, stalls):
    events: list[Event] = [long_race("a"), RequestSent(t=0.0, lane="a")]
    t = 0.1
    events.append(TokenDelta(t=t, lane="a", text="w"))
    gaps = [0.05] * short + list(stalls)  # 10 x 0.05 s = 0.5 s: every stall here is past the 1 s floor
    for gap in gaps:
        t += gap
        events.append(TokenDelta(t=t, lane="a", text="w"))
    s = Standings().apply_all(events).ranked(t)[0]
    assert s.stalls == len(stalls)
    assert s.itl_max_ms == pytest.approx(max(gaps) * 1000.0)


# -- cost -------------------------------------------------------------------------------------


def priced_race(price: dict[str, float] | None, *, input_tokens: int | None = 1200, turns: int = 1) -> list[Event]:
    info = {"name": "a", "kind": "openai", "model": "m"} | ({"price": price} if price is not None else {})
    events: list[Event] = [RaceStarted(t=0.0, lanes=(info,), max_tokens=1000)]
    for turn in range(1, turns + 1):
        events += [RequestSent(t=turn, lane="a", turn=turn)]
        events += [TokenDelta(t=turn + 0.1 * (i + 1), lane="a", text="w" * 20, turn=turn) for i in range(5)]
        events += [Usage(t=turn + 0.6, lane="a", turn=turn, output_tokens=400, input_tokens=input_tokens)]
    return events + [LaneFinished(t=turns + 1, lane="a"), RaceFinished(t=turns + 1, winner="a")]


def test_cost_is_input_and_output_tokens_times_the_price_over_turns():
    lane = compute_results(priced_race({"input_per_mtok": 0.10, "output_per_mtok": 0.50}, turns=2))["lanes"][0]
    assert (lane["input_tokens"], lane["tokens"]) == (2400, 800)
    assert lane["cost"] == pytest.approx((2400 * 0.10 + 800 * 0.50) / 1e6)
    assert (lane["price_input_per_mtok"], lane["price_output_per_mtok"]) == (0.10, 0.50)


def test_cost_is_unknown_rather_than_understated():
    assert compute_results(priced_race(None))["lanes"][0]["cost"] is None  # no price
    no_input = compute_results(priced_race({"input_per_mtok": 1.0, "output_per_mtok": 2.0}, input_tokens=None))
    assert no_input["lanes"][0]["cost"] is None  # input priced, count unknown
    output_only = compute_results(priced_race({"output_per_mtok": 2.0}, input_tokens=None))
    assert output_only["lanes"][0]["cost"] == pytest.approx(400 * 2.0 / 1e6)


def test_a_recorded_price_is_read_defensively():
    events = priced_race({"input_per_mtok": "free", "output_per_mtok": 3.0, "tip": 9.0})
    lane = compute_results([event_from_dict(json.loads(json.dumps(e.to_dict()))) for e in events])["lanes"][0]
    assert (lane["price_input_per_mtok"], lane["price_output_per_mtok"]) == (None, 3.0)
    assert lane["cost"] == pytest.approx(400 * 3.0 / 1e6)


# -- time scale -------------------------------------------------------------------------------


def test_time_scale_round_trips_events_to_results_to_json():
    lanes = (
        {"name": "sim-fast", "kind": "sim", "model": "cloud"},
        {"name": "sim-own", "kind": "sim", "model": "cloud", "time_scale": 0.5},
        {"name": "real", "kind": "openai", "model": "m"},
    )
    started = RaceStarted(t=0.0, lanes=lanes, max_tokens=10, time_scale=0.1)
    loaded = event_from_dict(json.loads(json.dumps(started.to_dict())))
    assert loaded == started
    results = json.loads(json.dumps(compute_results([loaded, RaceFinished(t=1.0)])))
    assert results["race"]["time_scale"] == 0.1
    assert {lane["name"]: lane["time_scale"] for lane in results["lanes"]} == {
        "sim-fast": 0.1, "sim-own": 0.5, "real": 1.0,
    }


def test_recordings_without_the_new_fields_still_load_as_real_time():
    old = {"type": "race_started", "t": 0.0, "task": "x", "lanes": [{"name": "a", "kind": "sim"}], "max_tokens": 9}
    results = compute_results([event_from_dict(old)])
    assert results["race"]["time_scale"] == 1.0 and results["race"]["expected_tokens"] is None
    assert results["lanes"][0]["time_scale"] == 1.0 and results["lanes"][0]["cost"] is None


def test_a_real_race_reports_its_time_scale_and_the_tasks_expected_length():
    from thunderdome.race.runner import run_race

    task = load_task("long-essay")
    standings = asyncio.run(run_race(task, demo_backends()[:2], emulator="thread", time_scale=0.02, max_tokens=200))
    results = standings.results()
    assert results["race"]["time_scale"] == 0.02
    assert results["race"]["expected_tokens"] == 200  # the task's 878, capped by --max-tokens
    assert {lane["time_scale"] for lane in results["lanes"]} == {0.02}
    assert all(lane["stalls"] == 0 and lane["itl_max_ms"] is not None for lane in results["lanes"])


# -- what the consumers show (the smallest edits: a column, a mark) -----------------------


def stalled_race() -> tuple[Standings, float]:
    events: list[Event] = [RaceStarted(
        t=0.0, lanes=({"name": "paid", "kind": "openai", "model": "m", "price": {"output_per_mtok": 2.0}},
                      {"name": "free", "kind": "sim", "model": "cloud"}),
        max_tokens=1000, time_scale=0.1)]
    events += steady_lane("paid", 120.0, 300) + steady_lane("free", 60.0, 100)
    events.sort(key=lambda e: e.t)
    return Standings().apply_all(events), 0.5 + 299 / 120 + 4.2


def test_headless_table_and_lane_header_say_stalled_and_the_banner_marks_the_time_scale():
    from rich.console import Console

    from thunderdome.output.report import standings_table
    from thunderdome.tui.widgets.banner import race_status
    from thunderdome.tui.widgets.lane import LaneSnapshot, header_rows

    standings, now = stalled_race()
    console = Console(width=200, record=True)
    console.print(standings_table(standings, now, width=200))
    table = console.export_text()
    assert "stalled 4.2 s" in table and "sim time ×0.1" in table
    stats = {s.name: s for s in standings.ranked(now)}
    header = header_rows(LaneSnapshot(state=standings.lanes["paid"], stats=stats["paid"], now=now, cap=1000,
                                      color="#ffffff"), 80)[0].plain
    assert "STALLED 4.2 s" in header and "STREAMING" not in header
    status = race_status(standings, started=True, finished=None, failed=None).plain
    assert "sim time ×0.1" in status


def test_leaderboard_shows_cost_only_when_prices_are_given():
    from thunderdome.tui.widgets.leaderboard import leaderboard_rows

    standings, now = stalled_race()
    colors = {name: "#ffffff" for name in standings.lanes}
    rows = [row.plain for row in leaderboard_rows(standings, now, colors, 90)]
    assert rows[0].split()[-2] == "$"
    paid = next(row for row in rows if " paid " in row)
    assert f"{300 * 2.0 / 1e6:.4f}" in paid
    standings.lanes["paid"].price = None
    assert "$" not in leaderboard_rows(standings, now, colors, 90)[0].plain


def test_exports_and_the_recording_header_carry_the_new_figures():
    import csv
    import io

    from thunderdome.output.export import export_results
    from thunderdome.recording.record import header_for

    events = priced_race({"input_per_mtok": 0.10, "output_per_mtok": 0.50})
    events[0] = RaceStarted(t=0.0, lanes=events[0].lanes, max_tokens=1000, time_scale=0.05)  # type: ignore[attr-defined]
    results = compute_results(events)
    row = next(csv.DictReader(io.StringIO(export_results(results, "csv"))))
    assert (row["itl_max_ms"], row["stalls"], row["input_tokens"], row["time_scale"]) == ("100.0", "0", "1200", "1.0")
    assert float(row["cost"]) == pytest.approx((1200 * 0.10 + 400 * 0.50) / 1e6)
    md = export_results(results, "md")
    assert "sim time ×0.05" in md and "cost $" in md.splitlines()[4]
    assert header_for(events[0].to_dict())["time_scale"] == 0.05


def test_a_real_stalled_stream_is_counted_and_was_flagged_while_silent():
    """The emulator's ``stall_after`` fault, over real HTTP: the stream stops
    for 1.3 s after 20 tokens, then resumes."""
    from thunderdome.race.runner import run_race
    from thunderdome.core.specs import BackendSpec

    spec = BackendSpec(name="stuck", kind="sim", profile="instant", model="instant",
                       options={"fault": "stall_after", "fault_at": 20, "stall_s": 1.3})
    events: list[Event] = []
    standings = asyncio.run(run_race(load_task("long-essay"), [spec], [events.append], emulator="thread", max_tokens=60))
    lane = standings.results()["lanes"][0]
    assert lane["status"] == "winner" and lane["stalls"] == 1
    assert lane["itl_max_ms"] >= 1200.0
    deltas = [e.t for e in events if isinstance(e, TokenDelta)]
    before = max(range(1, len(deltas)), key=lambda i: deltas[i] - deltas[i - 1]) - 1  # the last delta before the gap
    now = deltas[before] + 1.1
    s = standings_at(events, now).ranked(now)[0]
    assert s.stalled_s == pytest.approx(1.1) and s.status == "streaming"
    assert s.output_tps < 0.5 * lane["output_tps"]  # the rate at now fell while it was silent
