"""What the app is built from: ``AppConfig``, and the checks ``make_app``
runs on its keywords before it builds one.

Invariant: a config ``make_app`` builds makes sense before the app starts —
its mode is one of ``MODES``, a race has a task and backends, a replay has
a file, and trials race one task in race mode; a wrong combination is a
``ValueError`` at build time, never a failure on screen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from thunderdome.sources.base import SourceFactory
from thunderdome.core.specs import BackendSpec, TaskSpec

MODES = ("setup", "race", "replay")


@dataclass
class AppConfig:
    """Everything ``make_app`` was given."""

    mode: str
    task: TaskSpec | None = None
    specs: list[BackendSpec] = field(default_factory=list)
    tasks_after: list[TaskSpec] = field(default_factory=list)
    source_factory: SourceFactory | None = None
    replay_path: str | None = None
    speed: float = 1.0
    clock: Callable[[], float] = time.monotonic
    """The UI's clock (monotonic seconds); tests freeze it for exact pictures."""
    results_delay: float = 1.5
    """Seconds the finished race stays on screen before the results."""
    output_dir: str | None = None
    """Where screenshots and exports go when there is no recording folder."""
    discover: bool = True
    """Setup screen: probe local servers on their default ports."""
    next_delay: float | None = 10.0
    """Seconds the results of a race stay up before the next task of
    ``tasks_after`` starts by itself (the demo); None: wait for ``n``."""
    presenter: bool = False
    """Start in presenter mode (``--big``): large figures, high contrast."""
    trials: int = 1
    """Race mode: run the race this many times back to back, then show the
    trials' summary (``--trials N``)."""


def check_modes(
    mode: str,
    *,
    task: TaskSpec | None,
    specs: list[BackendSpec] | None,
    replay_path: str | Path | None,
    trials: int,
    tasks_after: list[TaskSpec] | None,
) -> None:
    """Raise ``ValueError`` unless the keywords make sense for ``mode``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "race" and (task is None or not specs):
        raise ValueError("race mode needs a task and at least one backend")
    if mode == "replay" and replay_path is None:
        raise ValueError("replay mode needs replay_path")
    if trials > 1 and (mode != "race" or tasks_after):
        raise ValueError("trials race one task in race mode")
