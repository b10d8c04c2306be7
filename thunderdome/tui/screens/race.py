"""The race screen: lanes, leaderboard, chart and clock, fed once per frame.

Invariant: everything on screen changes in the frame (``frame_loop.py``:
the source thread only appends to the feed; one frame every
``FRAME_INTERVAL`` folds it and redraws each widget at most once); the
replay's keys act through the source's typed controls
(``replay_controls.py``). This module owns the widget tree, its layout for
the terminal's size (``race_layout``), the source's start and end, and what
the screen tells the app.

The screen tells the app what happened through its messages: ``RaceShown``
(on mount, with the live standings), ``RaceEnded`` (a results delay after
the race finished), ``RerunRequested`` and ``PresenterToggled``. In presenter
mode (``b``, class ``-presenter``) the leaderboard, chart and lanes give way
to ``PresenterView``, fed the same lane snapshots, and those hidden widgets
are not redrawn until the mode is left.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen

from thunderdome.core.events import Notice
from thunderdome.core.metrics import Standings
from thunderdome.core.specs import BackendSpec, TaskSpec
from thunderdome.tui import gc_policy
from thunderdome.tui.feed import EventFeed
from thunderdome.tui.palette import lane_color
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.banner import RaceBanner
from thunderdome.tui.widgets.chart import TITLE as CHART_TITLE, TokenChart
from thunderdome.tui.race_layout import LANE_MODES, RaceLayout, race_layout
from thunderdome.tui.widgets.lane import LaneView
from thunderdome.tui.widgets.leaderboard import Leaderboard
from thunderdome.tui.widgets.footer import key_footer
from thunderdome.tui.widgets.presenter import PresenterView
from thunderdome.tui.screens.frame_budget import FrameBudget
from thunderdome.tui.screens.frame_loop import FRAME_INTERVAL, FrameLoop
from thunderdome.tui.screens.replay_controls import SPEED_KEYS, ReplayKeys

if TYPE_CHECKING:
    from thunderdome.sources.base import Source


class RaceScreen(FrameLoop, ReplayKeys, Screen):
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
        self.budget = FrameBudget(FRAME_INTERVAL)

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


