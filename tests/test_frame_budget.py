"""The frame budget: over budget, the figures and the chart redraw at lower
rates, never the token text; the lane headers and the leaderboard still
redraw together. The costs are given by hand (no clock),
and the race screen is driven frame by frame with the budget held over."""

from __future__ import annotations

from typing import Any

from _pilot import wait_for  # type: ignore[import-not-found]
from test_tui_frames import NAMES, HandSource, frames, make, start_race, tokens  # type: ignore[import-not-found]

from thunderdome.core import events as ev
from thunderdome.tui.screens.frame_budget import LOAD_MEMORY, LOADED_CHART_INTERVAL, LOADED_FIGURES_EVERY, FrameBudget
from thunderdome.tui.screens.frame_loop import CHART_INTERVAL, FRAME_INTERVAL
from thunderdome.tui.screens.race import RaceScreen
from thunderdome.tui.widgets.leaderboard import Leaderboard


def over_budget() -> FrameBudget:
    budget = FrameBudget(FRAME_INTERVAL)
    budget.frame_cost, budget.paint_cost = 0.02, 0.02
    budget.begin()
    return budget


def test_within_budget_the_figures_and_the_chart_take_their_turns():
    budget = FrameBudget(FRAME_INTERVAL)
    budget.frame_cost, budget.paint_cost = 0.01, 0.01
    budget.begin()
    assert not budget.over
    assert [budget.figures(frame, changed=False) for frame in range(4)] == [True, False, True, False]
    assert budget.chart(True, figures=False) and not budget.chart(False, figures=True)
    assert budget.chart_interval(CHART_INTERVAL) == CHART_INTERVAL


def test_over_budget_the_figures_redraw_less_often_unless_a_lane_changed():
    budget = over_budget()
    assert budget.over
    drawn = [frame for frame in range(12) if budget.figures(frame, changed=False)]
    assert drawn == list(range(0, 12, LOADED_FIGURES_EVERY)) and LOADED_FIGURES_EVERY > 2
    assert budget.figures(1, changed=True)  # more than text arrived: the board shows it now


def test_an_overrun_is_remembered_for_a_while_then_forgotten():
    budget = over_budget()
    budget.frame_cost, budget.paint_cost = 0.001, 0.001
    for _ in range(LOAD_MEMORY - 1):
        budget.begin()
        assert budget.over
    budget.begin()
    assert not budget.over


def test_over_budget_the_chart_takes_any_frame_without_the_figures_at_a_lower_rate():
    budget = over_budget()
    assert budget.chart(False, figures=False) and not budget.chart(True, figures=True)
    assert budget.chart_interval(CHART_INTERVAL) == max(CHART_INTERVAL, LOADED_CHART_INTERVAL) > CHART_INTERVAL


class HeldOver(FrameBudget):
    """A budget that stays over, whatever the frames cost."""

    @property
    def over(self) -> bool:
        return True


async def test_an_overloaded_screen_shows_every_frames_text_and_one_reading_of_the_figures():
    source = HandSource()
    app = make(source)
    async with app.run_test(size=(200, 60)) as pilot:
        screen = app.screen
        assert isinstance(screen, RaceScreen)
        screen.budget = HeldOver(FRAME_INTERVAL)
        await wait_for(pilot, lambda: source.push is not None, "the source to start")
        start_race(source.push)
        tokens(source.push, 0.5, 20)
        await frames(pilot, screen, 4)
        board = screen.query_one(Leaderboard)
        drawn: list[tuple[str, int]] = []
        watch(board, "set_data", "board", screen, drawn)
        for name, view in screen.lanes.items():
            watch(view, "show", name, screen, drawn)
        for step in range(8):
            tokens(source.push, 1.0 + step * 0.05, 10)
            for name in NAMES:
                source.push(ev.TokenDelta(t=1.01 + step * 0.05, lane=name, text=f" step{step}"))
            await frames(pilot, screen, 1)
            for name in NAMES:  # this frame's text is in its lane, whatever the budget
                assert f"step{step}" in screen.lanes[name].stream.tail_lines(1)[0]
        by_frame: dict[int, set[str]] = {}
        for what, frame in drawn:
            by_frame.setdefault(frame, set()).add(what)
        assert by_frame and all(shown == {"board", *NAMES} for shown in by_frame.values())  # together, or neither
        redrawn = sorted(by_frame)
        assert len(redrawn) >= 2 and all(b - a <= LOADED_FIGURES_EVERY for a, b in zip(redrawn, redrawn[1:]))


def watch(widget: Any, method: str, label: str, screen: RaceScreen, drawn: list[tuple[str, int]]) -> None:
    """Note in ``drawn`` each frame in which ``widget.method`` is called."""
    original = getattr(widget, method)

    def noted(*args: Any, **kwargs: Any) -> Any:
        drawn.append((label, screen._frames))
        return original(*args, **kwargs)

    setattr(widget, method, noted)
