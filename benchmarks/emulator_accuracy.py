"""Emulator accuracy: does the emulator deliver the TTFT and tokens/s it promises?

Invariant: every stream is judged against its configured profile (TTFT =
``profile.ttft * scale``, rate = ``profile.tps / scale``) twice, from the
same race: by the emulator's own log (``t_received`` -> ``t_first_token``,
``(tokens - 1) / (t_last_token - t_first_token)``) and by Thunderdome's
client-side metrics (``metrics.lane_stats``: TTFT from RequestSent, output
speed ``(N - 1) / (e2e - TTFT)``). The figure is the worst stream's relative
error, so one slow stream among 16 cannot hide behind an average.

The race goes through ``run_race`` with ``--streams`` concurrent sim lanes
against an emulator in its own process. Client-side TTFT includes the
request's trip over loopback (RequestSent is stamped before the socket
write), which the emulator cannot see; that is why both sides are shown.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from benchmarks.common import Figure, add_common_args, command, log, report
from thunderdome.sim.profiles import PROFILES

BENCH = "emulator_accuracy"
GOAL_PCT = 1.0
QUICK_CONFIGS = (("cloud", 1.0, 400), ("instant", 2.0, 1500))
"""(profile, time_scale, tokens): the cloud profile as is (0.90 s, 208
tok/s) and ``instant`` at scale 2 (20 ms, 1000 tok/s)."""


def _rel(measured: float, expected: float) -> float:
    return (measured - expected) / expected * 100.0


async def _race(profile: str, scale: float, tokens: int, streams: int) -> tuple[list[Any], list[dict[str, Any]]]:
    from thunderdome.metrics import lane_stats
    from thunderdome.race.runner import run_race
    from thunderdome.sim.launch import spawn_emulator_process
    from thunderdome.specs import BackendSpec, TaskSpec

    task = TaskSpec(name="emulator-accuracy", title="emulator accuracy", kind="long",
                    user="Write a long essay.", max_tokens=tokens, timeout=600.0)
    specs = [
        BackendSpec(name=f"s{i}", kind="sim", profile=profile, model=profile, protocol="openai",
                    options={"tokens": tokens, "seed": i})
        for i in range(streams)
    ]
    handle = await asyncio.to_thread(spawn_emulator_process, time_scale=scale)
    try:
        standings = await run_race(task, specs, [], sim_url=handle.url, time_scale=scale)
        records = await asyncio.to_thread(handle.fetch_log)
    finally:
        await asyncio.to_thread(handle.stop)
    stats = [lane_stats(lane) for lane in standings.lanes.values()]
    bad = [f"{s.name}: {s.error or s.status}" for s in stats if s.status not in ("finished", "winner")]
    if bad:
        raise RuntimeError("streams failed: " + "; ".join(bad))
    return stats, records


def measure(profile: str, scale: float, tokens: int, streams: int) -> dict[str, Any]:
    prof = PROFILES[profile]
    want_ttft, want_tps = prof.ttft * scale, prof.tps / scale
    stats, records = asyncio.run(_race(profile, scale, tokens, streams))
    server_ttft = [_rel(r["t_first_token"] - r["t_received"], want_ttft) for r in records]
    server_tps = [
        _rel((r["tokens"] - 1) / (r["t_last_token"] - r["t_first_token"]), want_tps) for r in records
    ]
    client_ttft = [_rel(s.ttft_s, want_ttft) for s in stats]
    client_tps = [_rel(s.output_tps, want_tps) for s in stats]
    return {
        "profile": profile, "scale": scale, "tokens": tokens, "streams": streams,
        "want_ttft_ms": want_ttft * 1000, "want_tps": want_tps,
        "server_ttft_pct": server_ttft, "server_tps_pct": server_tps,
        "client_ttft_pct": client_ttft, "client_tps_pct": client_tps,
        "client_ttft_ms_mean": sum(s.ttft_s for s in stats) / len(stats) * 1000,
        "server_records": len(records),
    }


def _worst(values: list[float]) -> float:
    return max(values, key=abs)


def figures_for(m: dict[str, Any], cmd: str) -> list[Figure]:
    label = f"{m['streams']}x {m['profile']}@{m['scale']:g} ({m['want_ttft_ms']:.0f} ms, {m['want_tps']:g} tok/s)"
    out = []
    for side in ("server", "client"):
        ttft, tps = m[f"{side}_ttft_pct"], m[f"{side}_tps_pct"]
        w_ttft, w_tps = _worst(ttft), _worst(tps)
        mean_ttft, mean_tps = sum(ttft) / len(ttft), sum(tps) / len(tps)
        value = (f"TTFT worst {w_ttft:+.2f}% (mean {mean_ttft:+.2f}%), "
                 f"tok/s worst {w_tps:+.2f}% (mean {mean_tps:+.2f}%)")
        met = abs(w_ttft) <= GOAL_PCT and abs(w_tps) <= GOAL_PCT
        data = {k: v for k, v in m.items() if not k.endswith("_pct")}
        data.update(side=side, worst_ttft_pct=w_ttft, worst_tps_pct=w_tps, mean_ttft_pct=mean_ttft,
                    mean_tps_pct=mean_tps)
        out.append(Figure(BENCH, f"{label} {side}", value, f"within {GOAL_PCT:g}%", met, cmd, data))
    return out


def run(*, quick: bool = True, profile: str | None = None, scale: float = 1.0, tokens: int | None = None,
        streams: int = 16) -> list[Figure]:
    configs = [(profile, scale, tokens or 400)] if profile else list(QUICK_CONFIGS)
    if not quick and not profile:
        configs = [(p, s, n * 4) for p, s, n in configs]
    figures: list[Figure] = []
    for prof, sc, n in configs:
        log(f"[emulator_accuracy] {streams} streams of {prof} at time_scale {sc:g}, {n} tokens each")
        m = measure(prof, sc, n, streams)
        args = ["--profile", prof, "--time-scale", f"{sc:g}", "--tokens", str(n), "--streams", str(streams)]
        figures += figures_for(m, command("emulator_accuracy", args))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.emulator_accuracy", description=__doc__.split("\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), help="one profile (default: cloud@1 and instant@2)")
    p.add_argument("--time-scale", type=float, default=1.0, help="with --profile: delay multiplier")
    p.add_argument("--tokens", type=int, help="with --profile: tokens per stream (default 400)")
    p.add_argument("--streams", type=int, default=16, help="concurrent streams (default 16)")
    p.add_argument("--long", action="store_true", help="4x longer streams")
    add_common_args(p)
    args = p.parse_args(argv)
    report(run(quick=not args.long, profile=args.profile, scale=args.time_scale, tokens=args.tokens,
               streams=args.streams), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
