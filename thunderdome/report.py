"""Headless reporting: a live rich table while a race runs, a summary after.

Invariant: the reporter only reads a ``Standings`` reducer (fed by the same
event stream as the TUI and the recorder); it never touches the network or
the clock of the race. The live table refreshes at a modest fixed rate so it
costs the race's event loop almost nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from thunderdome.metrics import LaneStats, Standings

STATUS_STYLE = {
    "winner": "bold black on green",
    "finished": "green",
    "streaming": "cyan",
    "thinking": "magenta",
    "executing": "yellow",
    "waiting": "dim",
    "eliminated": "red",
    "error": "bold red",
}

LIVE_HZ = 8.0
"""Headless refresh rate: smooth enough to watch, cheap enough not to matter."""


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "—" if value is None else format(value, fmt) + unit


def standings_table(standings: Standings, now: float | None, *, final: bool = False) -> Table:
    """The leaderboard as a rich table (live or final)."""
    title = f"{standings.task} · {standings.kind}"
    if standings.win_rule:
        title += f" · {standings.win_rule}"
    table = Table(title=title, title_style="bold", expand=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("lane")
    table.add_column("model", overflow="fold")
    table.add_column("status")
    table.add_column("TTFT", justify="right")
    table.add_column("TTFA", justify="right")
    table.add_column("e2e", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("tok/s", justify="right")
    table.add_column("server", justify="right")
    table.add_column("ITL p50/p99", justify="right")
    if standings.kind == "thunderdome":
        table.add_column("completion", justify="right")
    table.add_column("note", overflow="fold", max_width=48)
    ranked = standings.ranked(now)
    for s in ranked:
        lane = standings.lanes[s.name]
        tokens = lane.live_tokens if not final else s.tokens
        token_text = f"{tokens}" + ("*" if s.tokens_source == "estimate" and (final or lane.ended) else "")
        row: list[Any] = [
            str(s.rank),
            Text(s.name, style="bold"),
            Text(s.model),
            Text(s.status.upper(), style=STATUS_STYLE.get(s.status, "")),
            _num(s.ttft_s, ".3f", " s"),
            _num(s.ttfa_s, ".3f", " s"),
            _num(s.e2e_s, ".2f", " s"),
            token_text,
            _num(s.output_tps, ".1f"),
            _num(s.server_tps, ".1f"),
            f"{_num(s.itl_p50_ms, '.1f')}/{_num(s.itl_p99_ms, '.1f')} ms",
        ]
        if standings.kind == "thunderdome":
            row.append(_num(s.completion_s, ".3f", " s"))
        row.append(Text(_note(s, standings, now, final)))
        table.add_row(*row)
    return table


def _note(s: LaneStats, standings: Standings, now: float | None, final: bool) -> str:
    if s.error:
        return s.error
    if s.status == "eliminated":
        lane = standings.lanes[s.name]
        return lane.reason or (f"killed by {s.eliminated_by}" if s.eliminated_by else "eliminated")
    if standings.kind == "thunderdome":
        lane = standings.lanes[s.name]
        if lane.last_command:
            return f"$ {lane.last_command.splitlines()[0][:40]}" + (f" → exit {lane.last_exit}" if lane.last_exit is not None else "")
        return s.verdict
    if not final and now is not None and s.status not in ("finished", "winner"):
        proj = standings.projected_finish(standings.lanes[s.name], now)
        if proj is not None:
            return f"ETA {proj:.1f} s"
    if s.finish_reason and s.finish_reason != "stop":
        return f"finish: {s.finish_reason}"
    return ""


def summary(standings: Standings, recording: str | None = None) -> Group:
    """Final table plus the winner line."""
    parts: list[Any] = [standings_table(standings, standings.finished_t, final=True)]
    if standings.winner:
        s = next((x for x in standings.ranked() if x.name == standings.winner), None)
        detail = ""
        if s is not None:
            if standings.kind == "thunderdome" and s.completion_s is not None:
                detail = f" — completed in {s.completion_s:.3f} s"
            elif s.e2e_s is not None:
                detail = f" — finished in {s.e2e_s:.2f} s"
        parts.append(Text(f"🏆 winner: {standings.winner}{detail}", style="bold green"))
    else:
        parts.append(Text("no winner", style="bold yellow"))
    if standings.isolation not in ("bwrap", "none"):
        parts.append(Text(f"⚠ sandbox isolation: {standings.isolation} (bubblewrap unavailable)", style="bold yellow"))
    if any(s.tokens_source == "estimate" and s.tokens for s in standings.ranked()):
        parts.append(Text("* tokens estimated from delta count (server sent no usage)", style="dim"))
    if recording:
        parts.append(Text(f"recording: {recording}", style="dim"))
    return Group(*parts)


class LiveReporter:
    """Shows the standings live on ``console`` while the race runs."""

    def __init__(self, standings: Standings, console: Console, clock) -> None:
        self.standings = standings
        self.console = console
        self.clock = clock
        self._task: asyncio.Task | None = None
        self._live: Live | None = None

    def _render(self) -> Table:
        return standings_table(self.standings, self.clock())

    async def _loop(self) -> None:
        assert self._live is not None
        while True:
            await asyncio.sleep(1.0 / LIVE_HZ)
            self._live.update(self._render())

    def start(self) -> None:
        if not self.console.is_terminal:
            return
        self._live = Live(self._render(), console=self.console, auto_refresh=False, transient=True)
        self._live.start()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._live is not None:
            self._live.stop()


class RaceClock:
    """Race-clock reader for the reporter: seconds since the first event seen."""

    def __init__(self) -> None:
        self.t0: float | None = None

    def sink(self, event) -> None:
        if self.t0 is None:
            self.t0 = time.monotonic() - event.t

    def __call__(self) -> float:
        return 0.0 if self.t0 is None else time.monotonic() - self.t0
