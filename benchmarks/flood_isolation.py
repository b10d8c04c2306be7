"""Flood isolation: one lane streaming an endless line cannot slow the lane beside it.

Invariant: every figure compares the same healthy lane (same profile, same
reply, same seeded jitter) racing alone and racing beside a lane that
streams 10 MiB of text with no newline (the emulator's ``flood_line``
fault), trial by trial, in the race users run (``record_race``, a
``first_correct`` Thunderdome race recorded to a temp file, the emulator in
its own process; ``--no-record`` to compare). Goal:
the healthy lane's TTFT and ITL p99 beside the flood stay within 1 ms of
racing alone. The flooding lane is cut at 1 MB by the reply size limit and
must end with that reason.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
from typing import Any

from benchmarks.common import Figure, add_common_args, command, fmt_ms, log, report
from benchmarks.recording import RECORD_HELP, check_recording, temp_recording_path

BENCH = "flood_isolation"
GOAL_MS = 1.0
HEALTHY_TOKENS = 400
"""Prose tokens of the healthy lane's reply before its command block."""
HEALTHY_PROFILE = "cloud"
"""0.90 s TTFT, 208 tok/s: the healthy lane streams for about 2.8 s."""
FLOOD_PROFILE = "instant"
FLOOD_TIME_SCALE = 5.0
"""The flood at 400 tokens of 1 KiB a second: it reaches the 1 MB cut in
about 2.5 s, so it floods while the healthy lane streams."""


def _task(tokens: int) -> Any:
    from thunderdome.race.tasks import load_task
    from thunderdome.sim.replies import generate_text

    task = load_task("hello-file")
    reference = generate_text(tokens, seed=1) + "\n\n" + task.reference
    return dataclasses.replace(task, reference=reference, max_turns=1, max_tokens=4096, timeout=60.0)


def _specs(flood: bool) -> list[Any]:
    from thunderdome.core.specs import BackendSpec

    specs = [BackendSpec(name="healthy", kind="sim", profile=HEALTHY_PROFILE, model=HEALTHY_PROFILE, agent="text")]
    if flood:
        options = {"fault": "flood_line", "fault_at": 0, "time_scale": FLOOD_TIME_SCALE}
        specs.append(BackendSpec(name="flood", kind="sim", profile=FLOOD_PROFILE, model=FLOOD_PROFILE, options=options, agent="text"))
    return specs


async def _trial(url: str, task: Any, flood: bool, record: bool) -> dict[str, Any]:
    from thunderdome.core.events import LaneFailed
    from thunderdome.sources.recorded_race import record_race

    failed: dict[str, str] = {}

    def sink(event: Any) -> None:
        if isinstance(event, LaneFailed):
            failed[event.lane] = event.reason

    with temp_recording_path(record, prefix="bench-flood-") as path:
        standings, status = await record_race(task, _specs(flood), [sink], record_path=path, sim_url=url)
    if status is not None:
        check_recording(status.error, status.events)
    rows = {row["name"]: row for row in standings.results()["lanes"]}
    healthy = rows["healthy"]
    if healthy["status"] != "winner":
        raise RuntimeError(f"the healthy lane did not win: {healthy['status']} {healthy.get('error') or ''}")
    out = {"ttft_ms": healthy["ttft_s"] * 1000.0, "itl_p99_ms": healthy["itl_p99_ms"], "tokens": healthy["tokens"]}
    if flood:
        reason = failed.get("flood", "")
        if not reason.startswith("reply over 1 MB: cut"):
            raise RuntimeError(f"the flooding lane was not cut by the size limit: {reason or rows['flood']['status']}")
        out["flood_reason"] = reason
    return out


async def _measure(trials: int, tokens: int, record: bool) -> dict[str, list[dict[str, Any]]]:
    from thunderdome.sim.launch import spawn_emulator_process

    task = _task(tokens)
    handle = await asyncio.to_thread(spawn_emulator_process)
    try:
        results: dict[str, list[dict[str, Any]]] = {"alone": [], "beside": []}
        for trial in range(trials):
            for variant in ("alone", "beside"):  # paired, alternating: drift hits both alike
                results[variant].append(await _trial(handle.url, task, variant == "beside", record))
            log(f"[{BENCH}] trial {trial + 1}/{trials}: alone {results['alone'][-1]}, beside {results['beside'][-1]}")
        return results
    finally:
        await asyncio.to_thread(handle.stop)


def run(*, quick: bool = True, trials: int | None = None, tokens: int = HEALTHY_TOKENS,
        record: bool = True) -> list[Figure]:
    """``record``: every race records to a temp file, as real races do."""
    trials = trials or (3 if quick else 10)
    log(f"[{BENCH}] {trials} trials: a {HEALTHY_PROFILE} lane alone, then beside a flood_line lane "
        f"(recording {'on' if record else 'off'})")
    results = asyncio.run(_measure(trials, tokens, record))
    args = ["--trials", str(trials)] + ([] if tokens == HEALTHY_TOKENS else ["--tokens", str(tokens)])
    args += [] if record else ["--no-record"]
    figures = []
    for key, label in (("ttft_ms", "TTFT"), ("itl_p99_ms", "ITL p99")):
        alone = statistics.median(r[key] for r in results["alone"])
        beside = statistics.median(r[key] for r in results["beside"])
        worst = max(abs(b[key] - a[key]) for a, b in zip(results["alone"], results["beside"]))
        value = (f"alone {fmt_ms(alone)}, beside the flood {fmt_ms(beside)} "
                 f"(median {beside - alone:+.2f} ms; worst trial {worst:.2f} ms; n={trials})")
        figures.append(Figure(BENCH, f"healthy lane {label}, alone vs beside a 10 MiB one-line flood", value,
                              f"within {GOAL_MS:g} ms", abs(beside - alone) <= GOAL_MS, command(BENCH, args),
                              {"alone": [r[key] for r in results["alone"]],
                               "beside": [r[key] for r in results["beside"]]}))
    reasons = sorted({r["flood_reason"] for r in results["beside"]})
    figures.append(Figure(BENCH, "the flooding lane ends", "; ".join(reasons), "reply over 1 MB: cut",
                          all(r.startswith("reply over 1 MB: cut") for r in reasons), command(BENCH, args)))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.flood_isolation", description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=3, help="paired trials (alone, then beside the flood)")
    p.add_argument("--tokens", type=int, default=HEALTHY_TOKENS, help="prose tokens of the healthy lane's reply")
    p.add_argument("--no-record", dest="record", action="store_false", help=RECORD_HELP)
    add_common_args(p)
    args = p.parse_args(argv)
    report(run(trials=args.trials, tokens=args.tokens, record=args.record), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
