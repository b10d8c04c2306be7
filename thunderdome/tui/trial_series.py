"""Trials in the TUI: one race run ``total`` times back to back, then summarised.

Invariant: trial ``i`` (from 0) is seeded with ``seed_offset = i``, as the
headless run seeds its trials; the summary exists only once every trial has
finished, and is ``summarise_trials`` of their results in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thunderdome.sources.base import Source, SourceFactory
    from thunderdome.core.specs import BackendSpec, TaskSpec


@dataclass
class TrialSeries:
    """The trials of the race on screen (``total`` 1: no trials, a single race)."""

    total: int
    results: list[dict[str, Any]] = field(default_factory=list)
    """The finished trials' results (``Standings.results()``), in order."""
    summary: dict[str, Any] | None = None
    """``summarise_trials`` of the last complete set (what ``e`` exports on its screen)."""

    @property
    def running(self) -> bool:
        """More than one trial was asked for."""
        return self.total > 1

    @property
    def next_index(self) -> int:
        """The index of the trial to start next (its ``seed_offset``)."""
        return len(self.results)

    def label(self) -> str:
        """``3/5`` for the trial about to start; '' with no trials."""
        return f"{self.next_index + 1}/{self.total}" if self.running else ""

    def source(self, factory: SourceFactory, task: TaskSpec, specs: list[BackendSpec]) -> Source:
        """The next race's source; with trials, the factory gets the trial's ``seed_offset``."""
        if self.running:
            return factory(task, list(specs), seed_offset=self.next_index)  # type: ignore[call-arg]
        return factory(task, list(specs))

    def finished(self, results: dict[str, Any]) -> bool:
        """Keep one trial's results; True once the last has finished (``summary`` is then set)."""
        from thunderdome.core.trials import summarise_trials

        self.results.append(results)
        if len(self.results) < self.total:
            return False
        self.summary = summarise_trials(self.results)
        return True

    def restart(self) -> None:
        """Forget the results: the next trial is the first again."""
        self.results, self.summary = [], None

    def export(self) -> dict[str, Any]:
        """What the trials' export holds, as ``--trials --json`` writes it."""
        return {"races": self.results, "summary": self.summary}
