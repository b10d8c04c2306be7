"""The clients whose first-token stamps ttft_fidelity compares with the emulator's log.

Invariant: every variant runs the same streams (``StreamPlan``) against the
same emulator and returns ``{tag: first-token stamp}`` on CLOCK_MONOTONIC,
stamped at the moment the first content byte was in the client's hands; a
lane that failed or saw no content raises instead of returning a short list.
See ``ttft_fidelity`` for what each variant is.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from benchmarks.recording import temp_recorder
from thunderdome.backends.poll_stamps import run_on_race_loop
from thunderdome.sim.profiles import PROFILES

PROFILE = "instant"
MESSAGES = [{"role": "user", "content": "Write a long essay about time to first token."}]
_CONTENT = re.compile(rb'"content":"[^"]')


@dataclass(frozen=True)
class StreamPlan:
    """What every lane of one configuration streams."""

    lanes: int
    tps: float
    stagger_s: float = 0.023
    tail_s: float = 0.5
    """Seconds every lane keeps streaming after the last lane's first token."""
    record: bool = True
    """The race records its events (a ``Recorder`` sink writing JSONL to a
    temporary file, deleted afterwards), as every real race does."""

    @property
    def scale(self) -> float:
        return PROFILES[PROFILE].tps / self.tps

    @property
    def ttft_s(self) -> float:
        return PROFILES[PROFILE].ttft * self.scale

    @property
    def tokens(self) -> int:
        return max(50, int(self.tps * ((self.lanes - 1) * self.stagger_s + self.tail_s)))

    def directive(self, lane: int, seed: int) -> dict[str, Any]:
        d: dict[str, Any] = {"tokens": self.tokens, "time_scale": self.scale, "seed": seed}
        if lane and self.stagger_s:
            d["fault"] = "stall_before"
            d["stall_s"] = lane * self.stagger_s / self.scale
        return d

    def describe(self) -> str:
        return (
            f"{self.lanes} lanes x {self.tps:g} tok/s ({PROFILE} profile, time_scale {self.scale:g}: "
            f"TTFT {self.ttft_s * 1000:.0f} ms; {self.tokens} tokens; first tokens staggered by "
            f"{self.stagger_s * 1000:g} ms; recording {'on' if self.record else 'off'})"
        )

    def warm_up(self) -> "StreamPlan":
        """The short untimed round run before the trials (first-use costs)."""
        return StreamPlan(lanes=2, tps=self.tps, stagger_s=0.0, tail_s=0.05, record=self.record)


@dataclass
class Samples:
    """First-token errors (seconds) per variant, and the busy variants' frames."""

    errors: dict[str, list[float]] = field(default_factory=dict)
    busy: list[float] = field(default_factory=list)
    """Seconds of render work per frame actually done (busy variants)."""
    frames: list[float] = field(default_factory=list)
    """Frame periods actually achieved (busy variants)."""
    busy_fraction: dict[str, float] = field(default_factory=dict)
    """Per busy variant: render work / wall time of the main thread."""
    cpu: dict[str, list[float]] = field(default_factory=dict)
    """Per variant: [CPU seconds, wall seconds, tokens] over its trials
    (client side: this process plus a process-busy race child)."""

    def add(self, variant: str, values: list[float]) -> None:
        self.errors.setdefault(variant, []).extend(values)

    def merge_frames(self, variant: str, other: "Samples") -> None:
        self.busy_fraction[variant] = sum(other.busy) / max(sum(other.frames), 1e-9)


def _tag(variant: str, trial: int, lane: int) -> str:
    return f"ttft-{variant}-{trial}-{lane}-{uuid.uuid4().hex[:8]}"


# --- Thunderdome's engine -------------------------------------------------------------------


def build_race(url: str, plan: StreamPlan, variant: str, trial: int, sinks: list[Callable[[Any], None]]) -> tuple[Any, dict[str, str]]:
    """A long race with tagged sim lanes (what run_race builds, plus the tags)."""
    from thunderdome.backends import make_backend
    from thunderdome.race.engine import LongRace, Race
    from thunderdome.core.specs import BackendSpec, TaskSpec

    task = TaskSpec(name="ttft-fidelity", title="TTFT fidelity", kind="long", user=MESSAGES[0]["content"],
                    max_tokens=plan.tokens, timeout=120.0)
    lanes, tags = [], {}
    for i in range(plan.lanes):
        spec = BackendSpec(name=f"lane{i}", kind="sim", profile=PROFILE, model=PROFILE, protocol="openai")
        tags[spec.name] = _tag(variant, trial, i)
        backend = make_backend(spec, sim_url=url, sim_directive=plan.directive(i, trial * 100 + i),
                               headers={"x-thunderdome-tag": tags[spec.name]})
        lanes.append((spec, backend))
    return Race(task, lanes, LongRace(), sinks), tags


async def run_tagged_race(url: str, plan: StreamPlan, variant: str, trial: int,
                          sinks: list[Callable[[Any], None]]) -> tuple[Any, dict[str, str]]:
    """Build and run the tagged race on the running loop as ``run_race`` and
    its callers do: the HTTP stack imported and every lane's connection opened
    before the start barrier, and (``plan.record``) a ``Recorder`` as the
    first sink, started before and closed after."""
    from thunderdome.race.runner import _warm_imports, warm_up

    _warm_imports()
    async with temp_recorder(plan.record, prefix="ttft-record-") as recorder:
        race, tags = build_race(url, plan, variant, trial, [recorder, *sinks] if recorder else sinks)
        await warm_up(lane.backend for lane in race.lanes)
        await race.run()
    return race, tags


class FirstTokens:
    """A race sink that keeps each lane's first TokenDelta time and its first
    RequestSent time (race clock)."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.sent: dict[str, float] = {}
        self.errors: list[str] = []
        self.events = 0

    def __call__(self, event: Any) -> None:
        from thunderdome.core.events import LaneFailed, RequestSent, TokenDelta

        self.events += 1
        if isinstance(event, TokenDelta) and event.lane not in self.first:
            self.first[event.lane] = event.t
        elif isinstance(event, RequestSent) and event.lane not in self.sent:
            self.sent[event.lane] = event.t
        elif isinstance(event, LaneFailed):
            self.errors.append(f"{event.lane}: {event.reason}")


class Stamps(dict):
    """``{tag: first-token stamp}``; ``sent``: ``{tag: RequestSent stamp}``
    (CLOCK_MONOTONIC), compared with the emulator's ``t_received``."""

    sent: dict[str, float]


def _engine_stamps(race: Any, tags: dict[str, str], firsts: FirstTokens) -> dict[str, float]:
    if firsts.errors:
        raise RuntimeError("lane failed: " + "; ".join(firsts.errors))
    stamps = Stamps((tags[lane], race.t0 + t) for lane, t in firsts.first.items())
    stamps.sent = {tags[lane]: race.t0 + t for lane, t in firsts.sent.items()}
    return stamps


def engine_trial(url: str, plan: StreamPlan, trial: int) -> dict[str, float]:
    """The race on the main thread's loop, made as ``thunderdome race --headless`` makes it."""

    async def go() -> dict[str, float]:
        firsts = FirstTokens()
        race, tags = await run_tagged_race(url, plan, "engine", trial, [firsts])
        return _engine_stamps(race, tags, firsts)

    return run_on_race_loop(go())


# --- the race on its own thread, the main thread rendering --------------------------------


def _thread_source_class() -> Any:
    from thunderdome.sources.threaded import ThreadedSource

    class TaggedRaceSource(ThreadedSource):
        """A race on its own thread and loop (as LiveSource runs run_race)."""

        def __init__(self, url: str, plan: StreamPlan, trial: int) -> None:
            super().__init__()
            self.url, self.plan, self.trial = url, plan, trial
            self.race: Any = None
            self.tags: dict[str, str] = {}
            self.firsts = FirstTokens()

        async def _main(self, on_event: Callable[[Any], None]) -> None:
            self.race, self.tags = await run_tagged_race(self.url, self.plan, "thread", self.trial,
                                                         [self.firsts, on_event])

    return TaggedRaceSource


class BusyRenderer:
    """Rendering-like work on the calling thread: rich lays out and renders a
    table of lanes (name, tokens, text tail) to ANSI text, like a TUI frame."""

    def __init__(self, lanes: int) -> None:
        from rich.console import Console

        self.lanes = lanes
        self.buffer = io.StringIO()
        self.console = Console(file=self.buffer, width=200, force_terminal=True, color_system="truecolor")
        self.counts = [0] * lanes
        self.text = ["" for _ in range(lanes)]

    def fold(self, event: Any) -> None:
        from thunderdome.core.events import TokenDelta

        if isinstance(event, TokenDelta):
            i = int(event.lane[4:])
            self.counts[i] += 1
            self.text[i] = (self.text[i] + event.text)[-120:]

    def render_once(self) -> None:
        """One unit of work (~1 ms): lay out and render one lane's panel."""
        from rich.panel import Panel
        from rich.text import Text

        i = self._next = (getattr(self, "_next", -1) + 1) % self.lanes
        body = Text.assemble((f"lane{i} ", "bold #ff9f1c"), (f"{self.counts[i]} tokens ", "#2ec4f0"), self.text[i])
        self.console.print(Panel(body, title=f"lane{i}", width=100))
        self.buffer.seek(0)
        self.buffer.truncate()

    def frame(self, budget_s: float) -> float:
        start = time.perf_counter()
        while True:
            self.render_once()
            spent = time.perf_counter() - start
            if spent >= budget_s:
                return spent


def busy_loop(finished: Callable[[], bool], drain: Callable[[], None], wait: Callable[[float], None],
              renderer: BusyRenderer, busy_s: float, frame_s: float, samples: Samples) -> None:
    """The main thread's life while a race runs elsewhere: drain the events,
    render for ``busy_s``, wait out the rest of the ``frame_s`` frame."""
    next_frame = time.perf_counter()
    last = next_frame
    while not finished():
        drain()
        samples.busy.append(renderer.frame(busy_s))
        next_frame += frame_s
        pause = next_frame - time.perf_counter()
        if pause > 0:
            wait(pause)
        else:
            next_frame = time.perf_counter()
        now = time.perf_counter()
        samples.frames.append(now - last)
        last = now
    drain()


def thread_busy_trial(url: str, plan: StreamPlan, trial: int, busy_s: float, frame_s: float, samples: Samples) -> dict[str, float]:
    source = _thread_source_class()(url, plan, trial)
    queue: deque[Any] = deque()
    renderer = BusyRenderer(plan.lanes)
    renderer.frame(0.0)  # rich's first render imports and caches; not part of a frame

    def drain() -> None:
        while queue:
            renderer.fold(queue.popleft())

    source.start(queue.append)
    busy_loop(source.done.is_set, drain, source.done.wait, renderer, busy_s, frame_s, samples)
    source.stop()
    if source.error:
        raise RuntimeError(f"threaded race failed: {source.error}")
    return _engine_stamps(source.race, source.tags, source.firsts)


def _process_main(url: str, plan: StreamPlan, trial: int, conn: Any) -> None:
    """Child process: run the race, send every event, then the stamps."""

    async def go() -> dict[str, float]:
        firsts = FirstTokens()
        race, tags = await run_tagged_race(url, plan, "process", trial, [firsts, conn.send])
        return _engine_stamps(race, tags, firsts)

    try:
        conn.send(("done", run_on_race_loop(go())))
    except Exception as exc:  # reported by the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def process_busy_trial(url: str, plan: StreamPlan, trial: int, busy_s: float, frame_s: float, samples: Samples) -> dict[str, float]:
    """The race in a child process (events over a pipe), the main process rendering."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_process_main, args=(url, plan, trial, send), daemon=True)
    renderer = BusyRenderer(plan.lanes)
    renderer.frame(0.0)
    proc.start()
    send.close()
    box: dict[str, Any] = {}

    def drain() -> None:
        try:
            while "result" not in box and recv.poll():
                msg = recv.recv()
                if isinstance(msg, tuple):
                    box["result"] = msg
                else:
                    renderer.fold(msg)
        except EOFError:
            box.setdefault("result", ("error", "the race process died"))

    busy_loop(lambda: "result" in box, drain, lambda s: recv.poll(s), renderer, busy_s, frame_s, samples)
    proc.join(10)
    kind, value = box["result"]
    if kind != "done":
        raise RuntimeError(f"race process failed: {value}")
    return value


# --- bare HTTP loops and the official client -----------------------------------------------


def _body(plan: StreamPlan, lane: int, trial: int) -> dict[str, Any]:
    return {
        "model": PROFILE,
        "messages": MESSAGES,
        "max_tokens": plan.tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "thunderdome_sim": plan.directive(lane, trial * 100 + lane),
    }


BARE_LIBRARIES = ("httpx2", "httpx")
"""The HTTP libraries a bare loop can run on (the backends use the first)."""


async def bare_trial(library: str, url: str, plan: StreamPlan, trial: int) -> dict[str, float]:
    """A bare loop on ``library`` (``httpx2`` or ``httpx``, the same API):
    ``AsyncClient.stream`` + ``aiter_raw``, stamping the first chunk with content."""
    import importlib

    http = importlib.import_module(library)
    clients = [http.AsyncClient(timeout=60.0, trust_env=False) for _ in range(plan.lanes)]

    async def lane(i: int) -> tuple[str, float | None]:
        tag = _tag(library, trial, i)
        first = None
        async with clients[i].stream("POST", f"{url}/v1/chat/completions", json=_body(plan, i, trial),
                                     headers={"x-thunderdome-tag": tag}) as resp:
            async for chunk in resp.aiter_raw():
                t = time.monotonic()
                if first is None and _CONTENT.search(chunk):
                    first = t
        return tag, first

    try:
        got = await asyncio.gather(*(lane(i) for i in range(plan.lanes)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return _stamps(got)


THREADED_BARE = "http.client"
"""The bare client the issue holds the engine to: one thread per lane, each
on its own ``http.client`` connection."""


def threaded_bare_trial(url: str, plan: StreamPlan, trial: int) -> dict[str, float]:
    """One thread per lane, a blocking ``http.client`` connection each (opened
    before the lanes start together, as the engine's are), stamping the first
    ``read1`` whose bytes hold content."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conns = [http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60) for _ in range(plan.lanes)]
    for conn in conns:
        conn.connect()
    start = threading.Barrier(plan.lanes)
    got: list[tuple[str, float | None]] = [("", None)] * plan.lanes

    def lane(i: int) -> None:
        tag = _tag(THREADED_BARE, trial, i)
        body = json.dumps(_body(plan, i, trial)).encode()
        start.wait()
        conns[i].request("POST", f"{parts.path}/v1/chat/completions", body=body,
                         headers={"content-type": "application/json", "x-thunderdome-tag": tag})
        resp = conns[i].getresponse()
        first = None
        while True:
            chunk = resp.read1(65536)
            t = time.monotonic()
            if not chunk:
                break
            if first is None and _CONTENT.search(chunk):
                first = t
        got[i] = (tag, first)

    threads = [threading.Thread(target=lane, args=(i,), daemon=True) for i in range(plan.lanes)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        for conn in conns:
            conn.close()
    return _stamps(got)


async def openai_trial(url: str, plan: StreamPlan, trial: int) -> dict[str, float]:
    import openai

    clients = [openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="benchmark", max_retries=0) for _ in range(plan.lanes)]

    async def lane(i: int) -> tuple[str, float | None]:
        tag = _tag("openai", trial, i)
        first = None
        stream = await clients[i].chat.completions.create(
            model=PROFILE,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=plan.tokens,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"thunderdome_sim": plan.directive(i, trial * 100 + i)},
            extra_headers={"x-thunderdome-tag": tag},
        )
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.monotonic()
        return tag, first

    try:
        got = await asyncio.gather(*(lane(i) for i in range(plan.lanes)))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return _stamps(got)


def _stamps(got: list[tuple[str, float | None]]) -> dict[str, float]:
    missing = [tag for tag, t in got if t is None]
    if missing:
        raise RuntimeError(f"no content chunk seen for {missing}")
    return {tag: t for tag, t in got if t is not None}
