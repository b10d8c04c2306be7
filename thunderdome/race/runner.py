"""Assemble and run one race: backends, emulator, mode, sinks.

Invariant: whoever starts a race (CLI headless, TUI, tests, benchmarks) goes
through ``run_race``, so every consumer sees the same event stream. The
emulator for ``sim`` lanes is started here (in its own process by default, so
it shares no event loop and no GIL with the race) and stopped afterwards.
"""

from __future__ import annotations

import asyncio
from typing import Any

from thunderdome.core.errors import ThunderdomeError
from thunderdome.core.events import Event
from thunderdome.core.metrics import Standings
from thunderdome.race.engine import LongRace, Race, RaceMode, Sink
from thunderdome.core.specs import BackendSpec, TaskSpec


class RaceSetupError(ThunderdomeError):
    """The race could not run at all (exit code 1); one-line message."""


def mode_for(task: TaskSpec, *, isolation: str | None = None, seed: int | None = None) -> RaceMode:
    """The race mode a task needs."""
    if task.kind == "long":
        return LongRace()
    if task.win_rule == "last_standing":
        from thunderdome.race.arena import LastStandingRace

        return LastStandingRace(isolation=isolation, seed=seed)
    from thunderdome.race.agent import FirstCorrectRace

    return FirstCorrectRace(isolation=isolation, seed=seed)


def _with_agents(task: TaskSpec, mode: RaceMode, seed: int | None) -> RaceMode:
    """The mode that runs agent lanes' programs around ``mode``: in its
    sandbox (``agents/lane.py``), or as a fighter in the arena (``agents/fight.py``)."""
    if task.kind != "thunderdome":
        raise RaceSetupError(f"agent lanes race Thunderdome tasks (first_correct or last_standing); "
                             f"{task.name!r} is not one")
    if task.win_rule == "last_standing":
        from thunderdome.agents.fight import AgentFight
        from thunderdome.race.arena import LastStandingRace

        assert isinstance(mode, LastStandingRace)
        return AgentFight(mode, seed)
    from thunderdome.agents.lane import AgentLanes

    return AgentLanes(mode, seed)


def needs_emulator(specs: list[BackendSpec]) -> bool:
    return any(spec.kind == "sim" for spec in specs)


async def run_race(
    task: TaskSpec,
    specs: list[BackendSpec],
    sinks: list[Sink] | None = None,
    *,
    sim_url: str | None = None,
    emulator: str = "process",
    time_scale: float = 1.0,
    max_tokens: int | None = None,
    isolation: str | None = None,
    seed: int | None = None,
    standings: Standings | None = None,
) -> Standings:
    """Run ``task`` on ``specs``; events go to ``sinks``. ``emulator``:
    ``process`` (default) or ``thread`` for where sim lanes are served when no
    ``sim_url`` is given. ``time_scale`` speeds up sim lanes (tests)."""
    from thunderdome.backends import make_backend

    handle: Any = None
    if needs_emulator(specs) and sim_url is None:
        from thunderdome.sim.launch import spawn_emulator_process, start_emulator_thread

        start = start_emulator_thread if emulator == "thread" else spawn_emulator_process
        try:
            handle = await asyncio.to_thread(start, time_scale=time_scale)
        except Exception as exc:
            raise RaceSetupError(f"the built-in emulator did not start: {exc}") from exc
        sim_url = handle.url
    _warm_imports()
    try:
        directive: dict[str, Any] = {}
        if time_scale != 1.0 and handle is None:
            directive["time_scale"] = time_scale
        lanes: list[tuple[BackendSpec, Any]] = []
        for spec in specs:
            try:
                backend = make_backend(spec, sim_url=sim_url, sim_directive=dict(directive) if spec.kind == "sim" else None)
            except Exception as exc:  # e.g. a url httpx2 cannot parse: one line, not a traceback
                for _, made in lanes:
                    await made.aclose()
                raise RaceSetupError(f"backend {spec.name!r} ({spec.url or spec.kind}): {exc}") from None
            lanes.append((spec, backend))
        await warm_up(backend for _, backend in lanes)
        mode = mode_for(task, isolation=isolation, seed=seed)
        if any(spec.program for spec in specs):
            mode = _with_agents(task, mode, seed)
        race = Race(task, lanes, mode, sinks, max_tokens=max_tokens, standings=standings, time_scale=time_scale)
        return await race.run()
    finally:
        if handle is not None:
            await asyncio.to_thread(handle.stop)


async def warm_up(backends: Any, timeout: float = 2.0) -> None:
    """Open every lane's connection before the start barrier, together, so
    no lane's TTFT or completion time pays for a TCP/TLS handshake the others
    skipped (an agent keeps its connection open). Best effort, time-boxed."""
    calls = [b.warm_up(timeout) for b in backends if hasattr(b, "warm_up")]
    if calls:
        await asyncio.gather(*calls, return_exceptions=True)


def _warm_imports() -> None:
    """httpx2 imports its async I/O layer on the first request; do it before the
    start barrier so the first lane's start doesn't delay the others."""
    try:
        import anyio._backends._asyncio  # noqa: F401
        import httpcore2  # noqa: F401
    except ImportError:  # pragma: no cover - a different HTTP stack
        pass


def collect(events: list[Event]) -> Sink:
    """A sink that keeps every event in ``events`` (tests, small races)."""
    return events.append
