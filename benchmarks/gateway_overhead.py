"""Gateway overhead: what the metering gateway adds to the TTFT an agent sees, at 8 lanes.

Invariant: the same requests (OpenAI chat, streamed, ``instant`` profile, 20
tokens) go to the same emulator process three ways, interleaved round by
round on one schedule: to the emulator directly, through each lane's gateway
on loopback TCP, and the way an agent lane's program reaches it: from inside
its own bwrap sandbox (``AGENT_LIMITS``, its own network namespace) through
its door (``gateway/door.py``: the sandbox's ``127.0.0.1:4010``, handed to the
gateway, which accepts on it itself). Each lane is its own process, as real
agents are (``benchmarks/gateway_agent.py``; one kept-alive connection per
way); the lanes of a way (8, or ``--lanes``) are in flight together. The gateways run in this
process, one per lane, metering into a ``Standings`` and a real ``Recorder``
as in a recorded race. Each request's *transport time* is what the client
waited beyond the emulator's own work: (emulator arrival - client send) +
(client's first content byte - emulator's first token send), all on
CLOCK_MONOTONIC (the emulator logs its stamps, the request tag matches
them), so the emulator's own jitter cancels out. The figure is the p99 (and
p50) of transport time through the gateway minus the same direct. The
gateways run on the race's own event loop (``RaceLoop``), and the heap is
frozen at the start (``race.engine.freeze_heap``), as in a race. A
fourth way is the floor any relay on that loop can reach: a bare byte
relay (``BareRelay``: no parsing, no metering, each segment passed on in
the callback that read it) on the same loop, reached on loopback TCP like
the second way; ``--floor WHERE`` runs those relays elsewhere instead, to
learn what a gateway built another way could reach (``FLOORS``: in threads
of this process, in one process of their own, in a Python process a lane,
or in C: socat, with no Python in it at all). The
gateway's own work on that path
(``Relayed.forward_s``: request read to sent upstream, plus ``relay_s``: the
reply's first chunk in to written out) is reported beside it, and this
process's CPU time per metered request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Figure, add_common_args, command, log, pct, report
from benchmarks.recording import RECORD_HELP, temp_recorder

BENCH = "gateway_overhead"
LANES = 8
TOKENS = 20
DIRECTIVE = {"tokens": TOKENS, "seed": 1}
BODY = {"model": "instant", "stream": True, "max_tokens": TOKENS, "messages": [{"role": "user", "content": "Say something."}]}
"""What each agent sends: the lane's model, so the gateway passes the bytes on as they are (as for a real agent)."""


def agent_body(kb: int) -> dict[str, Any]:
    """``BODY``, or with ``kb`` KiB of tool definitions as well (real agents send
    tens of KiB: their system prompt and tool schemas, every turn)."""
    if not kb:
        return BODY
    tool = {"type": "function", "function": {"name": "tool", "description": "d" * 900, "parameters": {
        "type": "object", "properties": {"command": {"type": "string", "description": "a shell command"}}}}}
    return {**BODY, "tools": [{**tool, "function": {**tool["function"], "name": f"tool{i}"}} for i in range(kb)]}
HEADERS = {"x-thunderdome-sim": json.dumps(DIRECTIVE)}
"""The directive for the direct way; through a gateway, the gateway puts the lane's own there."""
VARIANTS = ("direct", "gateway", "sandbox", "floor")
GOAL_MS = 1.0
FLOORS = {
    "loop": "on the race's loop",
    "threads": "in threads of the race's process (blocking sockets, two threads a connection)",
    "process": "in one process of its own",
    "processes": "in a Python process a lane",
    "native": "in C (socat, a process per connection)",
}
"""Where the floor's relays run (``--floor WHERE``)."""
WARM = 2
"""Rounds before the timed ones (first-use costs), metered but not counted."""
SLOT_S = 0.04
"""Each way's slot in a round: longer than 8 concurrent 20-token replies take."""
GO_S = 0.2
"""From every lane ready to the first slot."""
BENCH_DIR = "/opt/thunderdome-bench"
"""Where the agent script appears inside the sandboxes."""
_AGENT = Path(__file__).with_name("gateway_agent.py")


# --- the race side (this process) -----------------------------------------------------


class _BareLeg(asyncio.Protocol):
    """One side of a bare relay: every segment read is written to the other side at once."""

    def __init__(self, other: "_BareLeg | None" = None) -> None:
        self.other = other
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.other is not None:
            self.other.other = self
            for data in self.other.pending:
                transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.close()


class BareRelay:
    """The floor: each agent connection relayed to ``host:port`` byte for byte (the agent's connection opens its own upstream one)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.server: asyncio.AbstractServer | None = None

    async def listen(self) -> int:
        loop = asyncio.get_running_loop()

        def accepted() -> _BareLeg:
            agent = _BareLeg()
            loop.create_task(loop.create_connection(lambda: _BareLeg(agent), self.host, self.port))
            return agent

        self.server = await loop.create_server(accepted, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def serve_floors(host: str, port: int, lanes: int) -> None:
    """``--floor process`` (``processes``: one a lane): ``lanes`` bare relays on this process's own loop;
    their ports go out as one JSON line, and they serve until stdin closes."""

    async def serve() -> None:
        relays = [BareRelay(host, port) for _ in range(lanes)]
        print(json.dumps([await relay.listen() for relay in relays]), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for relay in relays:
            relay.close()

    asyncio.run(serve())


class ThreadRelay:
    """``--floor threads``: each agent connection relayed byte for byte by two
    blocking threads (one a direction), no event loop in the way: a socket
    call releases the GIL, so lanes relay side by side."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.server = socket.create_server(("127.0.0.1", 0))

    async def listen(self) -> int:
        threading.Thread(target=self._accept, daemon=True).start()
        return int(self.server.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                agent, _ = self.server.accept()
                upstream = socket.create_connection((self.host, self.port))
            except OSError:
                return
            for sock in (agent, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for src, dst in ((agent, upstream), (upstream, agent)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, which ends
        self.server.close()


async def _floor_process(host: str, port: int, lanes: int) -> tuple[asyncio.subprocess.Process, list[int]]:
    """The floors in a process of their own (the way a gateway out of the race process would run): it and their ports."""
    code = f"from benchmarks.gateway_overhead import serve_floors; serve_floors({host!r}, {port}, {lanes})"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=str(Path(__file__).parent.parent),
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the floor process ended ({await proc.wait()})")
    return proc, [int(p) for p in json.loads(line)]


async def _native_floors(host: str, port: int, lanes: int) -> tuple[list[asyncio.subprocess.Process], list[int]]:
    """``--floor native``: a ``socat`` relay a lane (C, a process per connection,
    ``TCP_NODELAY`` both ways): the floor with no Python in it at all."""
    socat = shutil.which("socat")
    if socat is None:
        raise RuntimeError("--floor native needs socat (apt-get install socat)")
    procs, ports = [], []
    try:
        for _ in range(lanes):
            with socket.socket() as probe:  # a free port for socat to listen on
                probe.bind(("127.0.0.1", 0))
                ports.append(probe.getsockname()[1])
            procs.append(await asyncio.create_subprocess_exec(
                socat, f"TCP-LISTEN:{ports[-1]},bind=127.0.0.1,reuseaddr,fork,nodelay", f"TCP:{host}:{port},nodelay",
                stdin=asyncio.subprocess.DEVNULL))
        for listening in ports:
            for _ in range(500):
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", listening)
                except OSError:
                    await asyncio.sleep(0.01)
                    continue
                writer.close()
                break
            else:
                raise RuntimeError(f"socat did not listen on {listening}")
    except BaseException:
        for proc in procs:
            proc.terminate()
            await proc.wait()
        raise
    return procs, ports


async def _start_when_ready(tasks: list[asyncio.Future[str]], ready: list[Path], go: Path) -> float:
    """Once every lane's agent is connected (its ``ready`` file), give them all
    one start time (the ``go`` file); a lane that ended before that raises."""
    while not all(path.exists() for path in ready):
        for task in tasks:
            if task.done():
                task.result()
                raise RuntimeError("a lane ended before the start")
        await asyncio.sleep(0.01)
    start = time.monotonic() + GO_S
    (go.parent / "go.tmp").write_text(repr(start))
    (go.parent / "go.tmp").rename(go)
    return start


async def _lane_process(spec: dict[str, Any], script: Path) -> str:
    """A lane's agent outside any sandbox (the direct and gateway ways): its output."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-I", str(script), json.dumps(spec),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"lane {spec['lane']} failed ({proc.returncode}): {err.decode().strip()[-300:]}")
    return out.decode()


async def _sandboxed(box: Any, spec: dict[str, Any], binds: tuple[Any, ...]) -> str:
    """A lane's agent as an agent lane runs: in its sandbox, its door opened first; its output."""
    from thunderdome.agents.lane import door_command

    line = f"{door_command()} && exec python3 -I {BENCH_DIR}/gateway_agent.py {shlex.quote(json.dumps(spec))}"
    res = await box.run(line, timeout=600, binds=binds)
    if res.exit_code != 0:
        raise RuntimeError(f"sandboxed lane {spec['lane']} failed ({res.exit_code}, {res.reason}): "
                           f"{res.stderr.strip()[-300:]}")
    return res.stdout


def _results(got: list[list[Any]], emulator_log: list[dict[str, Any]], start: float) -> dict[str, Any]:
    """Each way's transport and TTFT times (warm-up rounds left out), and how
    many requests went out after their round (the schedule slipped)."""
    by_tag = {r["id"]: r for r in emulator_log}
    transport: dict[str, list[float]] = {v: [] for v in VARIANTS}
    ttft: dict[str, list[float]] = {v: [] for v in VARIANTS}
    late = 0
    for variant, tag, sent, first in got:
        r = int(tag.split("-")[1])
        if r < WARM:
            continue
        rec = by_tag[tag]
        transport[variant].append((rec["t_arrival"] - sent) + (first - rec["t_first_token"]))
        ttft[variant].append(first - sent)
        late += sent > start + (r + 1) * len(VARIANTS) * SLOT_S
    return {"transport_s": transport, "ttft_s": ttft, "late": late}


async def _measure(rounds: int, record: bool, lanes: int, body_kb: int = 0, floor: str = "loop") -> dict[str, Any]:
    from thunderdome.agents.lane import AGENT_LIMITS, DOOR, DOOR_PORT, open_door
    from thunderdome.backends import make_backend
    from thunderdome.gateway import Gateway, Upstream
    from thunderdome.core.metrics import Standings
    from thunderdome.race.engine import freeze_heap
    from thunderdome.sandbox import Sandbox, detect_isolation
    from thunderdome.sandbox.isolation import Bind
    from thunderdome.sim.launch import spawn_emulator_process
    from thunderdome.core.specs import BackendSpec

    level = (await asyncio.to_thread(detect_isolation)).level
    if level != "bwrap":
        raise RuntimeError(f"the sandbox way needs bwrap, as agent lanes do (this machine gives {level})")
    emulator = await asyncio.to_thread(spawn_emulator_process)
    scratch = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    scratch.chmod(0o755)  # the sandboxes' own user reaches their doors in it
    standings = Standings()
    t0 = time.monotonic()
    gateways, backends, boxes, floors = [], [], [], []
    floor_procs: list[asyncio.subprocess.Process] = []
    outside_ports: list[int] = []
    if floor in ("process", "processes"):
        for _ in range(1 if floor == "process" else lanes):
            floor_proc, ports = await _floor_process(emulator.host, emulator.port, lanes if floor == "process" else 1)
            floor_procs.append(floor_proc)
            outside_ports += ports
    elif floor == "native":
        floor_procs, outside_ports = await _native_floors(emulator.host, emulator.port, lanes)
    try:
        async with temp_recorder(record, prefix="bench-gateway-") as recorder:
            sinks = [standings.apply] + ([recorder] if recorder is not None else [])

            def emit(event: Any) -> None:
                for sink in sinks:
                    sink(event)

            bench = scratch / "bench"  # the agent script and, once every lane is ready, the start time
            bench.mkdir(mode=0o755)
            shutil.copyfile(_AGENT, bench / _AGENT.name)
            common = {"order": list(VARIANTS), "rounds": rounds + WARM, "slot": SLOT_S, "body": agent_body(body_kb),
                      "headers": HEADERS}
            runs, ready = [], []
            for lane in range(lanes):
                spec = BackendSpec(name=f"lane{lane}", kind="sim", profile="instant", model="instant", protocol="openai")
                backends.append(make_backend(spec, sim_url=emulator.url))
                upstream = Upstream(backends[-1].base_url, {}, "instant", dict(DIRECTIVE), spec.timeouts)
                gateways.append(gateway := Gateway(spec.name, upstream, emit, lambda: time.monotonic() - t0))
                port = int((await gateway.listen_tcp()).rsplit(":", 1)[1])
                if floor in ("loop", "threads"):
                    floors.append(relay := (BareRelay if floor == "loop" else ThreadRelay)(emulator.host, emulator.port))
                    floor_port = await relay.listen()
                else:
                    floor_port = outside_ports[lane]
                boxes.append(box := Sandbox(limits=dataclasses.replace(AGENT_LIMITS, max_output=4_000_000)))
                (door := scratch / f"door{lane}").mkdir()
                open_door(door, gateway, box.uid)
                outside = {"direct": [emulator.host, emulator.port], "gateway": ["127.0.0.1", port],
                           "floor": ["127.0.0.1", floor_port]}
                ready += [scratch / f"ready{lane}", box.workdir / "ready"]
                runs.append(_lane_process({**common, "lane": lane, "ways": outside, "ready": str(ready[-2]),
                                           "go": str(bench / "go")}, bench / _AGENT.name))
                inside = {"sandbox": ["127.0.0.1", DOOR_PORT]}
                binds = (Bind(str(door), DOOR), Bind(str(bench), BENCH_DIR))
                runs.append(_sandboxed(box, {**common, "lane": lane, "ways": inside, "ready": "ready",
                                             "go": f"{BENCH_DIR}/go"}, binds))
            tasks = [asyncio.ensure_future(run) for run in runs]
            freeze_heap()  # as a race does at its start
            start = await _start_when_ready(tasks, ready, bench / "go")
            cpu = time.process_time()
            outputs = await asyncio.gather(*tasks)
            cpu = time.process_time() - cpu
        got = [row for out in outputs for row in json.loads(out)]
        data = _results(got, await asyncio.to_thread(emulator.fetch_log), start)
    finally:
        gc.unfreeze()
        for gateway in gateways:
            await gateway.aclose()
        for relay in floors:
            relay.close()
        for proc in floor_procs:
            if proc.stdin is not None:  # the Python floor process: it ends when its stdin closes
                proc.stdin.close()
            else:
                proc.terminate()
            await proc.wait()
        for backend in backends:
            await backend.aclose()
        for box in boxes:
            await box.close()
        await asyncio.to_thread(emulator.stop)
        shutil.rmtree(scratch, ignore_errors=True)
    metered = sum(gateway.turns for gateway in gateways)
    expected = (rounds + WARM) * lanes * 2  # the gateway and sandbox ways, warm-up rounds included
    if metered != expected:
        raise RuntimeError(f"the gateways metered {metered} turns, not {expected}")
    timed = [r for g in gateways for r in g.relayed[2 * WARM:] if r.forward_s is not None and r.relay_s is not None]
    data["own_s"] = [r.forward_s + r.relay_s for r in timed]  # type: ignore[operator]
    data["cpu_per_turn_s"] = cpu / (rounds * lanes * 2)
    data["metered_turns"] = metered
    return data


def run(*, quick: bool = True, rounds: int | None = None, record: bool = True, lanes: int = LANES,
        body_kb: int = 0, floor: str = "loop") -> list[Figure]:
    """The goal is judged at ``LANES`` lanes; other counts show how the figure
    grows with the processes sharing the machine's cores."""
    rounds = rounds or (40 if quick else 250)
    log(f"[gateway_overhead] {rounds} rounds x {lanes} lanes x {len(VARIANTS)} ways (direct, gateway, sandbox door)")
    from thunderdome.backends.poll_stamps import run_on_race_loop

    data = run_on_race_loop(_measure(rounds, record, lanes, body_kb, floor))
    log(f"[gateway_overhead] {data['metered_turns']} turns metered ({'recorded' if record else 'not recorded'}), "
        f"{data['late']} requests sent after their round")
    cmd = command(BENCH, ["--rounds", str(rounds)] + ([] if lanes == LANES else ["--lanes", str(lanes)])
                  + ([] if record else ["--no-record"]) + (["--body-kb", str(body_kb)] if body_kb else [])
                  + ([] if floor == "loop" else ["--floor", floor]))
    judged = lanes == LANES and not body_kb
    transport, ttft = data["transport_s"], data["ttft_s"]
    p99 = {v: pct(transport[v], 99) * 1000 for v in VARIANTS}
    p50 = {v: pct(transport[v], 50) * 1000 for v in VARIANTS}
    figures = [
        Figure(BENCH, "transport p50 / p99, direct", f"{p50['direct']:.2f} / {p99['direct']:.2f} ms", "-", None, cmd,
               {"transport_s": transport["direct"], "ttft_s": ttft["direct"]}),
    ]
    for variant, label in (("gateway", "gateway (loopback TCP)"), ("sandbox", "agent in its sandbox, through its door"),
                           ("floor", f"floor: a bare byte relay {FLOORS[floor]} (loopback TCP)")):
        added = p99[variant] - p99["direct"]
        figures.append(Figure(
            BENCH, f"TTFT added at p99, {label}", f"{added:+.2f} ms (p50 {p50[variant] - p50['direct']:+.2f} ms)",
            f"< {GOAL_MS:g} ms at {LANES} lanes" if judged and variant != "floor" else "-",
            added < GOAL_MS if judged and variant != "floor" else None, cmd,
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
    parser.add_argument("--rounds", type=int, default=None, help="rounds of concurrent requests (one a lane) per way")
    parser.add_argument("--lanes", type=int, default=LANES, help=f"lanes in flight together (the goal is judged at {LANES})")
    parser.add_argument("--long", action="store_true", help="250 rounds")
    parser.add_argument("--no-record", action="store_true", help=RECORD_HELP)
    parser.add_argument("--body-kb", type=int, default=0,
                        help="add this many KiB of tool definitions to each request, as real agents send (not judged)")
    parser.add_argument("--floor", choices=list(FLOORS), default="loop",
                        help="where the floor's bare relays run: " + "; ".join(f"{k}: {v}" for k, v in FLOORS.items()))
    parser.add_argument("--floor-process", action="store_const", dest="floor", const="process",
                        help="the same as --floor process (as earlier runs were given)")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.lanes < 1:
        parser.error("--lanes must be at least 1")
    if args.body_kb < 0:
        parser.error("--body-kb must be at least 0")
    report(run(quick=not args.long, rounds=args.rounds, record=not args.no_record, lanes=args.lanes,
               body_kb=args.body_kb, floor=args.floor),
           args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
