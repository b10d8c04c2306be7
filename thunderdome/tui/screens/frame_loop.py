"""The race screen's frame: what changes on screen, once per frame.

Invariant: the source thread only ever touches ``EventFeed.push`` (a deque
append); everything on screen changes in ``_frame()``, which runs on the UI
thread every ``FRAME_INTERVAL`` seconds, drains the queue, folds it into the
UI's own ``Standings`` and updates each widget at most once. Token timestamps
were taken on the race's thread before the events were queued, so a slow frame
can delay what is shown, never what is measured.

A frame's cost must not grow with the token rate, and in a steady race it
asks Textual for no layout (a full layout is ~20-50 ms at 200x60): token
text goes to fixed-size lane windows every frame; lane headers, the
leaderboard and the chart redraw on alternate frames (10 Hz) unless a lane's
state changed, and the lane headers always with the leaderboard, from the
same ``ranked(now)`` reading (one figure, one number on screen); the ranking
is read from the reducer every frame (``Standings.ranked``, O(1) per lane);
while frames and their paints overrun, the figures redraw at 5 Hz and
the chart at 2 Hz (``FrameBudget``), never the text;
a lane's restyle after a status change waits for a quiet frame; and no full
GC pass runs while racing (``gc_policy``). Measured by
benchmarks/render_capacity.py.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Callable

from thunderdome.core.events import Notice
from thunderdome.tui.feed import EventFeed
from thunderdome.tui.screens.frame_budget import FrameBudget
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.banner import RaceBanner, race_status, race_warnings
from thunderdome.tui.widgets.chart import Line, TokenChart
from thunderdome.tui.widgets.lane import LaneSnapshot, LaneView
from thunderdome.tui.widgets.leaderboard import Leaderboard
from thunderdome.tui.widgets.presenter import PresenterView

if TYPE_CHECKING:
    from thunderdome.sources.base import Source
    from thunderdome.core.specs import TaskSpec

FRAME_INTERVAL = 1 / 20
"""Seconds between frames. A token waits up to one interval for its frame,
then the frame and Textual's paint, so 20 Hz keeps the display near the
100 ms at which a delay is noticed. 30 Hz was measured too: no lower p99
(the paint then queues behind the next frame) for ~15 points more CPU; 10 Hz
cannot meet 100 ms. Textual's timer skips ticks that are already late, so
an overrun frame is followed by one, not a burst. The race runs in another
process by default (benchmarks/tui_ttft_fidelity.py: the UI adds nothing to
its first-token stamps)."""

RESTYLES_PER_FRAME = 4
"""Lanes restyled per frame with nothing else to show (a status class change
costs ~3 ms a lane); a frame that brought events restyles one at most."""
EVENTS_PER_FRAME = 20_000
"""Events folded in one frame at most (25x the 16 lanes x 1000 tok/s the TUI
is built for): a source pushing faster (a replay at full speed) is shown a
frame at a time instead of freezing the app in one endless frame."""

CHART_INTERVAL = 0.1
"""Race seconds between chart redraws (10 Hz: a line moves a braille dot at a
time; the chart is the costliest widget to paint)."""


class FrameLoop:
    """Mixed into ``RaceScreen``: the frame and the redraw of its widgets."""

    # the screen's own, declared for the reader (no values: nothing is shadowed)
    feed: EventFeed
    source: Source
    lanes: dict[str, LaneView]
    lane_colors: dict[str, str]
    warnings: list[str]
    race_task: TaskSpec | None
    replay: bool
    speed: float
    trial: str
    presenter: bool
    over: bool
    failed: str | None
    results_delay: float
    frame_times: deque[float]
    budget: FrameBudget
    _started_source: bool
    _leaving: bool
    _frames: int
    _chart_t: float
    _chart_wall: float
    now: Callable[[], float]
    chart: Callable[[], TokenChart]
    _lane_view: Callable[[str], LaneView]
    _on_notice: Callable[[Notice], None]
    _check_recording: Callable[[], None]
    _source_ended: Callable[[], bool]
    _show_results: Callable[[], None]
    _release_gc: Callable[[], None]

    def _frame(self) -> None:
        if not self._started_source:
            return
        started = time.perf_counter()
        try:
            self._frame_body()
        finally:
            cost = time.perf_counter() - started
            self.frame_times.append(cost)
            self.budget.frame_cost, self.budget.paint_cost = cost, 0.0

    def _on_timer_update(self) -> None:
        """Textual's screen update (the paint), timed for the frame budget (all of
        the updates since the last frame: a paint may be followed by an empty one)."""
        started = time.perf_counter()
        super()._on_timer_update()  # type: ignore[misc]
        self.budget.paint_cost += time.perf_counter() - started

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
            budget = self.budget
            budget.begin()
            figures = budget.figures(self._frames, frame.changed)
            now = self.now()
            self._update_widgets(
                now,
                changed=frame.changed,
                board=figures,
                chart=budget.chart(not even, figures),
                heads=None if figures else set(),
                chart_interval=budget.chart_interval(CHART_INTERVAL),
            )
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

    def _update_widgets(
        self,
        now: float,
        *,
        changed: bool = True,
        board: bool = True,
        chart: bool = True,
        heads: set[str] | None = None,
        chart_interval: float = CHART_INTERVAL,
    ) -> None:
        """Show the state at race time ``now``. A frame passes what it saw:
        ``changed`` (more than token text arrived: redraw the board now), whether the
        leaderboard / the chart may redraw in it (they take turns, so each
        redraws at most at half the frame rate unless a lane changed),
        ``chart_interval`` (race seconds between chart redraws), and ``heads``: the lanes whose header may redraw (None: all; the race
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
        soon = chart_interval - FRAME_INTERVAL / 2  # frames jitter: do not skip a turn for a millisecond
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
