"""The race screen: lanes, leaderboard, chart and clock, fed once per frame.

Invariant: the source thread only ever touches ``EventFeed.push`` (a deque
append); everything on screen changes in ``_frame()``, which runs on the UI
thread every ``FRAME_INTERVAL`` seconds, drains the queue, folds it into the
UI's own ``Standings`` and updates each widget at most once. Token timestamps
were taken on the race's thread before the events were queued, so a slow frame
can delay what is shown, never what is measured.

A frame's cost must not grow with the token rate, and in a steady race it
asks Textual for no layout (a full layout is ~20-50 ms at 200x60): token
text goes to fixed-size stream windows every frame; lane headers, the
leaderboard and the chart redraw on alternate frames (10 Hz) unless a lane's
state changed, and the lane headers always with the leaderboard, from the
same ``ranked(now)`` reading (one figure, one number on screen); the ranking is read from the reducer every frame
(``Standings.ranked``, O(1) per lane); a lane's restyle after a status
change waits for a quiet frame; and no full GC pass runs while racing
(``gc_policy``). Measured by
benchmarks/render_capacity.py (16 lanes x 1000 tok/s at 200x60: p99 display
lag ~80 ms, ~45% of a core).

The screen tells the app what happened through its messages: ``RaceShown``
(on mount, with the live standings), ``RaceEnded`` (a results delay after
the race finished), ``RerunRequested`` and ``PresenterToggled``. In presenter
mode (``b``, class ``-presenter``) the leaderboard, chart and lanes give way
to ``PresenterView``, fed the same lane snapshots, and those hidden widgets
are not redrawn until the mode is left.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen

from thunderdome.events import Notice
from thunderdome.metrics import Standings
from thunderdome.specs import BackendSpec, TaskSpec
from thunderdome.tui import gc_policy
from thunderdome.tui.feed import EventFeed
from thunderdome.tui.palette import lane_color
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.banner import RaceBanner, race_status, race_warnings
from thunderdome.tui.widgets.chart import TITLE as CHART_TITLE, Line, TokenChart
from thunderdome.tui.race_layout import LANE_MODES, RaceLayout, race_layout
from thunderdome.tui.widgets.lane import LaneSnapshot, LaneView
from thunderdome.tui.widgets.leaderboard import Leaderboard
from thunderdome.tui.widgets.footer import key_footer
from thunderdome.tui.widgets.presenter import PresenterView

if TYPE_CHECKING:
    from thunderdome.sources.base import Source

FRAME_INTERVAL = 1 / 20
"""Seconds between frames. A token waits up to one interval for its frame,
then the frame and Textual's paint (~10-30 ms at 16 x 1000 tok/s), so 20 Hz
keeps the display within the 100 ms at which a delay is noticed (p99 ~80 ms
measured) for ~45% of a core. 30 Hz was measured too: no lower p99 (the
paint then queues behind the next frame) for ~15 points more CPU; 10 Hz
cannot meet 100 ms. Textual's timer skips ticks that are already late, so
an overrun frame is followed by one, not a burst. The race runs in another
process by default (benchmarks/tui_ttft_fidelity.py: the UI adds nothing to
its first-token stamps)."""

RESTYLES_PER_FRAME = 4
EVENTS_PER_FRAME = 20_000
"""Events folded in one frame at most (25x the 16 lanes x 1000 tok/s the TUI
is built for): a source pushing faster (a replay at full speed) is shown a
frame at a time instead of freezing the app in one endless frame."""
"""Lanes restyled per frame with nothing else to show (a status class change
costs ~3 ms a lane); a frame that brought events restyles one at most."""

CHART_INTERVAL = 0.1
"""Race seconds between chart redraws (10 Hz: a line moves a braille dot at a
time; the chart is the costliest widget to paint)."""

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
SPEED_KEYS = Binding.Group("speed", compact=True)
"""``+`` and ``-`` share one footer entry (the replay's keys fit 80 columns)."""


class RaceScreen(Screen):
    """One race from a source."""

    @dataclass
    class RaceShown(Message):
        """The screen is up; ``standings`` is the state it folds the race's
        events into (live: what an export mid-race writes)."""

        screen: RaceScreen
        standings: Standings

    @dataclass
    class RaceEnded(Message):
        """The race finished and stayed on screen its results delay; ``feed``
        holds its final standings and token series."""

        screen: RaceScreen
        feed: EventFeed
        lane_colors: dict[str, str]

    @dataclass
    class RerunRequested(Message):
        """The user asked for this race again (``r``; ``0`` in a replay)."""

        screen: RaceScreen

    @dataclass
    class PresenterToggled(Message):
        """The user turned presenter mode on or off (``b``)."""

        screen: RaceScreen
        on: bool

    BINDINGS = [
        Binding("t", "toggle_reasoning", "reasoning"),
        Binding("r", "rerun", "rerun"),
        Binding("space", "pause", "pause", key_display="␣"),
        Binding("plus,equals_sign", "speed(1)", "faster", group=SPEED_KEYS),
        Binding("minus", "speed(-1)", "slower", group=SPEED_KEYS),
        Binding("full_stop,n", "step", "step"),
        Binding("0", "restart", "restart", show=False),  # in a replay, r does the same (the footer shows r)
        Binding("b", "presenter", "big"),
        Binding("b", "presenter_unlisted", "big", show=False),  # a replay's footer is full: b works, the help lists it
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
        presenter: bool = False,
        trial: str = "",
    ) -> None:
        """``presenter``: start in presenter mode; ``trial``: which trial this
        race is (``2/3``), said in the banner."""
        super().__init__()
        self.presenter = presenter
        self.trial = trial
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
        self._recording_failed = False
        self._layout: RaceLayout | None = None
        self._chart_t = -1.0
        self._chart_wall = -1.0
        self._frames = 0
        self._gc_held = False
        self._leaving = False
        """A rerun was asked for: the source is stopped on purpose, not cut short."""
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
                yield self._chart_box("chart-box", "chart")
            with Grid(id="lanes", classes="-full"):  # the known lanes are in the first layout, not mounted after it
                for name in dict.fromkeys(spec.name for spec in self.specs):
                    yield self._new_lane(name)
            yield self._chart_box("chart-below", "chart-low")
        yield PresenterView(id="presenter")
        yield key_footer()

    def _chart_box(self, box_id: str, chart_id: str) -> Vertical:
        """A chart panel: one beside (or above) the lanes, one below them for
        short terminals; the layout shows one of the two."""
        box = Vertical(TokenChart(id=chart_id), id=box_id, classes="panel")
        box.border_title = CHART_TITLE
        return box

    def chart(self) -> TokenChart:
        """The chart on screen (the one the layout shows)."""
        below = self._layout is not None and self._layout.chart_below
        return self.query_one("#chart-low" if below else "#chart", TokenChart)

    def on_mount(self) -> None:
        self.set_class(self.presenter, "-presenter")
        gc_policy.race_started()
        self._gc_held = True
        self.post_message(self.RaceShown(self, self.feed.standings))
        self._layout_lanes()
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
            self.notify(one_line(self.failed), title="race could not start", severity="error", timeout=10, markup=False)
            self._update_widgets(self.now())
            self._release_gc()
        self._frame()

    def on_resize(self) -> None:
        self._layout_lanes()

    def _layout_lanes(self) -> None:
        """Lay the board, the chart and the lane grid out for the terminal's size
        (``race_layout``); styles are set only when the layout changes (each set
        asks Textual for a full-screen layout)."""
        layout = race_layout(self.size.width, self.size.height, len(self.lanes))
        if layout == self._layout:
            return
        moved = self._layout is None or layout.chart_below != self._layout.chart_below
        self._layout = layout
        grid = self.query_one("#lanes", Grid)
        grid.styles.grid_size_columns, grid.styles.grid_size_rows = layout.columns, layout.rows
        grid.styles.height = layout.lanes_height if layout.lanes_height is not None else "1fr"
        grid.styles.min_height = layout.lanes_min_height
        for mode in LANE_MODES:
            grid.set_class(mode == layout.lane_mode, f"-{mode}")
        self.query_one("#board").styles.height = layout.board_height
        self.query_one("#chart-box").display = not layout.chart_below
        self.query_one("#chart-below").display = layout.chart_below
        self.query_one(Leaderboard).set_room(layout.board_room)
        if moved:
            self._draw_chart(self.now())

    def _lane_view(self, name: str) -> LaneView:
        view = self.lanes.get(name)
        if view is None:
            view = self._new_lane(name)
            self.query_one("#lanes", Grid).mount(view)
            self._layout_lanes()
        return view

    def _new_lane(self, name: str) -> LaneView:
        color = lane_color(len(self.lanes))
        self.lane_colors[name] = color
        view = self.lanes[name] = LaneView(name, color)
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
        frame = feed.drain(EVENTS_PER_FRAME)
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
        self._check_recording()
        idle = frame.events == 0 and (self.over or feed.time.paused or self.failed)
        if not idle:
            self._frames += 1
            even = self._frames % 2 == 0  # the figures (board and lane headers) and the chart take turns
            board = even or frame.changed
            now = self.now()
            self._update_widgets(now, changed=frame.changed, board=even, chart=not even, heads=None if board else set())
            if self.presenter and frame.first_tokens:
                landed = {name: feed.series_for(name).first_token_t for name in frame.first_tokens}
                self.query_one(PresenterView).first_tokens(landed, now)
        self._restyle_lanes(RESTYLES_PER_FRAME if frame.events == 0 else 1)
        if frame.finished is not None and not self.over:
            self.over = True
            self.set_timer(max(self.results_delay, 0.001), self._show_results)
        elif not self.over and not self.failed and not self._leaving and self._source_ended() and feed.pending == 0:
            if self.replay:
                self.failed = "the recording ends here: the race was cut short (no finish recorded)"
            else:
                self.failed = self.source.error or "the race ended without a result"
            feed.time.stop(feed.standings.last_t)
            self.notify(one_line(self.failed), title="no result", severity="error", timeout=10, markup=False)
            self._update_widgets(self.now())
            self._release_gc()

    def _restyle_lanes(self, limit: int) -> None:
        """Restyle at most ``limit`` lanes whose status class changed (each ~3
        ms: when every lane finishes at once, the last tokens are not held
        back by 16 restyles; the rest follow in the next frames)."""
        for view in [v for v in self.lanes.values() if v.restyle_due][:limit]:
            view.restyle()

    def _source_ended(self) -> bool:
        controls = self.source.controls  # a replay waits at its end
        return self.source.done.is_set() or (controls is not None and controls.at_end.is_set())

    def _check_recording(self) -> None:
        """Say once, as soon as the source reports it, that the recording stopped."""
        status = self.source.recording
        if status is None or status.complete or self._recording_failed:
            return
        self._recording_failed = True
        self.warnings.append(status.describe())
        self.notify(one_line(status.describe()), title="recording failed", severity="error", timeout=10, markup=False)

    def now(self) -> float:
        """The race time on screen: the replay's own play time, else the feed's clock."""
        controls = self.source.controls
        if self.replay and controls is not None and not self.over and not self.failed:
            return max(controls.play_time(), self.feed.standings.last_t if self.feed.started else 0.0)
        return self.feed.time.now()

    def _on_notice(self, notice: Notice) -> None:
        if notice.lane:
            return
        if notice.level in ("warning", "error"):
            self.warnings.append(notice.message)
        severity = {"warning": "warning", "error": "error"}.get(notice.level, "information")
        self.notify(one_line(notice.message), severity=severity, timeout=8, markup=False)

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
        ``changed`` (more than token text arrived: redraw the board now), whether the
        leaderboard / the chart may redraw in it (they take turns, so each
        redraws at most at half the frame rate unless a lane changed), and
        ``heads``: the lanes whose header may redraw (None: all; the race
        screen redraws them all with the board, so the two show one reading).
        A lane's text never waits: it was appended before this call."""
        feed = self.feed
        standings = feed.standings
        ranked = standings.ranked(now)
        stats = {s.name: s for s in ranked}
        cap = standings.max_tokens or (self.race_task.max_tokens if self.race_task else 0)
        max_turns = self.race_task.max_turns if self.race_task else 1
        presenter = self.query_one(PresenterView) if self.presenter else None
        if presenter is not None:
            presenter.sync(self.lane_colors)
        for name, view in self.lanes.items():
            state = standings.lanes.get(name)
            if state is None or name not in stats or (heads is not None and name not in heads):
                continue
            (view if presenter is None else presenter).show(
                LaneSnapshot(
                    state=state,
                    stats=stats[name],
                    now=now,
                    cap=cap,
                    color=self.lane_colors[name],
                    kind=standings.kind,
                    pid=str(state.pid) if state.pid is not None else "",
                    exec_result=feed.exec_results.get(name),
                    verdict=feed.verdicts.get(name),
                    turn=feed.turn.get(name, 1),
                    max_turns=max(max_turns, feed.turn.get(name, 1)),
                    notes=feed.lane_notes.get(name, []),
                    first_token_t=feed.series_for(name).first_token_t,
                )
            )
        if presenter is not None:
            self._show_banner(now)
            return
        if board or changed:
            self.query_one(Leaderboard).set_data(standings, now, self.lane_colors, ranked)
        wall = time.perf_counter()
        soon = CHART_INTERVAL - FRAME_INTERVAL / 2  # frames jitter: do not skip a turn for a millisecond
        due = (now - self._chart_t >= soon or wall - self._chart_wall >= soon) and (chart or changed)
        if due or now < self._chart_t or self.over or self.failed:
            self._chart_t, self._chart_wall = now, wall
            self._draw_chart(now)
        self._show_banner(now)

    def _draw_chart(self, now: float) -> None:
        lines = [Line(name, self.lane_colors[name], self.feed.series_for(name)) for name in self.lanes]
        self.chart().set_data(lines, now)

    def _show_banner(self, now: float) -> None:
        standings = self.feed.standings
        task = self.race_task
        self.query_one(RaceBanner).show(
            task=(standings.task or (task.name if task else "")) + (f" · trial {self.trial}" if self.trial else ""),
            kind=standings.kind if self.feed.started else (task.kind if task else ""),
            win_rule=standings.win_rule or (task.win_rule if task else ""),
            title=standings.title or (task.title if task else ""),
            status=race_status(
                standings,
                started=self.feed.started is not None,
                finished=self.feed.finished,
                failed=self.failed,
                replay_speed=self.speed if self.replay else None,
                paused=self.feed.time.paused,
            ),
            warnings=race_warnings(standings, self.warnings, started=self.feed.started is not None),
            now=now,
        )

    def _release_gc(self) -> None:
        if self._gc_held:
            self._gc_held = False
            gc_policy.race_ended()

    def on_unmount(self) -> None:
        if self._gc_held:  # the full pass held back while racing runs once the next screen is up
            self._gc_held = False
            self.app.call_after_refresh(gc_policy.race_ended)

    def _show_results(self) -> None:
        recording = self.source.recording
        if recording is not None and not recording.final and not self.source.done.is_set():
            self.set_timer(FRAME_INTERVAL, self._show_results)  # the results say how the recording ended
            return
        self._check_recording()
        self.post_message(self.RaceEnded(self, self.feed, dict(self.lane_colors)))

    # -- actions ------------------------------------------------------------------------

    def action_toggle_reasoning(self) -> None:
        views = list(self.lanes.values())
        show = not (views[0].stream.show_reasoning if views else True)
        for view in views:
            view.stream.show_reasoning = show
        self.notify("reasoning shown" if show else "reasoning hidden", timeout=2)

    def action_presenter(self) -> None:
        """Presenter mode on / off; everything on screen is redrawn for it at once."""
        self.presenter = not self.presenter
        self.set_class(self.presenter, "-presenter")
        self._update_widgets(self.now())
        self.post_message(self.PresenterToggled(self, self.presenter))

    def action_presenter_unlisted(self) -> None:
        self.action_presenter()

    def action_rerun(self) -> None:
        self._leaving = True
        self.post_message(self.RerunRequested(self))

    def action_restart(self) -> None:
        if self.replay:
            self.action_rerun()

    def action_pause(self) -> None:
        controls = self.source.controls
        if not self.replay or self.over or controls is None:
            return
        paused = not self.feed.time.paused
        if paused:
            controls.pause()
        else:
            controls.resume()
        self.feed.time.pause(paused)
        self._update_widgets(self.now())

    def action_speed(self, direction: int) -> None:
        controls = self.source.controls
        if not self.replay or controls is None:
            return
        i = min(range(len(SPEEDS)), key=lambda k: abs(SPEEDS[k] - self.speed))
        self.speed = SPEEDS[min(max(i + direction, 0), len(SPEEDS) - 1)]
        controls.set_speed(self.speed)
        self.feed.time.set_rate(self.speed)
        self._update_widgets(self.now())

    def action_step(self) -> None:
        controls = self.source.controls
        if self.replay and not self.over and controls is not None:
            if not self.feed.time.paused:
                self.action_pause()
            controls.step()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("pause", "speed", "step", "restart", "presenter_unlisted"):
            return self.replay  # replay controls: hidden (and off) in a live race
        if action == "presenter":
            return not self.replay
        return True
