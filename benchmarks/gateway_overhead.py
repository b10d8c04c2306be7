"""Gateway overhead: what the metering gateway adds to the TTFT an agent sees, at 8 lanes.

Invariant: the same requests (OpenAI chat, streamed, ``instant`` profile)
go to the same emulator process three ways, interleaved round by round: to
the emulator directly, through the lane's gateway on loopback TCP, and as an
agent in its sandbox reaches it (the in-sandbox relay, ``agents/relay.py``,
then the gateway's Unix socket). The agents are a separate process (as real
agents are) with 8 lanes in flight at once; the gateways run in this process,
one per lane, metering into a ``Standings`` as in a race. Each request's
*transport time* is what the client waited beyond the emulator's own work:
(emulator arrival - client send) + (client's first content byte - emulator's
first token send), all on CLOCK_MONOTONIC (the emulator logs its stamps, the
request tag matches them), so the emulator's own jitter cancels out. The
figure is the p99 of transport time through the gateway minus the p99 direct.
The gateway's own work on that path (its ``Relayed.forward_s``: request read
to sent upstream, plus ``relay_s``: the reply's first chunk in to written out)
is reported beside it, and the race process's CPU time per metered request:
on a loaded machine the end-to-end figure is mostly the wake-up of one more
process, which these are not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Figure, add_common_args, command, log, pct, report

BENCH = "gateway_overhead"
LANES = 8
TOKENS = 20
DIRECTIVE = {"tokens": TOKENS, "seed": 1}
VARIANTS = ("direct", "gateway", "relay")
GOAL_MS = 1.0
_CONTENT = re.compile(rb'"content":"[^"]')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the agents (a child process) -----------------------------------------------------


async def _one(host: str, port: int, tag: str) -> tuple[float, float]:
    """One streamed request on a fresh connection: (sent, first content byte)."""
    body = json.dumps({"model": "instant", "stream": True, "max_tokens": TOKENS, "thunderdome_sim": DIRECTIVE,
                       "messages": [{"role": "user", "content": "Say something."}]}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer sk-throwaway\r\nx-thunderdome-tag: {tag}\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sent = time.monotonic()
    writer.write(head + body)
    first = 0.0
    seen = b""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        if not first:
            seen += data
            if _CONTENT.search(seen):
                first = time.monotonic()
    writer.close()
    if not first:
        raise RuntimeError(f"{tag}: no content arrived")
    return sent, first


async def _agents(targets: dict[str, list[tuple[str, int]]], rounds: int) -> list[tuple[str, str, float, float]]:
    out: list[tuple[str, str, float, float]] = []
    for r in range(rounds):
        order = VARIANTS[r % 3:] + VARIANTS[:r % 3]  # no variant always goes first
        for variant in order:
            tags = [f"{variant}-{r}-{lane}" for lane in range(LANES)]
            got = await asyncio.gather(*(_one(*targets[variant][lane], tags[lane]) for lane in range(LANES)))
            out += [(variant, tag, sent, first) for tag, (sent, first) in zip(tags, got)]
            await asyncio.sleep(0.02)
    return out


def _agents_main(targets: dict[str, list[tuple[str, int]]], rounds: int, queue: Any) -> None:
    try:
        queue.put(asyncio.run(_agents(targets, rounds)))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        queue.put(f"{type(exc).__name__}: {exc}")


# --- the race side (this process) -----------------------------------------------------


async def _measure(rounds: int) -> dict[str, Any]:
    from thunderdome.agents.relay import __file__ as relay_file
    from thunderdome.backends import make_backend
    from thunderdome.gateway import Gateway, Upstream
    from thunderdome.metrics import Standings
    from thunderdome.sim.launch import spawn_emulator_process
    from thunderdome.specs import BackendSpec

    emulator = await asyncio.to_thread(spawn_emulator_process)
    door = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    standings = Standings()
    t0 = time.monotonic()
    gateways, relays, backends = [], [], []
    try:
        targets: dict[str, list[tuple[str, int]]] = {v: [] for v in VARIANTS}
        for lane in range(LANES):
            spec = BackendSpec(name=f"lane{lane}", kind="sim", profile="instant", model="instant", protocol="openai")
            backend = make_backend(spec, sim_url=emulator.url)
            backends.append(backend)
            upstream = Upstream(backend.base_url, {}, "instant", dict(DIRECTIVE), spec.timeouts)
            gateway = Gateway(spec.name, upstream, standings.apply, lambda: time.monotonic() - t0)
            gateways.append(gateway)
            url = await gateway.listen_tcp()
            path = str(door / f"lane{lane}.sock")
            await gateway.listen_unix(path)
            port = _free_port()
            relay = subprocess.Popen([sys.executable, "-I", relay_file, "--foreground", "127.0.0.1", str(port), path],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
            relays.append(relay)
            if relay.stdout is None or relay.stdout.readline().strip() != b"listening":
                raise RuntimeError("the relay did not start")
            targets["direct"].append((emulator.host, emulator.port))
            targets["gateway"].append(("127.0.0.1", int(url.rsplit(":", 1)[1])))
            targets["relay"].append(("127.0.0.1", port))
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        warm = ctx.Process(target=_agents_main, args=(targets, 2, queue))  # first-use costs, untimed
        warm.start()
        await asyncio.to_thread(queue.get)
        warm.join()
        agents = ctx.Process(target=_agents_main, args=(targets, rounds, queue))
        cpu = time.process_time()
        agents.start()
        got = await asyncio.to_thread(queue.get)
        cpu = time.process_time() - cpu
        agents.join()
        if isinstance(got, str):
            raise RuntimeError(got)
        log_by_tag = {r["id"]: r for r in await asyncio.to_thread(emulator.fetch_log)}
        metered = sum(gateway.turns for gateway in gateways)
        timed = [r for g in gateways for r in g.relayed[2 * 2:]  # after the warm-up
                 if r.forward_s is not None and r.relay_s is not None]
        own = [r.forward_s + r.relay_s for r in timed]  # type: ignore[operator]
        log(f"[gateway_overhead] forward p50/p99 {pct([r.forward_s for r in timed], 50) * 1000:.3f}/"
            f"{pct([r.forward_s for r in timed], 99) * 1000:.3f} ms, relay p50/p99 "
            f"{pct([r.relay_s for r in timed], 50) * 1000:.3f}/{pct([r.relay_s for r in timed], 99) * 1000:.3f} ms")
    finally:
        for gateway in gateways:
            await gateway.aclose()
        for backend in backends:
            await backend.aclose()
        await asyncio.to_thread(emulator.stop)
        for relay in relays:
            relay.kill()
            relay.wait()
        shutil.rmtree(door, ignore_errors=True)
    transport: dict[str, list[float]] = {v: [] for v in VARIANTS}
    ttft: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for variant, tag, sent, first in got:
        rec = log_by_tag[tag]
        transport[variant].append((rec["t_arrival"] - sent) + (first - rec["t_first_token"]))
        ttft[variant].append(first - sent)
    expected = (rounds + 2) * LANES * 2  # the gateway and relay ways, warm-up rounds included
    if metered != expected:
        raise RuntimeError(f"the gateways metered {metered} turns, not {expected}")
    cpu_per_turn = cpu / (rounds * LANES * 2)
    return {"transport_s": transport, "ttft_s": ttft, "metered_turns": metered, "own_s": own, "cpu_per_turn_s": cpu_per_turn}


def run(*, quick: bool = True, rounds: int | None = None) -> list[Figure]:
    rounds = rounds or (40 if quick else 250)
    log(f"[gateway_overhead] {rounds} rounds x {LANES} lanes x {len(VARIANTS)} ways (direct, gateway, relay+gateway)")
    data = asyncio.run(_measure(rounds))
    cmd = command(BENCH, ["--rounds", str(rounds)])
    transport, ttft = data["transport_s"], data["ttft_s"]
    p99 = {v: pct(transport[v], 99) * 1000 for v in VARIANTS}
    p50 = {v: pct(transport[v], 50) * 1000 for v in VARIANTS}
    figures = [
        Figure(BENCH, "transport p50 / p99, direct", f"{p50['direct']:.2f} / {p99['direct']:.2f} ms", "-", None, cmd,
               {"transport_s": transport["direct"], "ttft_s": ttft["direct"]}),
    ]
    for variant, label in (("gateway", "gateway (loopback TCP)"), ("relay", "gateway via the sandbox relay")):
        added = p99[variant] - p99["direct"]
        figures.append(Figure(
            BENCH, f"TTFT added at p99, {label}", f"{added:+.2f} ms (p50 {p50[variant] - p50['direct']:+.2f} ms)",
            f"< {GOAL_MS:g} ms at {LANES} lanes", added < GOAL_MS, cmd,
            {"transport_s": transport[variant], "ttft_s": ttft[variant], "p99_ms": p99[variant]},
        ))
    own = data["own_s"]
    figures.append(Figure(
        BENCH, "gateway's own work on the TTFT path, p99", f"{pct(own, 99) * 1000:.3f} ms (p50 {pct(own, 50) * 1000:.3f} ms)",
        f"< {GOAL_MS:g} ms", pct(own, 99) * 1000 < GOAL_MS, cmd, {"own_s": own},
    ))
    figures.append(Figure(
        BENCH, "gateway CPU per metered request", f"{data['cpu_per_turn_s'] * 1000:.2f} ms ({TOKENS} tokens each)", "-",
        None, cmd, {"cpu_per_turn_s": data["cpu_per_turn_s"]},
    ))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="rounds of 8 concurrent requests per way")
    parser.add_argument("--long", action="store_true", help="250 rounds")
    add_common_args(parser)
    args = parser.parse_args(argv)
    report(run(quick=not args.long, rounds=args.rounds), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
