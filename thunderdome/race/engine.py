"""The race engine: starts lanes together and turns what they do into events.

Invariant: the engine never raises through the race because of one lane. A
lane that fails ends with a ``LaneFailed`` event; the others go on. Every event
is handed, in order, to each sink (the standings reducer, the recorder, a UI
queue); sinks must be cheap and must not raise.

Lanes start behind a barrier: backends are built and connected first, then
``t = 0`` is taken and every lane is released at once; each lane's start skew
(the gap between the barrier opening and the lane running) is recorded.

The win is called when it happens: after every lane end the mode is asked
for a winner it is certain of, and the first answer is emitted at once as
``WinnerDecided``; then, in a Thunderdome race (unless its task sets
``race_on``), every lane still working is stopped with ``LaneStopped``
("race won by X"), keeping its figures. Long races race on for places
(their throughput is the point). ``RaceFinished`` still comes when every
lane has ended, and names the same winner.

How a lane runs depends on the task: a ``RaceMode`` (long generation here;
the Thunderdome win rules live in ``race/agent.py`` and ``race/arena.py``,
both on the one turn loop of ``race/turns.py``) decides what each lane does
and when the race is over. Every mode reads a reply with
``race/reply.read_reply`` (linear per delta, size-limited).
"""

from __future__ import annotations

import asyncio
import gc
import re
import datetime as _dt
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from thunderdome.backends.base import Backend, BackendError, ChatRequest
from thunderdome.core.events import (
    Event,
    LaneFailed,
    LaneEvent,
    LaneFinished,
    LaneStarted,
    LANE_END_TYPES,
    LaneStopped,
    Notice,
    RaceFinished,
    RaceStarted,
    WinnerDecided,
)
from thunderdome.core.metrics import Standings, long_race_winner
from thunderdome.race.reply import cut_reason, finish_note, read_reply
from thunderdome.core.specs import BackendSpec, TaskSpec

Sink = Callable[[Event], None]


def freeze_heap() -> None:
    """At a race's start: collect once, then keep everything alive now
    (imported modules, backends, sandboxes, gateways) out of the garbage
    collector's scans (``gc.freeze``; the race thaws it with ``gc.unfreeze``
    as it finishes). A full collection during the race then scans only what
    the race made, so it does not stop the loop for tens of milliseconds:
    in ``benchmarks/gateway_overhead.py`` (whose gateways run as a race's
    do) full collections over the start-up heap took 17-37 ms, each one
    delaying every lane's bytes. Refcounting frees objects as ever."""
    gc.collect()
    gc.freeze()


@dataclass
class Lane:
    """One runner in the race: its spec, its backend client, its state."""

    spec: BackendSpec
    backend: Backend
    index: int
    ended: bool = False
    task: asyncio.Task | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    """Per-lane prompt fields (e.g. own PID, opponents' PIDs)."""
    turn: int = 0
    """The turn the lane is on (0 before its first request)."""

    @property
    def name(self) -> str:
        return self.spec.name


class RaceMode(Protocol):
    """What a task kind does. ``isolation`` is reported in RaceStarted."""

    isolation: str

    async def prepare(self, race: "Race") -> None:
        """Before the barrier: sandboxes, arenas, per-lane vars."""

    async def run_lane(self, race: "Race", lane: Lane) -> None:
        """Run one lane to its end; must end it with ``race.end_lane``."""

    def winner(self, race: "Race") -> str | None:
        """The winner, once it is certain (no lane still running can beat
        it); None until then. Asked after every lane end, and at the finish."""

    async def close(self, race: "Race") -> None: ...


class Race:
    """One race: a task, its lanes, its sinks. ``await race.run()``."""

    def __init__(
        self,
        task: TaskSpec,
        lanes: list[tuple[BackendSpec, Backend]],
        mode: RaceMode,
        sinks: list[Sink] | None = None,
        *,
        max_tokens: int | None = None,
        standings: Standings | None = None,
        time_scale: float = 1.0,
    ) -> None:
        self.task = task
        self.mode = mode
        self.lanes = [Lane(spec, backend, i) for i, (spec, backend) in enumerate(lanes)]
        self.sinks: list[Sink] = list(sinks or [])
        self.standings = standings if standings is not None else Standings()
        self.sinks.insert(0, self.standings.apply)
        self.max_tokens = max_tokens or task.max_tokens
        self.time_scale = time_scale
        """What sim lanes' delays are multiplied by (reported in RaceStarted)."""
        self.t0: float | None = None
        self.finished = False
        self._frozen = False
        """The heap as it was at the start is out of the collector's scans (``_quiet_collector``)."""
        self.winner: str | None = None
        """Called the moment the mode is certain of it (``WinnerDecided``)."""
        self.stop_on_win = task.kind == "thunderdome" and not task.race_on
        """Stop the other lanes once the winner is called (Thunderdome, unless
        the task races on for places; long races always race on)."""
        self._call_due = False
        """A lane finished and no winner is called yet: ask again after each event."""
        self._all_ended = asyncio.Event()

    # -- clock and events ------------------------------------------------------------

    def clock(self) -> float:
        """Seconds since the start barrier opened (monotonic)."""
        assert self.t0 is not None, "clock read before the barrier"
        return time.monotonic() - self.t0

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink(event)
        if self._call_due:  # e.g. a long race's first finisher waits on a lane's next token
            self._call_winner()

    def lane(self, name: str) -> Lane:
        for lane in self.lanes:
            if lane.name == name:
                return lane
        raise KeyError(name)

    def alive(self) -> list[Lane]:
        return [lane for lane in self.lanes if not lane.ended]

    def end_lane(self, lane: Lane, event: LaneEvent) -> None:
        """Emit the lane's one ending event; later calls are ignored."""
        if lane.ended:
            return
        assert isinstance(event, LANE_END_TYPES)
        lane.ended = True
        self._call_due = self._call_due or (isinstance(event, LaneFinished) and self.winner is None)
        self.emit(event)
        if not self.alive():
            self._all_ended.set()

    def _call_winner(self) -> None:
        """Emit ``WinnerDecided`` once the mode is certain of the winner; then
        stop the lanes still working unless the race goes on for places."""
        if self.winner is not None or self.finished:
            self._call_due = False
            return
        name = self.mode.winner(self)
        if name is None:
            return
        self.winner, self._call_due = name, False
        self.emit(WinnerDecided(t=self.clock(), winner=name))
        if self.stop_on_win:
            for lane in self.alive():
                self.end_lane(lane, LaneStopped(t=self.clock(), lane=lane.name, reason=f"race won by {name}"))
                self.cancel_lane(lane)

    def cancel_lane(self, lane: Lane) -> None:
        """Stop a lane's work (its ending event must already be emitted)."""
        task = lane.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    # -- running ---------------------------------------------------------------------

    async def run(self) -> Standings:
        """Run the race to its end and return the standings."""
        try:
            await self.mode.prepare(self)
        except (Exception, asyncio.CancelledError) as exc:  # a race that cannot start is still an event stream
            interrupted = isinstance(exc, asyncio.CancelledError)
            reason = "race interrupted" if interrupted else f"race could not start: {exc}"
            self.t0 = time.monotonic()
            self._start_events()
            if not interrupted:
                self.emit(Notice(t=self.clock(), message=reason, level="error"))
            for lane in self.lanes:
                self.end_lane(lane, LaneFailed(t=self.clock(), lane=lane.name, reason=reason))
            self._finish("interrupted" if interrupted else "race could not start")
            await self._close()  # sandboxes / arena made before the failure or the interrupt
            if interrupted:
                raise
            return self.standings
        go = asyncio.Event()
        for lane in self.lanes:
            lane.task = asyncio.create_task(self._lane_main(lane, go), name=f"lane:{lane.name}")
        await asyncio.sleep(0)  # let every lane reach the barrier
        self._quiet_collector()
        self.t0 = time.monotonic()
        self._start_events()
        go.set()
        try:
            async with asyncio.timeout(self.task.timeout):
                await self._all_ended.wait()
        except TimeoutError:
            for lane in self.alive():
                self.end_lane(
                    lane,
                    LaneFailed(t=self.clock(), lane=lane.name, reason=f"race timeout: still running after {self.task.timeout:g} s"),
                )
                self.cancel_lane(lane)
        except asyncio.CancelledError:
            for lane in self.alive():
                self.end_lane(lane, LaneFailed(t=self.clock(), lane=lane.name, reason="race interrupted"))
                self.cancel_lane(lane)
            await self._drain_tasks()
            self._finish("interrupted")
            await self._close()
            raise
        await self._drain_tasks()
        self._finish("")
        await self._close()
        return self.standings

    def _quiet_collector(self) -> None:
        freeze_heap()
        self._frozen = True

    def _start_events(self) -> None:
        self.emit(
            RaceStarted(
                t=0.0,
                task=self.task.name,
                kind=self.task.kind,
                title=self.task.title,
                lanes=tuple(lane.spec.public_dict() for lane in self.lanes),
                started_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
                isolation=self.mode.isolation,
                win_rule=self.task.win_rule,
                max_tokens=self.max_tokens,
                expected_tokens=min(self.task.expected_tokens, self.max_tokens),
                time_scale=self.time_scale,
            )
        )

    async def _lane_main(self, lane: Lane, go: asyncio.Event) -> None:
        await go.wait()
        self.emit(LaneStarted(t=self.clock(), lane=lane.name, skew=self.clock()))
        try:
            await self.mode.run_lane(self, lane)
        except asyncio.CancelledError:
            if not lane.ended:
                self.end_lane(lane, LaneFailed(t=self.clock(), lane=lane.name, reason="cancelled"))
            raise
        except BackendError as exc:
            self.end_lane(lane, LaneFailed(t=self.clock(), lane=lane.name, reason=exc.reason))
        except Exception as exc:  # a bug in one lane must not stop the others
            self.end_lane(
                lane,
                LaneFailed(t=self.clock(), lane=lane.name, reason=f"internal error: {type(exc).__name__}: {exc}"),
            )
        if not lane.ended:
            self.end_lane(lane, LaneFinished(t=self.clock(), lane=lane.name, reason="done"))

    async def _drain_tasks(self) -> None:
        tasks = [lane.task for lane in self.lanes if lane.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _finish(self, reason: str) -> None:
        if self._frozen:
            gc.unfreeze()  # the heap of the start is the collector's again
            self._frozen = False
        if self.finished:
            return
        if self.winner is None and not reason:
            self.winner = self.mode.winner(self)
        self.finished = True  # a winner called before an interrupt stays the winner
        self.emit(RaceFinished(t=self.clock(), winner=self.winner, reason=reason))

    async def _close(self) -> None:
        try:
            await self.mode.close(self)
        finally:
            for lane in self.lanes:
                try:
                    await lane.backend.aclose()
                except Exception:  # closing a broken connection is not news
                    pass


class LongRace:
    """Long generation: every lane writes one long answer; first to finish
    wins, and the others race on for places."""

    isolation = "none"

    async def prepare(self, race: Race) -> None:
        return None

    async def run_lane(self, race: Race, lane: Lane) -> None:
        request = ChatRequest(messages=build_messages(race.task, lane.vars), max_tokens=race.max_tokens, lane=lane.name)
        reply = await read_reply(race, lane, request)
        if lane.ended:
            return
        cut = cut_reason(race, lane, reply)
        if cut:
            race.end_lane(lane, LaneFailed(t=race.clock(), lane=lane.name, reason=cut))
            return
        assert reply.ended is not None
        race.end_lane(lane, LaneFinished(t=race.clock(), lane=lane.name, reason=finish_note(reply.ended)))

    def winner(self, race: Race) -> str | None:
        """The first lane to finish cleanly (by its last token), once every
        lane still running has a token after that one (or none yet): none of
        them can have finished earlier."""
        name = long_race_winner(race.standings)
        if name is None:
            return None
        lanes = race.standings.lanes
        finish = lanes[name].totals().last_token_t
        for lane in race.alive():
            last = lanes[lane.name].totals().last_token_t if lane.name in lanes else None
            if last is not None and finish is not None and last <= finish:
                return None
        return name

    async def close(self, race: Race) -> None:
        return None


_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render_prompt(template: str, values: dict[str, Any]) -> str:
    """Fill plain ``{name}`` fields from ``values``; anything else in braces
    (unknown names, shell braces, format specs such as ``{lane:>3000000000}``)
    is left exactly as written, so a template can never allocate or reach
    more than its values."""
    return _FIELD.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


def build_messages(task: TaskSpec, values: dict[str, Any]) -> list[dict[str, str]]:
    messages = []
    if task.system:
        messages.append({"role": "system", "content": render_prompt(task.system, values)})
    messages.append({"role": "user", "content": render_prompt(task.user, values)})
    return messages
