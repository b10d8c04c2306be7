"""The reducer's incremental reads equal a recomputation from the events.

``Standings`` keeps running figures per lane (the closed turns' totals, gaps
in arrival order, percentiles sorted only when read). Here a reference
written from the metric definitions recomputes every figure from scratch
from the events seen so far, and hypothesis feeds both random races — lanes
interleaved, several turns, usage or none, late events for a turn already
closed, reads in the middle of the race — and requires equality to the last
bit: mid-race figures (rates and stalls at the moment read), live token
counts, projections and their basis, order, figures read after more events
arrived, and the final results dict.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from thunderdome.core.events import (
    CommandExtracted,
    Event,
    FirstByte,
    LaneEliminated,
    LaneFailed,
    LaneFinished,
    LaneStarted,
    LaneStopped,
    RaceFinished,
    RaceStarted,
    RequestSent,
    ServerTimings,
    StreamEnded,
    TokenDelta,
    ToolCallDelta,
    Usage,
    Verdict,
    WinnerDecided,
)
from thunderdome.core.metrics import Standings, compute_results, lane_stats

# -- the reference: every figure from scratch, by the definitions -------------------------

TURN_EVENTS = (RequestSent, FirstByte, TokenDelta, ToolCallDelta, Usage, ServerTimings, StreamEnded)
LANE_EVENTS = TURN_EVENTS + (LaneStarted, CommandExtracted, Verdict, LaneFinished, LaneEliminated, LaneFailed, LaneStopped)
ENDED = ("finished", "winner", "eliminated", "error", "stopped")


def new_lane(name: str, index: int) -> dict[str, Any]:
    return {"name": name, "index": index, "kind": "", "model": "", "skew": 0.0, "turns": {}, "status": "waiting",
            "end_t": None, "reason": "", "by": None, "completion": None, "verdict": "", "price": None,
            "time_scale": 1.0}


def replay(events: list[Event]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The race facts and each lane's raw record (turns keep every token time)."""
    race: dict[str, Any] = {"kind": "long", "max_tokens": 0, "expected": 0, "finished_t": None, "winner": None,
                            "last_t": 0.0}
    lanes: dict[str, dict[str, Any]] = {}

    def lane_of(name: str) -> dict[str, Any]:
        return lanes.setdefault(name, new_lane(name, len(lanes)))

    for e in events:
        race["last_t"] = max(race["last_t"], e.t)
        if isinstance(e, RaceStarted):
            race["kind"], race["max_tokens"], race["expected"] = e.kind, e.max_tokens, e.expected_tokens
            for info in e.lanes:
                lane = lane_of(info["name"])
                lane["kind"], lane["model"], lane["price"] = info["kind"], info["model"], info.get("price")
                lane["time_scale"] = info.get("time_scale", e.time_scale if info["kind"] == "sim" else 1.0)
        elif isinstance(e, (RaceFinished, WinnerDecided)):
            if isinstance(e, RaceFinished):
                race["finished_t"] = e.t
            race["winner"] = e.winner
            if e.winner in lanes:
                lanes[e.winner]["status"] = "winner"
        if not isinstance(e, LANE_EVENTS):
            continue
        lane = lane_of(e.lane)
        running = lane["status"] not in ENDED
        if isinstance(e, TURN_EVENTS):
            turn = lane["turns"].setdefault(e.turn, {"request": e.t, "byte": None, "tokens": [], "answers": [],
                                                     "usage": None, "source": None, "server_tps": None, "chars": 0, "server": {},
                                                     "input": None, "finish": None, "ended": None})
        if isinstance(e, RequestSent):
            turn["request"] = e.t
            lane["status"] = "waiting" if running else lane["status"]
        elif isinstance(e, FirstByte) and turn["byte"] is None:
            turn["byte"] = e.t
        elif isinstance(e, ToolCallDelta):  # tool arguments: output, not answer text
            turn["tokens"].append(e.t)
            turn["chars"] += len(e.text)
            if running:
                lane["status"] = "streaming"
        elif isinstance(e, TokenDelta):
            turn["tokens"].append(e.t)
            turn["chars"] += len(e.text)
            if e.channel == "answer":
                turn["answers"].append(e.t)
            if running:
                lane["status"] = "streaming" if e.channel == "answer" else "thinking"
        elif isinstance(e, Usage):
            if e.output_tokens is not None:
                turn["usage"], turn["source"] = e.output_tokens, e.source
            if e.server_tps is not None:
                turn["server_tps"] = e.server_tps
            if e.input_tokens is not None:
                turn["input"] = e.input_tokens
        elif isinstance(e, StreamEnded):
            turn["finish"], turn["ended"] = e.finish_reason, e.t
        elif isinstance(e, ServerTimings):
            turn["server"].update({k: v for k, v in (("prefill_s", e.prefill_s), ("load_s", e.load_s),
                                                     ("cached_tokens", e.cached_tokens)) if v is not None})
        elif isinstance(e, LaneStarted):
            lane["skew"] = e.skew
        elif isinstance(e, CommandExtracted) and running:
            lane["status"] = "executing"
        elif isinstance(e, Verdict):
            lane["verdict"] = e.detail or ("pass" if e.passed else "fail")
            if e.passed and lane["completion"] is None:
                lane["completion"] = e.t
        elif isinstance(e, (LaneFinished, LaneEliminated, LaneFailed, LaneStopped)):
            lane["status"] = {LaneFinished: "finished", LaneEliminated: "eliminated", LaneFailed: "error",
                              LaneStopped: "stopped"}[type(e)]
            lane["end_t"], lane["reason"] = e.t, e.reason
            if isinstance(e, LaneEliminated):
                lane["by"] = e.by
    return race, lanes


def percentile(ordered: list[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks."""
    if not ordered:
        return None
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def believed(t: dict[str, Any]) -> bool:
    """The server's count stands unless the stream contradicts it: below one
    token per delta, or above four per character (+2 end-of-turn tokens)."""
    return t["usage"] is not None and len(t["tokens"]) <= t["usage"] <= 4 * t["chars"] + 2


def turn_tokens(t: dict[str, Any]) -> int:
    return t["usage"] if believed(t) else len(t["tokens"])


def count_check(turns: list[dict[str, Any]]) -> str:
    for number, t in enumerate(turns, 1):
        if t["usage"] is not None and not believed(t):
            n, what = (len(t["tokens"]), "non-empty deltas") if t["usage"] < len(t["tokens"]) else (t["chars"], "characters streamed")
            check = f"server counted {t['usage']} tokens for {n} {what}"
            return check if number == 1 else f"turn {number}: {check}"
    return ""


def generation(turns: list[dict[str, Any]]) -> tuple[int, float]:
    """Output speed's numerator and denominator over whole turns (two or more tokens)."""
    gen_tokens, gen_time = 0, 0.0
    for t in turns:
        count = turn_tokens(t)
        if count >= 2 and t["tokens"]:
            t_ttft, t_e2e = t["tokens"][0] - t["request"], t["tokens"][-1] - t["request"]
            if t_e2e > t_ttft:
                gen_tokens, gen_time = gen_tokens + count - 1, gen_time + (t_e2e - t_ttft)
    return gen_tokens, gen_time


def streaming(lane: dict[str, Any]) -> dict[str, Any] | None:
    """The last opened turn while it streams: a delta came, no end of stream, lane running."""
    last = list(lane["turns"].values())[-1] if lane["turns"] else None
    if last is None or not last["tokens"] or last["ended"] is not None or lane["status"] in ENDED:
        return None
    return last


def figures(lane: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """A lane's figures by the metric table: N per turn is usage if reported, else deltas.
    ``now``: the rate and the stall read at that moment."""
    turns = list(lane["turns"].values())  # in the order they were opened
    n = [turn_tokens(t) for t in turns]
    first = turns[0] if turns else None
    ttfb = ttft = ttfa = e2e = None
    finish = max((t["tokens"][-1] for t in turns if t["tokens"]), default=None)
    if first is not None:
        ttfb = None if first["byte"] is None else first["byte"] - first["request"]
        ttft = first["tokens"][0] - first["request"] if first["tokens"] else None
        answers = [t["answers"][0] for t in turns if t["answers"]]
        ttfa = answers[0] - first["request"] if answers else None
        e2e = None if finish is None else finish - first["request"]
    gen_tokens, gen_time = generation(turns)
    tps = gen_tokens / gen_time if gen_time > 0 else None
    sources = {t["source"] if believed(t) else "estimate" for t, count in zip(turns, n)
               if count or t["tokens"]}
    source = ("estimate" if not sources else next(iter(sources)) if len(sources) == 1
              else "estimate" if "estimate" in sources else "usage")
    gaps = sorted(b - a for t in turns for a, b in zip(t["tokens"], t["tokens"][1:]))
    server = [t["server_tps"] for t in turns if t["server_tps"] is not None]
    model_times = [m for m in map(model_time, turns) if m is not None]

    def ms(q: float) -> float | None:
        value = percentile(gaps, q)
        return None if value is None else value * 1000.0

    live, stalled = streaming(lane), None
    if now is not None and live is not None:
        count = turn_tokens(live)
        if count >= 2:  # the rate at now: the silence since the last delta counts
            closed_tokens, closed_time = generation(turns[:-1])
            spent = closed_time + max(now, live["tokens"][-1]) - live["tokens"][0]
            tps = (closed_tokens + count - 1) / spent if spent > 0 else tps
        silence = now - live["tokens"][-1]
        stalled = silence if silence > max(1.0, 10 * (percentile(gaps, 50) or 0.0)) else None
    median = percentile(gaps, 50) or 0.0
    deltas = sum(len(t["tokens"]) for t in turns)  # deltas of one read share its stamp: a gap of 0
    reads = sum(1 + sum(b - a > 0 for a, b in zip(t["tokens"], t["tokens"][1:])) for t in turns if t["tokens"])
    per_read = deltas / reads if reads else None
    inputs = [t["input"] for t in turns if t["input"] is not None]
    input_tokens = sum(inputs) if inputs else None
    price = lane["price"] or {}
    cost = None
    if price and not (price.get("input_per_mtok") and any(
            t["input"] is None for t, count in zip(turns, n) if count or t["tokens"])):
        cost = ((input_tokens or 0) * price.get("input_per_mtok", 0.0) + sum(n) * price.get("output_per_mtok", 0.0)) / 1e6
    return {
        "ttfb_s": ttfb, "ttft_s": ttft, "ttfa_s": ttfa, "e2e_s": e2e, "tokens": sum(n), "tokens_source": source, "count_check": count_check(turns),
        "output_tps": tps,
        "itl_p50_ms": ms(50), "itl_p90_ms": ms(90), "itl_p99_ms": ms(99), "itl_max_ms": ms(100),
        "stalls": sum(1 for g in gaps if g > max(1.0, 10 * median)), "stalled_s": stalled,
        "deltas_per_read": per_read, "itl_limited": per_read is not None and per_read >= 1.5,
        "server_tps": server[-1] if server else None, "finish_t": finish, "turns": len(turns),
        "finish_reason": turns[-1]["finish"] if turns else None,
        "input_tokens": input_tokens, "cost": cost, "time_scale": lane["time_scale"],
        "model_s": sum(model_times) if model_times else None, "ttftc_s": None, "tta_s": None, "tool_s": None,
    }


def model_time(turn: dict[str, Any]) -> float | None:
    """A turn's request to its stream's end, else to its last delta."""
    end = turn["ended"] if turn["ended"] is not None else (turn["tokens"][-1] if turn["tokens"] else None)
    return None if end is None else end - turn["request"]


FIGURES = tuple(figures(new_lane("x", 0)))


def live_tokens(lane: dict[str, Any]) -> int:
    return sum(map(turn_tokens, lane["turns"].values()))


def projection(race: dict[str, Any], lanes: dict[str, dict[str, Any]], lane: dict[str, Any],
               now: float) -> tuple[float, int, str] | None:
    """When a running lane reaches its expected length at its rate at now: the first of (the finished
    lanes' median N, the task's expected tokens, max_tokens) it has not reached, capped by max_tokens."""
    fig = figures(lane, now)
    if lane["status"] in ENDED or not lane["turns"] or not fig["output_tps"] or fig["output_tps"] <= 0:
        return None
    done = sorted(n for n in (figures(o)["tokens"] for o in lanes.values() if o["status"] in ("finished", "winner"))
                  if n > 0)
    cap = race["max_tokens"]
    bases = [(min(n, cap) if cap else n, basis) for n, basis in (
        (round(percentile(done, 50)) if done else 0, "finished"), (race["expected"], "task"), (cap, "max_tokens")) if n]
    if not bases:
        return None
    so_far = live_tokens(lane)
    ahead = [(n, basis) for n, basis in bases if n > so_far]
    tokens, basis = ahead[0] if ahead else max(bases)
    last = fig["finish_t"] if fig["finish_t"] is not None else now
    return max(now, last) + max(tokens - so_far, 0) / fig["output_tps"], tokens, basis


def order(race: dict[str, Any], lanes: dict[str, dict[str, Any]], now: float) -> list[str]:
    """Thunderdome: winner, then by completion, running, later end first, errors;
    long race: finished by finish time, running by projected finish, the rest by tokens."""

    def key(lane: dict[str, Any]) -> tuple:
        status, fig, i = lane["status"], figures(lane), lane["index"]
        if race["kind"] == "thunderdome":
            if status == "winner":
                return (0, lane["completion"] or 0.0, i)
            if lane["completion"] is not None:
                return (1, lane["completion"], i)
            if status not in ENDED:
                return (2, 0.0, i)
            return (3, -(lane["end_t"] or 0.0), i) if status in ("eliminated", "finished", "stopped") else (4, 0.0, i)
        if status in ("finished", "winner") and fig["finish_t"] is not None:
            return (0, fig["finish_t"], i)
        if status not in ENDED:
            proj = projection(race, lanes, lane, now)
            return (1, math.inf if proj is None else proj[0], i)
        return (2, -fig["tokens"], i)

    return [lane["name"] for lane in sorted(lanes.values(), key=key)]


def server_of(lane: dict[str, Any]) -> dict[str, Any]:
    turns = list(lane["turns"].values())
    return turns[0]["server"] if turns else {}


def split_of(lane: dict[str, Any], fig: dict[str, Any]) -> dict[str, float] | None:
    """Turn 1's TTFT: the server's load and prefill, the rest (never below 0), rounded as --json is."""
    said = {k: v for k, v in server_of(lane).items() if k in ("load_s", "prefill_s")}
    if not said or fig["ttft_s"] is None:
        return None
    said["rest_s"] = max(fig["ttft_s"] - sum(said.values()), 0.0)
    return {k: round(v, 4) for k, v in said.items()}


def result_lanes(events: list[Event]) -> list[dict[str, Any]]:
    """The ``lanes`` of the results, rounded as the ``--json`` contract rounds."""
    race, lanes = replay(events)
    now = race["finished_t"] if race["finished_t"] is not None else race["last_t"]

    def r(value: float | None, digits: int = 4) -> float | None:
        return None if value is None else round(value, digits)

    out = []
    for rank, name in enumerate(order(race, lanes, now), 1):
        lane, fig = lanes[name], figures(lanes[name], now)
        out.append({
            "name": name, "kind": lane["kind"], "model": lane["model"], "program": None, "status": lane["status"], "rank": rank,
            "ttfb_s": r(fig["ttfb_s"]), "ttft_s": r(fig["ttft_s"]), "ttfa_s": r(fig["ttfa_s"]),
            "e2e_s": r(fig["e2e_s"]), "finish_s": r(fig["finish_t"]), "tokens": fig["tokens"], "tokens_source": fig["tokens_source"],
            "count_check": fig["count_check"] or None, "output_tps": r(fig["output_tps"], 2), "itl_p50_ms": r(fig["itl_p50_ms"], 3),
            "itl_p90_ms": r(fig["itl_p90_ms"], 3), "itl_p99_ms": r(fig["itl_p99_ms"], 3),
            "server_tps": r(fig["server_tps"], 2), "completion_s": r(lane["completion"]),
            "turns": fig["turns"], "verdict": lane["verdict"],
            "error": (lane["reason"] or None) if lane["status"] == "error" else None,
            "eliminated_by": lane["by"], "finish_reason": fig["finish_reason"],
            "start_skew_ms": r(lane["skew"] * 1000.0, 3),
            "itl_max_ms": r(fig["itl_max_ms"], 3), "stalls": fig["stalls"], "input_tokens": fig["input_tokens"],
            "deltas_per_read": r(fig["deltas_per_read"], 3), "itl_limited": fig["itl_limited"],
            "ttft_split": split_of(lane, fig), "cached_tokens": server_of(lane).get("cached_tokens"),
            "prompt_cached": bool(server_of(lane).get("cached_tokens")),
            "price_input_per_mtok": (lane["price"] or {}).get("input_per_mtok"),
            "price_output_per_mtok": (lane["price"] or {}).get("output_per_mtok"),
            "cost": r(fig["cost"], 6), "time_scale": lane["time_scale"],
            "ttftc_s": None, "tta_s": None, "model_s": r(fig["model_s"]), "tool_s": None, "requests": fig["turns"],
            "startup_s": None,
            "per_turn": [
                {"turn": n, "ttft_s": r(t["tokens"][0] - t["request"] if t["tokens"] else None), "ttftc_s": None,
                 "tta_s": None, "model_s": r(model_time(t)), "tool_s": None}
                for n, t in lane["turns"].items()
            ],
        })
    return out


# -- random races -------------------------------------------------------------------------

gaps = st.one_of(st.sampled_from([0.0, 0.001, 0.1, 1.5]), st.floats(min_value=0.0, max_value=0.5))


@st.composite
def lane_events(draw: st.DrawFn, name: str, kind: str) -> list[Event]:
    """One lane's events in its own order: turns of tokens, usage, late events for closed turns, an end."""
    t = 0.0
    events: list[Event] = [LaneStarted(t=0.0, lane=name, skew=draw(st.sampled_from([0.0, 0.0004, 0.002])))]
    turns = draw(st.integers(0, 3))
    for turn in range(1, turns + 1):
        t += draw(gaps)
        events.append(RequestSent(t=t, lane=name, turn=turn))
        if draw(st.booleans()):
            t += draw(gaps)
            events.append(FirstByte(t=t, lane=name, turn=turn))
        for _ in range(draw(st.integers(0, 12))):
            t += draw(gaps)
            channel = draw(st.sampled_from(["answer", "answer", "reasoning", "tool"]))
            if channel == "tool":
                events.append(ToolCallDelta(t=t, lane=name, turn=turn, index=0, text='{"a'))
            else:
                events.append(TokenDelta(t=t, lane=name, text="w ", channel=channel, turn=turn))
        if draw(st.booleans()):
            events.append(Usage(t=t, lane=name, turn=turn, output_tokens=draw(st.none() | st.integers(0, 30)),
                                input_tokens=draw(st.none() | st.integers(0, 500)),
                                source=draw(st.sampled_from(["usage", "server"])),
                                server_tps=draw(st.none() | st.sampled_from([12.5, 40.0]))))
        if draw(st.booleans()):
            events.append(ServerTimings(t=t, lane=name, turn=turn, prefill_s=draw(st.none() | st.sampled_from([0.0, 0.2, 9.0])),
                                        load_s=draw(st.none() | st.just(0.05)),
                                        cached_tokens=draw(st.none() | st.sampled_from([0, 12]))))
        if draw(st.booleans()):
            events.append(StreamEnded(t=t, lane=name, turn=turn, finish_reason=draw(st.sampled_from(["stop", "length", None]))))
        if draw(st.booleans()):
            events.append(CommandExtracted(t=t, lane=name, turn=turn, command="ls"))
        if kind == "thunderdome" and draw(st.booleans()):
            t += draw(gaps)
            events.append(Verdict(t=t, lane=name, turn=turn, passed=draw(st.booleans())))
    for _ in range(draw(st.integers(0, 2)) if turns > 1 else 0):  # a closed turn changes again
        late = draw(st.integers(1, turns - 1))
        t += draw(gaps)
        events.append(draw(st.sampled_from([
            TokenDelta(t=t, lane=name, text="late", turn=late),
            Usage(t=t, lane=name, turn=late, output_tokens=7, source="usage", server_tps=99.0),
            StreamEnded(t=t, lane=name, turn=late, finish_reason="stop"),
        ])))
    end = draw(st.sampled_from([None, LaneFinished, LaneEliminated, LaneFailed, LaneStopped]))
    if end is not None:
        t += draw(gaps)
        events.append(end(t=t, lane=name, reason=draw(st.sampled_from(["", "HTTP 500"]))))
    return events


@st.composite
def races(draw: st.DrawFn) -> list[Event]:
    """A race: lanes' event streams interleaved at random (each lane stays in its own order)."""
    kind = draw(st.sampled_from(["long", "thunderdome"]))
    names = ["a", "b", "c", "d"][: draw(st.integers(1, 4))]
    prices = st.none() | st.sampled_from([{"output_per_mtok": 0.5}, {"input_per_mtok": 0.1, "output_per_mtok": 2.0}])
    info = tuple({"name": n, "kind": draw(st.sampled_from(["sim", "openai"])), "model": f"m-{n}",
                  **({} if (price := draw(prices)) is None else {"price": price})} for n in names)
    events: list[Event] = [RaceStarted(t=0.0, task="t", kind=kind, lanes=info, max_tokens=draw(st.sampled_from([0, 8, 40])),
                                       expected_tokens=draw(st.sampled_from([0, 5, 20])),
                                       time_scale=draw(st.sampled_from([1.0, 0.05])))]
    streams = [draw(lane_events(n, kind)) for n in names]
    picks = draw(st.permutations([i for i, stream in enumerate(streams) for _ in stream]))
    for i in picks:
        events.append(streams[i].pop(0))
    if draw(st.booleans()):  # the win called before the end, at any moment
        at = draw(st.integers(1, len(events)))
        events.insert(at, WinnerDecided(t=events[at - 1].t, winner=draw(st.sampled_from(names))))
    if draw(st.booleans()):
        events.append(RaceFinished(t=max(e.t for e in events) + 0.01, winner=draw(st.sampled_from([None, *names]))))
    return events


# -- the properties -----------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(races(), st.data())
def test_incremental_reads_equal_a_recomputation_at_every_read(events, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=5), label="cuts"))
    standings = Standings()
    seen = 0
    earlier = []  # (figures taken at a cut, what the reference said then)
    for cut in cuts + [len(events)]:
        standings.apply_all(events[seen:cut])
        seen = cut
        race, lanes = replay(events[:cut])
        now = race["last_t"] + data.draw(st.sampled_from([0.0, 0.05, 3.0]), label="now - last_t")
        ranked = standings.ranked(now)
        assert [s.name for s in ranked] == order(race, lanes, now)
        for s in ranked:
            lane, ref = standings.lanes[s.name], lanes[s.name]
            assert {f: getattr(s, f) for f in FIGURES} == figures(ref, now)
            assert lane.live_tokens == live_tokens(ref) and lane.tokens == figures(ref)["tokens"]
            expected = projection(race, lanes, ref, now)
            assert (s.projected_t, s.projected_tokens, s.projection_basis) == (expected or (None, None, None))
            shown = standings.projection(lane, now)
            assert s.projected_t == (None if shown is None else shown.t)
            earlier.append((s, figures(ref)))
    for s, ref in earlier:  # read after more events arrived: still the figures of their moment
        assert (s.itl_p50_ms, s.itl_p90_ms, s.itl_p99_ms, s.itl_max_ms, s.stalls) == tuple(
            ref[f] for f in ("itl_p50_ms", "itl_p90_ms", "itl_p99_ms", "itl_max_ms", "stalls"))
    assert {f: getattr(lane_stats(standings.lanes[n]), f) for n in lanes for f in FIGURES} == {
        f: figures(lanes[n])[f] for n in lanes for f in FIGURES
    }


@settings(max_examples=150, deadline=None)
@given(races())
def test_results_equal_a_recomputation(events):
    results = compute_results(events)
    assert results["lanes"] == result_lanes(events)
    assert results["winner"] == replay(events)[0]["winner"]
