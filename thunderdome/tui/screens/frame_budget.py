"""The frame budget: which of a frame's optional redraws it can afford.

Invariant: the budget never decides the token text (a lane's text is shown
in the frame that folded it); it only thins the figures and the chart. A
frame is *over budget* when one of the last ``LOAD_MEMORY`` frames plus the
paint after it took more than ``BUDGET_SHARE`` of the frame interval (a
remembered overrun: the rates do not flap with every frame). A frame that
brought more than token text (``changed``) redraws its figures (lane headers and
leaderboard, always together: one reading) as before; otherwise the figures
redraw every other frame within budget and every ``LOADED_FIGURES_EVERY``-th
frame over it, and over budget the chart redraws only in a frame without the
figures, at ``LOADED_CHART_INTERVAL`` instead of its own rate.
"""

from __future__ import annotations

BUDGET_SHARE = 0.6
"""Share of the frame interval the previous frame and its paint may take
before this frame sheds its optional redraws."""

LOAD_MEMORY = 10
"""Frames an overrun keeps the budget over (0.5 s at 20 Hz)."""

LOADED_FIGURES_EVERY = 4
"""Over budget, the figures redraw every 4th frame (5 Hz at 20 Hz): with all
lanes' headers changing, they are the costliest part of a frame's paint."""

LOADED_CHART_INTERVAL = 0.5
"""Race seconds between chart redraws while frames are over budget (the
chart is a trend line: 2 Hz still shows it move)."""


class FrameBudget:
    """Fed the cost of each frame and paint; asked what this frame redraws."""

    def __init__(self, interval: float) -> None:
        self.limit = interval * BUDGET_SHARE
        self.frame_cost = 0.0
        self.paint_cost = 0.0
        self._loaded = 0

    def begin(self) -> None:
        """A frame starts: weigh the previous frame and its paint."""
        overran = self.frame_cost + self.paint_cost > self.limit
        self._loaded = LOAD_MEMORY if overran else max(self._loaded - 1, 0)

    @property
    def over(self) -> bool:
        """One of the last ``LOAD_MEMORY`` frames and its paint took more than the budget."""
        return self._loaded > 0

    def figures(self, frame: int, changed: bool) -> bool:
        """Whether the figures redraw in frame number ``frame``."""
        return changed or frame % (LOADED_FIGURES_EVERY if self.over else 2) == 0

    def chart(self, due: bool, figures: bool) -> bool:
        """Whether the chart may redraw in this frame (``due``: it is its turn;
        over budget, any frame without the figures is its turn)."""
        return not figures if self.over else due

    def chart_interval(self, normal: float) -> float:
        """Race seconds between chart redraws at this frame's load."""
        return max(normal, LOADED_CHART_INTERVAL) if self.over else normal
