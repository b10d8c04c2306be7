"""Scripted races for the TUI tests: deterministic event lists, no network.

Token times follow the public experiment's shape — cloud 0.90 s / 208 tok/s,
DGX Spark 1.39 s / 42.9 tok/s, RTX 4090 offload 2.05 s / 8.7 tok/s (800
tokens) — with a small seeded jitter. The numbers are fixed *here* (not read
from the emulator's profiles), so the snapshot pictures cannot move when the
emulator's schedule is tuned.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from thunderdome.core import events as ev


@dataclass(frozen=True)
class Pace:
    ttft: float
    tps: float
    reply_tokens: int = 878

    def offsets(self, n: int, seed: int) -> list[float]:
        rng = random.Random(f"{seed}:{self.ttft}:{self.tps}")
        step = 1.0 / self.tps
        return [self.ttft + i * step + (rng.uniform(-0.05, 0.05) * step if i else 0.0) for i in range(n)]


PROFILES = {
    "cloud": Pace(0.90, 208.0),
    "dgx-spark": Pace(1.39, 42.9),
    "rtx4090-offload": Pace(2.05, 8.7, reply_tokens=800),
    "fast-local": Pace(0.15, 120.0),
    "instant": Pace(0.01, 2000.0),
}

WORDS = (
    "The race is not always to the swift, but that is the way to bet. A backend that "
    "starts first can win a short race while a faster one is still warming up; over "
    "a long answer the steady pace decides. Measure both: time to first token and "
    "tokens per second, on the same clock, from the same start barrier.\n\n"
).split(" ")


def _lanes(names: list[tuple[str, str, str]]) -> tuple[dict, ...]:
    return tuple({"name": n, "kind": k, "model": m, "url": ""} for n, k, m in names)


def long_race(
    until: float | None = None,
    *,
    lanes: tuple[tuple[str, str], ...] = (
        ("cloud", "cloud"),
        ("dgx-spark", "dgx-spark"),
        ("rtx4090", "rtx4090-offload"),
    ),
    tokens: int = 878,
    max_tokens: int = 1024,
    error_lane: str | None = None,
    inject: str | None = None,
    reasoning: int = 0,
) -> list[ev.Event]:
    """A long-generation race; ``until`` cuts it mid-way (no RaceFinished)."""
    meta = [(name, "sim", profile) for name, profile in lanes]
    out: list[ev.Event] = [
        ev.RaceStarted(
            t=0.0,
            task="long-essay",
            kind="long",
            title="Write an 800-word essay on why time to first token and throughput are different things",
            lanes=_lanes(meta),
            started_at="2025-01-01T12:00:00.000+00:00",
            isolation="none",
            max_tokens=max_tokens,
        )
    ]
    timed: list[ev.Event] = []
    for i, (name, profile_name) in enumerate(lanes):
        profile = PROFILES[profile_name]
        n = min(tokens, profile.reply_tokens) if profile_name == "rtx4090-offload" else tokens
        timed.append(ev.LaneStarted(t=0.0005 * (i + 1), lane=name, skew=0.0005 * (i + 1)))
        sent = 0.001 * (i + 1)
        timed.append(ev.RequestSent(t=sent, lane=name))
        if name == error_lane:
            timed.append(ev.LaneFailed(t=sent + 0.05, lane=name, reason="HTTP 500 from 127.0.0.1: internal server error (sim fault)"))
            continue
        offsets = profile.offsets(n + reasoning, seed=7)
        timed.append(ev.FirstByte(t=sent + offsets[0] - 0.004, lane=name))
        for k, off in enumerate(offsets):
            channel = "reasoning" if k < reasoning else "answer"
            word = WORDS[k % len(WORDS)]
            after_break = k == 0 or k == reasoning or WORDS[(k - 1) % len(WORDS)].endswith("\n")
            text = word if after_break else " " + word
            if inject is not None and k == reasoning + 3:
                text = " " + inject
            timed.append(ev.TokenDelta(t=sent + off, lane=name, text=text, channel=channel))
        end = sent + offsets[-1]
        timed.append(ev.StreamEnded(t=end + 0.0001, lane=name, finish_reason="stop"))
        timed.append(ev.Usage(t=end + 0.0002, lane=name, output_tokens=n + reasoning, input_tokens=42))
        timed.append(ev.LaneFinished(t=end + 0.0003, lane=name, reason="stop"))
    timed.sort(key=lambda e: e.t)
    if until is not None:
        return out + [e for e in timed if e.t <= until]
    last = max(e.t for e in timed)
    standings = __import__("thunderdome.core.metrics", fromlist=["Standings"]).Standings().apply_all(out + timed)
    from thunderdome.core.metrics import long_race_winner

    return out + timed + [ev.RaceFinished(t=last + 0.001, winner=long_race_winner(standings))]


def sigkill_race(until: float | None = None) -> list[ev.Event]:
    """A Thunderdome last-process-standing race: cloud kills the others."""
    meta = [("cloud", "sim", "cloud"), ("dgx-spark", "sim", "dgx-spark"), ("rtx4090", "sim", "rtx4090-offload")]
    pids = {"cloud": 3, "dgx-spark": 4, "rtx4090": 5}
    out: list[ev.Event] = [
        ev.RaceStarted(
            t=0.0,
            task="sigkill",
            kind="thunderdome",
            title="Last process standing: kill your opponents' PIDs with one shell command",
            lanes=_lanes(meta),
            started_at="2025-01-01T12:00:00.000+00:00",
            isolation="bwrap",
            win_rule="last_standing",
            max_tokens=256,
        )
    ]
    timed: list[ev.Event] = []
    for i, (name, _, profile_name) in enumerate(meta):
        profile = PROFILES[profile_name]
        others = " ".join(str(p) for n, p in pids.items() if n != name)
        reply = ["```bash", "\n", f"kill -9 {others}", "\n", "```"]
        timed.append(ev.LaneStarted(t=0.0005 * (i + 1), lane=name))
        timed.append(ev.FighterSpawned(t=0.0005 * (i + 1), lane=name, pid=pids[name]))
        sent = 0.001 * (i + 1)
        timed.append(ev.RequestSent(t=sent, lane=name))
        offsets = profile.offsets(len(reply), seed=3)
        for k, (off, piece) in enumerate(zip(offsets, reply)):
            timed.append(ev.TokenDelta(t=sent + off, lane=name, text=piece))
        if name == "cloud":
            t_cmd = sent + offsets[-1] + 0.001
            timed.append(ev.StreamEnded(t=t_cmd, lane=name, finish_reason="stop"))
            timed.append(ev.CommandExtracted(t=t_cmd + 0.001, lane=name, command=f"kill -9 {others}"))
            timed.append(ev.ExecFinished(t=1.03, lane=name, exit_code=0, duration=0.02))
            timed.append(ev.Verdict(t=1.04, lane=name, passed=True, detail="last process standing"))
    timed.append(ev.LaneEliminated(t=1.035, lane="dgx-spark", reason="fighter killed (SIGKILL)", by="cloud"))
    timed.append(ev.LaneEliminated(t=1.036, lane="rtx4090", reason="fighter killed (SIGKILL)", by="cloud"))
    timed.append(ev.LaneFinished(t=1.041, lane="cloud", reason="last standing"))
    timed.sort(key=lambda e: e.t)
    # the eliminated lanes' streams stop at their elimination
    cut = {"dgx-spark": 1.035, "rtx4090": 1.036}
    timed = [e for e in timed if not (isinstance(e, ev.TokenDelta) and e.lane in cut and e.t > cut[e.lane])]
    if until is not None:
        return out + [e for e in timed if e.t <= until]
    return out + timed + [ev.RaceFinished(t=1.042, winner="cloud")]
