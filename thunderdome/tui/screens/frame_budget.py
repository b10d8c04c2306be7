"""The frame budget: which of a frame's optional redraws it can afford.

Invariant: the budget never decides the token text (a lane's text is shown
in the frame that folded it); it only thins the figures and the chart. A
frame is *over budget* when the previous frame plus the paint after it took
more than ``BUDGET_SHARE`` of the frame interval. A frame that brought more
than token text (``changed``) redraws its figures (lane headers and
leaderboard, always together: one reading) as before; otherwise an over-budget
frame puts its figures off by one frame, never two in a row (the next frame
draws them whatever it costs), and draws the chart only in a frame without
the figures, at ``LOADED_CHART_INTERVAL`` instead of the chart's own rate.
"""

from __future__ import annotations

BUDGET_SHARE = 0.6
"""Share of the frame interval the previous frame and its paint may take
before this frame sheds its optional redraws."""

LOADED_CHART_INTERVAL = 0.5
"""Race seconds between chart redraws while frames are over budget (the
chart is a trend line: 2 Hz still shows it move)."""


class FrameBudget:
    """Fed the cost of each frame and paint; asked what this frame redraws."""

    def __init__(self, interval: float) -> None:
        self.limit = interval * BUDGET_SHARE
        self.frame_cost = 0.0
        self.paint_cost = 0.0
        self.figures_owed = False
        """The figures were put off last frame: this one draws them."""

    @property
    def over(self) -> bool:
        """The previous frame and its paint took more than the budget."""
        return self.frame_cost + self.paint_cost > self.limit

    def figures(self, due: bool, changed: bool) -> bool:
        """Whether the figures redraw in this frame (``due``: it is their turn)."""
        draw = changed or self.figures_owed or (due and not self.over)
        self.figures_owed = due and not draw
        return draw

    def chart(self, due: bool, figures: bool) -> bool:
        """Whether the chart may redraw in this frame (``due``: it is its turn;
        over budget, any frame without the figures is its turn)."""
        return not figures if self.over else due

    def chart_interval(self, normal: float) -> float:
        """Race seconds between chart redraws at this frame's load."""
        return max(normal, LOADED_CHART_INTERVAL) if self.over else normal
