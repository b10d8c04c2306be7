"""Headless reporting: a live rich table while a race runs, a summary after.

Invariant: the reporter only reads a ``Standings`` reducer (fed by the same
event stream as the TUI and the recorder); it never touches the network or
the clock of the race. The live table refreshes at a modest fixed rate so it
costs the race's event loop almost nothing. Every string from outside (lane,
model and task names, errors, commands, verdicts, paths) reaches the console
through ``cell()``: redacted of known secrets, control characters made
visible, never parsed as Rich markup.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from thunderdome.core import figures
from thunderdome.core.events import NATURAL_ENDS
from thunderdome.output.fitted_table import Column, fitted_table
from thunderdome.core.lane_stats import CLIENT_LIMITED_NOTE
from thunderdome.core.metrics import LaneStats, Standings, client_limited, lane_stats
from thunderdome.core.redact import redact
from thunderdome.core.tool_figures import has_tool_figures, tool_line
from thunderdome.core.visible import visible_line

STATUS_STYLE = {
    "winner": "bold black on green",
    "finished": "green",
    "streaming": "cyan",
    "thinking": "magenta",
    "executing": "yellow",
    "waiting": "dim",
    "eliminated": "red",
    "error": "bold red",
    "stopped": "dim",
}

COMMAND_SHOWN = 60
"""Characters of a lane's last command in the note (cut with ``…``; the recording has it whole)."""
LIVE_HZ = 8.0
"""Headless refresh rate: smooth enough to watch, cheap enough not to matter."""


def cell(text: object, style: str = "", limit: int | None = None) -> Text:
    """Outside text for a console: redacted, then visible on one line, then cut; never markup."""
    return Text(visible_line(redact(str(text)), limit), style=style)


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "—" if value is None else format(value, fmt) + unit


NOTE_ROOM = 24
"""The note's least width: a reason wraps over lines of at least this many characters."""
JSON_HINT = " (a wider terminal, or --json, has them)"
"""Follows the list of columns a narrow console left out: where the figures are."""


def standings_table(standings: Standings, now: float | None, *, final: bool = False, width: int = 200) -> Table:
    """The leaderboard as a rich table (live or final) that fits ``width``
    (``fitted_table``): units live in the headers so cells stay narrow; the
    note wraps, never cut; on a narrow console the model, ITL, server speed
    and TTFA columns are left out first, and the caption says which. Every
    figure is ``thunderdome.core.figures``' text (as on every screen); ``done s``
    is the one the winner line says."""
    title = f"{standings.task} · {standings.kind}"
    if standings.win_rule:
        title += f" · {standings.win_rule}"
    if standings.time_scale != 1.0:
        title += f" · sim time ×{standings.time_scale:g}"
    ranked = standings.ranked(now)
    show_model = any(s.model and s.model != s.name for s in ranked)
    show_agent = any(s.program and s.program != s.name for s in ranked)
    thunderdome = standings.kind == "thunderdome"
    columns = [Column("#", "right"), Column("lane")]
    if show_model:
        columns.append(Column("model", keep=10))
    if show_agent:
        columns.append(Column("agent", keep=60))
    columns += [Column("status"), Column("TTFT s", "right", keep=90), Column("TTFA s", "right", keep=40),
                Column("e2e s", "right", keep=50 if thunderdome else 80), Column("tokens", "right", keep=70),
                Column("tok/s", "right", keep=85), Column("srv tok/s", "right", keep=30),
                Column("ITL p50/p99 ms", "right", keep=20), Column("done s", "right", keep=95),
                Column("note", wrap=True, room=NOTE_ROOM)]
    rows = []
    for s in ranked:
        lane = standings.lanes[s.name]
        tokens = lane.live_tokens if not final else s.tokens
        token_text = f"{tokens}" + ("*" if tokens and s.tokens_source == "estimate" and (final or lane.ended) else "")
        row: list[Any] = [str(s.rank), cell(s.name, "bold")]
        if show_model:
            row.append(cell(s.model))
        if show_agent:
            row.append(cell(s.program or "—"))
        row += [Text(s.status.upper(), style=STATUS_STYLE.get(s.status, "")), figures.seconds_digits(s.ttft_s),
                figures.seconds_digits(s.ttfa_s), figures.seconds_digits(s.e2e_s), token_text,
                figures.rate_digits(s.output_tps), figures.rate_digits(s.server_tps),
                f"{_num(s.itl_p50_ms, '.1f')}/{_num(s.itl_p99_ms, '.1f')}",
                figures.seconds_digits(figures.done_s(s, standings.kind)),
                cell(" ".join(_note(s, standings, now, final).split()))]
        rows.append(row)
    return fitted_table(columns, rows, width, title=cell(title), hint=JSON_HINT, pad_edge=False)


def _note(s: LaneStats, standings: Standings, now: float | None, final: bool) -> str:
    if s.error:
        return s.error
    if s.status in ("eliminated", "stopped"):
        lane = standings.lanes[s.name]
        return lane.reason or (f"killed by {s.eliminated_by}" if s.eliminated_by else s.status)
    if standings.kind == "thunderdome":
        lane = standings.lanes[s.name]
        if lane.last_command:
            lines = redact(lane.last_command).splitlines() or [""]  # redact, then cut (marked)
            command = visible_line(lines[0] + (" ⏎ …" if len(lines) > 1 else ""), COMMAND_SHOWN)
            return f"$ {command}" + (f" → exit {lane.last_exit}" if lane.last_exit is not None else "")
        return s.verdict
    if s.stalled_s is not None:
        return f"stalled {figures.silence_digits(s.stalled_s)} s"
    if not final and now is not None and s.status not in ("finished", "winner") and s.projected_t is not None:
        return f"ETA {figures.seconds(s.projected_t)}"
    unusual = f"finish: {s.finish_reason}" if s.finish_reason and s.finish_reason not in NATURAL_ENDS else ""
    if s.finish_reason is None and s.status in ("finished", "winner"):
        unusual = standings.lanes[s.name].reason  # a clean end that named no reason says so
    return " · ".join(part for part in (unusual, *s.figure_notes()) if part)


def summary(standings: Standings, recording: str | None = None, width: int = 200) -> Group:
    """Final table plus the winner line."""
    parts: list[Any] = [standings_table(standings, standings.finished_t, final=True, width=width)]
    if standings.winner:
        s = next((x for x in standings.ranked(standings.finished_t) if x.name == standings.winner), None)
        detail = "" if s is None else f" — {figures.winner_line(s, standings.kind)}"
        parts.append(cell(f"🏆 winner: {standings.winner}{detail}", "bold green"))
    elif not standings.finished:
        parts.append(Text(f"race unfinished: the events stop at {standings.last_t:.2f} s", style="bold yellow"))
    else:
        parts.append(Text("no winner", style="bold yellow"))
    if client_limited(standings.ranked(standings.finished_t)):
        parts.append(Text(f"⚠ {CLIENT_LIMITED_NOTE}", style="bold yellow"))
    for lane in standings.ranked(standings.finished_t):
        if has_tool_figures(lane):
            agent = f" ({lane.program})" if lane.program and lane.program != lane.name else ""
            parts.append(cell(f"⚒ {lane.name}{agent}: {tool_line(lane)}", limit=300))
    if any(s.tokens_source == "estimate" and s.tokens for s in standings.ranked()):
        parts.append(Text("* tokens estimated from delta count (server sent no usage, or a count its stream contradicts)", style="dim"))
    if recording:
        parts.append(cell(f"recording: {recording}", "dim"))
    return Group(*parts)


def warnings(standings: Standings) -> list[Text]:
    """What qualifies the results and belongs on stderr beside them (the sandbox's weaker isolation)."""
    if standings.isolation not in ("bwrap", "none"):
        return [cell(f"⚠ sandbox isolation: {standings.isolation} (bubblewrap unavailable)", "bold yellow")]
    return []


class LiveReporter:
    """Shows the race live on ``console`` while it runs: on a terminal a table
    redrawn at ``LIVE_HZ``; in a pipe or a file, a plain line per lane moment
    that matters (first token, finish, elimination, error), so a log shows
    the race as it happens."""

    def __init__(self, standings: Standings, console: Console, clock) -> None:
        self.standings = standings
        self.console = console
        self.clock = clock
        self._task: asyncio.Task | None = None
        self._live: Live | None = None
        self._told: dict[str, set[str]] = {}
        """Per lane, the moments already printed (pipe mode)."""

    def _render(self) -> Table:
        return standings_table(self.standings, self.clock(), width=self.console.width)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(1.0 / LIVE_HZ)
            if self._live is not None:
                self._live.update(self._render(), refresh=True)
            else:
                self._print_moments()

    def _print_moments(self) -> None:
        for name, lane in self.standings.lanes.items():
            told = self._told.setdefault(name, set())
            first = next((t.first_token_t for t in lane.turns if t.first_token_t is not None), None)
            if first is not None and "first" not in told:
                told.add("first")
                request = lane.turns[0].request_t if lane.turns else None
                ttft = f" (TTFT {figures.seconds(first - request)})" if request is not None else ""
                self._say(first, name, f"first token{ttft}")
            if lane.ended and "end" not in told:
                told.add("end")
                what = {"error": "error", "eliminated": "eliminated", "stopped": "stopped"}.get(lane.status, "finished")
                end_t = lane.end_t if lane.end_t is not None else self.clock()
                usual = lane.status not in ("error", "eliminated", "stopped") and lane.reason in ("stop", "end_turn", "")
                detail = "" if usual else f": {lane.reason}"
                self._say(end_t, name, f"{what}{detail} ({lane.tokens} tokens)")
            if name == self.standings.winner and "winner" not in told:
                told.add("winner")  # called the moment it happened, before the others end
                s = lane_stats(lane)
                done = figures.done_s(s, self.standings.kind)
                self._say(done if done is not None else self.clock(), name, f"★ winner: {figures.winner_line(s, self.standings.kind)}")

    def _say(self, t: float, lane: str, what: str) -> None:
        line = Text(f"{t:8.3f} s  ")
        line.append_text(cell(lane, "bold"))
        line.append("  ")
        line.append_text(cell(what, limit=300))
        self.console.print(line, soft_wrap=True)

    def start(self) -> None:
        if self.console.is_terminal:
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
        else:
            self._print_moments()  # the last moments, before the summary


class RaceClock:
    """Race-clock reader for the reporter: seconds since the first event seen."""

    def __init__(self) -> None:
        self.t0: float | None = None

    def sink(self, event) -> None:
        if self.t0 is None:
            self.t0 = time.monotonic() - event.t

    def __call__(self) -> float:
        return 0.0 if self.t0 is None else time.monotonic() - self.t0


def trials_table(summary: dict[str, Any], task: str, width: int = 200) -> Table:
    """Median (min–max) per lane over several trials, fitted to ``width``
    (the completion, then the e2e and speed columns are left out first, and
    the caption says so)."""
    columns = [Column("lane"), Column("wins", "right"), Column("TTFT s", "right"),
               Column("tok/s", "right", keep=60), Column("e2e s", "right", keep=50),
               Column("done s", "right", keep=40)]

    def spread(values: dict[str, float] | None, digits: Callable[[float | None], str]) -> str:
        if not values:
            return "—"
        return f"{digits(values['median'])} ({digits(values['min'])}–{digits(values['max'])})"

    rows = [
        [cell(lane["name"], "bold"), str(lane["wins"]), spread(lane["ttft_s"], figures.seconds_digits),
         spread(lane["output_tps"], figures.rate_digits), spread(lane["e2e_s"], figures.seconds_digits), spread(lane["completion_s"], figures.seconds_digits)]
        for lane in summary["lanes"]
    ]
    title = cell(f"{task} · {summary['trials']} trials · median (min–max)")
    table = fitted_table(columns, rows, width, title=title, hint=JSON_HINT)
    clarity = summary.get("clarity")
    if clarity:  # whether the winner is clear (``trials.winner_clarity``), as the TUI says it
        said = cell(clarity["text"], "bold")
        table.caption = said if table.caption is None else Text.assemble(said, "\n", table.caption)
    return table
