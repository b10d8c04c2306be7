"""The race screen: lanes, leaderboard, chart and clock, fed once per frame.

Invariant: the source thread only ever touches ``EventFeed.push`` (a deque
append); everything on screen changes in ``_frame()``, which runs on the UI
thread every ``FRAME_INTERVAL`` seconds, drains the queue, folds it into the
UI's own ``Standings`` and updates each widget at most once. Token timestamps
were taken on the race's thread before the events were queued, so a slow frame
can delay what is shown, never what is measured.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer

from thunderdome.events import Notice
from thunderdome.specs import BackendSpec, TaskSpec
from thunderdome.tui import gc_policy
from thunderdome.tui.feed import EventFeed
from thunderdome.tui.palette import DIM, lane_color
from thunderdome.tui.ranking import LiveRanking
from thunderdome.tui.widgets.banner import RaceBanner
from thunderdome.tui.widgets.chart import Line, TokenChart
from thunderdome.tui.widgets.lane import LaneSnapshot, LaneView
from thunderdome.tui.widgets.leaderboard import Leaderboard

if TYPE_CHECKING:
    from thunderdome.tui.app import ThunderdomeApp
    from thunderdome.tui.sources import Source

FRAME_INTERVAL = 1 / 20
"""Seconds between frames. 20 Hz keeps text and gauges visibly live (a token
shows at most 50 ms after it arrived, below the ~100 ms at which a delay is
noticed) while leaving the race's thread most of the GIL on a 2-core machine:
one frame re-ranks, redraws the headers and the chart once, whatever the token
rate. benchmarks/tui_ttft_fidelity.py measures what the UI costs the race."""

RESTYLES_PER_FRAME = 4
"""Lanes restyled per frame with nothing else to show (a status class change
costs ~3 ms a lane); a frame that brought events restyles one at most."""

CHART_INTERVAL = 0.1
"""Race seconds between chart redraws (10 Hz: a line moves a braille dot at a
time; the chart is the costliest widget to paint)."""

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
_PID = re.compile(r"\bPID\s*[:=]?\s*(\d+)", re.IGNORECASE)


def lane_columns(width: int, lanes: int) -> int:
    """How many lane columns fit: stacked rows on normal terminals and for up to
    three lanes, a grid on wide screens with many lanes."""
    if lanes <= 1 or width < 110:
        return 1
    if lanes <= 3 and width < 180:
        return 1
    return max(1, min(lanes, width // 56, 4))


class RaceScreen(Screen):
    """One race from a source. ``app.race_over(screen)`` is called at its end."""

    BINDINGS = [
        Binding("t", "toggle_reasoning", "reasoning"),
        Binding("r", "rerun", "rerun"),
        Binding("space", "pause", "pause"),
        Binding("plus,equals_sign", "speed(1)", "faster"),
        Binding("minus", "speed(-1)", "slower"),
        Binding("full_stop,n", "step", "step"),
        Binding("0", "restart", "restart"),
    ]

    def __init__(
        self,
        source: "Source",
        *,
        task: TaskSpec | None = None,
        specs: list[BackendSpec] | None = None,
        replay: bool = False,
        speed: float = 1.0,
        clock: Any = None,
        results_delay: float = 1.5,
    ) -> None:
        super().__init__()
        self.source = source
        self.race_task = task
        self.specs = list(specs or [])
        self.replay = replay
        self.speed = speed
        self.results_delay = results_delay
        self.feed = EventFeed(clock) if clock is not None else EventFeed()
        self.feed.time.rate = speed if replay else 1.0
        self.lanes: dict[str, LaneView] = {}
        self.lane_colors: dict[str, str] = {}
        self.warnings: list[str] = []
        self.failed: str | None = None
        self.over = False
        self._started_source = False
        self._grid_shape: tuple[int, int, int | None, int | None] | None = None
        self._chart_t = -1.0
        self._chart_wall = -1.0
        self._frames = 0
        self._gc_held = False
        self.ranking = LiveRanking(self.feed.standings)
        self.frame_times: deque[float] = deque(maxlen=10_000)
        """Seconds spent in each of the recent frames (benchmarks read it)."""

    # -- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield RaceBanner(id="banner")
        with VerticalScroll(id="body"):
            with Horizontal(id="board"):
                with Vertical(id="leaderboard-box", classes="panel") as box:
                    box.border_title = "leaderboard"
                    yield Leaderboard(id="leaderboard")
                with Vertical(id="chart-box", classes="panel") as box:
                    box.border_title = "tokens over time"
                    yield TokenChart(id="chart")
            yield Grid(id="lanes")
        yield Footer()

    def on_mount(self) -> None:
        gc_policy.race_started()
        self._gc_held = True
        for spec in self.specs:
            self._lane_view(spec.name)
        self._update_widgets(self.now())
        self.set_interval(FRAME_INTERVAL, self._frame, name="frame")
        self.call_after_refresh(self._start_source)

    def _start_source(self) -> None:
        if self._started_source:
            return
        self._started_source = True
        try:
            self.source.start(self.feed.push)
        except Exception as exc:  # e.g. a replay file vanished
            self.failed = str(exc) if isinstance(exc, RuntimeError) and str(exc) else f"{type(exc).__name__}: {exc}"
            self.notify(self.failed, title="race could not start", severity="error", timeout=10, markup=False)
            self._update_widgets(self.now())
            self._release_gc()
        self._frame()

    def on_resize(self) -> None:
        self._layout_lanes()

    def _layout_lanes(self) -> None:
        """Size the lane grid and the board for the lane count and terminal size.
        Styles are set only when their value changes: each set asks Textual for
        a full-screen layout (~50 ms at 200x60)."""
        cols = lane_columns(self.size.width, max(len(self.lanes), 1))
        rows = max(1, math.ceil(len(self.lanes) / cols))
        narrow = self.size.width < 110
        wide_height = max(len(self.lanes) + 4, min(2 * len(self.lanes) + 3, 14), 12 if self.size.height >= 34 else 9)
        shape = (cols, rows, rows * 7 if narrow else None, None if narrow else wide_height)
        if shape == self._grid_shape:
            return
        self._grid_shape = shape
        grid = self.query_one("#lanes", Grid)
        grid.styles.grid_size_columns = cols
        grid.styles.grid_size_rows = rows
        grid.styles.min_height = shape[2]  # narrow: a 1-row gap + 6 rows a lane
        self.query_one("#board").styles.height = shape[3]

    def _lane_view(self, name: str) -> LaneView:
        view = self.lanes.get(name)
        if view is None:
            color = lane_color(len(self.lanes))
            self.lane_colors[name] = color
            view = LaneView(name, color)
            self.lanes[name] = view
            self.query_one("#lanes", Grid).mount(view)
            self._layout_lanes()
        return view

    # -- the frame ----------------------------------------------------------------------

    def _frame(self) -> None:
        if not self._started_source:
            return
        started = time.perf_counter()
        try:
            self._frame_body()
        finally:
            self.frame_times.append(time.perf_counter() - started)

    def _frame_body(self) -> None:
        feed = self.feed
        frame = feed.drain()
        if frame.started is not None:
            names = [str(info.get("name", "")) for info in frame.started.lanes]
            for name in [n for n in self.lanes if n not in names]:  # the race is the truth
                self.lanes.pop(name).remove()
                self.lane_colors.pop(name, None)
            for name in names:
                self._lane_view(name)
        for name in frame.touched:
            self._lane_view(name)
        for name, pieces in frame.text.items():
            self.lanes[name].stream.extend(pieces)
        for notice in frame.notices:
            self._on_notice(notice)
        idle = frame.events == 0 and (self.over or feed.time.paused or self.failed)
        if not idle:
            self._frames += 1
            even = self._frames % 2 == 0  # the leaderboard and the chart take turns, and so do lane halves
            heads = frame.states | {name for i, name in enumerate(self.lanes) if i % 2 == self._frames % 2}
            self._update_widgets(self.now(), changed=frame.changed, board=even, chart=not even, heads=heads)
        self._restyle_lanes(RESTYLES_PER_FRAME if frame.events == 0 else 1)
        if frame.finished is not None and not self.over:
            self.over = True
            self.set_timer(max(self.results_delay, 0.001), self._show_results)
        elif not self.over and not self.failed and self._source_ended() and feed.pending == 0:
            if self.replay:
                self.failed = "the recording ends here: the race was cut short (no finish recorded)"
            else:
                self.failed = self.source.error or "the race ended without a result"
            feed.time.stop(feed.standings.last_t)
            self.notify(self.failed, title="no result", severity="error", timeout=10, markup=False)
            self._update_widgets(self.now())
            self._release_gc()

    def _restyle_lanes(self, limit: int) -> None:
        """Restyle at most ``limit`` lanes whose status class changed (each ~3
        ms: when every lane finishes at once, the last tokens are not held
        back by 16 restyles; the rest follow in the next frames)."""
        for view in [v for v in self.lanes.values() if v.restyle_due][:limit]:
            view.restyle()

    def _source_ended(self) -> bool:
        at_end = getattr(self.source, "at_end", None)  # a replay waits at its end
        return self.source.done.is_set() or (at_end is not None and at_end.is_set())

    def now(self) -> float:
        """The race time on screen: the replay's own play time, else the feed's clock."""
        play_time = getattr(self.source, "play_time", None)
        if self.replay and play_time is not None and not self.over and not self.failed:
            return max(play_time(), self.feed.standings.last_t if self.feed.started else 0.0)
        return self.feed.time.now()

    def _on_notice(self, notice: Notice) -> None:
        if notice.lane:
            return
        if notice.level in ("warning", "error"):
            self.warnings.append(notice.message)
        severity = {"warning": "warning", "error": "error"}.get(notice.level, "information")
        self.notify(Text(notice.message).plain, severity=severity, timeout=8, markup=False)

    def _update_widgets(
        self,
        now: float,
        *,
        changed: bool = True,
        board: bool = True,
        chart: bool = True,
        heads: set[str] | None = None,
    ) -> None:
        """Show the state at race time ``now``. A frame passes what it saw:
        ``changed`` (more than token text arrived: re-rank now), whether the
        leaderboard / the chart may redraw in it (they take turns, so each
        redraws at most at half the frame rate unless a lane changed), and
        ``heads``: the lanes whose header may redraw (None: all). A lane's
        text never waits: it was appended before this call."""
        feed = self.feed
        standings = feed.standings
        ranking = self.ranking.get(now, changed=changed)
        stats = ranking.stats
        cap = standings.max_tokens or (self.race_task.max_tokens if self.race_task else 0)
        max_turns = self.race_task.max_turns if self.race_task else 1
        for name, view in self.lanes.items():
            state = standings.lanes.get(name)
            if state is None or name not in stats or (heads is not None and name not in heads):
                continue
            view.show(
                LaneSnapshot(
                    state=state,
                    stats=stats[name],
                    now=now,
                    cap=cap,
                    color=self.lane_colors[name],
                    kind=standings.kind,
                    pid=self._pid(name),
                    exec_result=feed.exec_results.get(name),
                    verdict=feed.verdicts.get(name),
                    turn=feed.turn.get(name, 1),
                    max_turns=max(max_turns, feed.turn.get(name, 1)),
                    notes=[n for n in feed.lane_notes.get(name, []) if not _PID.search(n)],
                    first_token_t=feed.series_for(name).first_token_t,
                )
            )
        if board or changed:
            self.query_one(Leaderboard).set_data(standings, now, self.lane_colors, ranking)
        wall = time.perf_counter()
        soon = CHART_INTERVAL - FRAME_INTERVAL / 2  # frames jitter: do not skip a turn for a millisecond
        due = (now - self._chart_t >= soon or wall - self._chart_wall >= soon) and (chart or changed)
        if due or now < self._chart_t or self.over or self.failed:
            self._chart_t, self._chart_wall = now, wall
            lines = [Line(name, self.lane_colors[name], feed.series_for(name)) for name in self.lanes]
            self.query_one(TokenChart).set_data(lines, now)
        self._show_banner(now)

    def _pid(self, name: str) -> str:
        for note in reversed(self.feed.lane_notes.get(name, [])):
            match = _PID.search(note)
            if match:
                return match.group(1)
        return ""

    def _show_banner(self, now: float) -> None:
        standings = self.feed.standings
        task = standings.task or (self.race_task.name if self.race_task else "")
        title = standings.title or (self.race_task.title if self.race_task else "")
        kind = standings.kind if self.feed.started else (self.race_task.kind if self.race_task else "")
        win_rule = standings.win_rule or (self.race_task.win_rule if self.race_task else "")
        status = Text(no_wrap=True)
        if self.failed:
            status.append("✖ " + self.failed, Style(color="#ff5555", bold=True))
            status.append("   r retry · q quit", DIM)
        elif self.feed.finished is not None:
            winner = self.feed.finished.winner
            status.append("■ FINISHED", Style(color="#7ad151", bold=True))
            status.append(f"  winner: {winner}" if winner else "  no winner", Style(bold=True))
        elif self.feed.started is None:
            status.append("… getting ready (connecting, starting the emulator)", DIM)
        else:
            alive = sum(1 for lane in standings.lanes.values() if not lane.ended)
            status.append("● RACING", Style(color="#ff5f5f", bold=True))
            status.append(f"  {alive}/{len(standings.lanes)} lanes running", DIM)
            if standings.max_tokens:
                status.append(f" · max {standings.max_tokens} tokens", DIM)
        if self.replay:
            state = "⏸ PAUSED" if self.feed.time.paused else "▶ REPLAY"
            status.append(f"   {state} {self.speed:g}×", Style(color="#2ec4f0", bold=True))
        warnings = list(self.warnings)
        isolation = standings.isolation
        if self.feed.started is not None and standings.kind == "thunderdome" and isolation != "bwrap":
            label = f"sandbox: {isolation} (no bubblewrap) — model commands are less isolated"
            if not any("bwrap" in w or "bubblewrap" in w or "isolation" in w for w in warnings):
                warnings.insert(0, label)
        self.query_one(RaceBanner).show(
            task=task, kind=kind, win_rule=win_rule, title=title, status=status, warnings=warnings, now=now
        )

    def _release_gc(self) -> None:
        if self._gc_held:
            self._gc_held = False
            gc_policy.race_ended()

    def on_unmount(self) -> None:
        self._release_gc()

    def _show_results(self) -> None:
        self._release_gc()  # the full pass that was held back runs now, off the race
        app: ThunderdomeApp = self.app  # type: ignore[assignment]
        app.race_over(self)

    # -- actions ------------------------------------------------------------------------

    def action_toggle_reasoning(self) -> None:
        views = list(self.lanes.values())
        show = not (views[0].stream.show_reasoning if views else True)
        for view in views:
            view.stream.show_reasoning = show
        self.notify("reasoning shown" if show else "reasoning hidden", timeout=2)

    def action_rerun(self) -> None:
        self.app.rerun(self)  # type: ignore[attr-defined]

    def action_restart(self) -> None:
        if self.replay:
            self.app.rerun(self)  # type: ignore[attr-defined]

    def action_pause(self) -> None:
        if not self.replay or self.over:
            return
        paused = not self.feed.time.paused
        getattr(self.source, "pause" if paused else "resume")()
        self.feed.time.pause(paused)
        self._update_widgets(self.now())

    def action_speed(self, direction: int) -> None:
        if not self.replay:
            return
        i = min(range(len(SPEEDS)), key=lambda k: abs(SPEEDS[k] - self.speed))
        self.speed = SPEEDS[min(max(i + direction, 0), len(SPEEDS) - 1)]
        self.source.set_speed(self.speed)  # type: ignore[attr-defined]
        self.feed.time.set_rate(self.speed)
        self._update_widgets(self.now())

    def action_step(self) -> None:
        if self.replay and not self.over:
            if not self.feed.time.paused:
                self.action_pause()
            self.source.step()  # type: ignore[attr-defined]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("pause", "speed", "step", "restart"):
            return self.replay  # replay controls: hidden (and off) in a live race
        return True

    def stop_source(self) -> None:
        """Stop the source (blocking, bounded): call from a thread worker."""
        self.source.stop(timeout=10.0)
