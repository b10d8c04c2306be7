"""How the app picks a live source: here or in a child process, recorded where.

Invariant: every live race the TUI starts comes from ``live_source_factory``,
so each one runs through ``record_race`` (one recording policy) and gets its
own recording path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thunderdome.sources.base import Source, SourceFactory
from thunderdome.core.specs import BackendSpec, TaskSpec


def live_source_factory(
    *,
    record: bool | str | Path | None = True,
    time_scale: float = 1.0,
    max_tokens: int | None = None,
    seed: int | None = None,
    race_process: bool = True,
    **run_kwargs: Any,
) -> SourceFactory:
    """The default factory: a recorded live race. ``record``: True for the
    default recordings folder, a path, or None/False for no recording. A
    fixed path is used as is for the first race and numbered after that.
    ``race_process``: run the race in a child process (the default: the UI
    then cannot delay a timestamp, see benchmarks/tui_ttft_fidelity.py), or
    on a thread of this process. The factory's ``seed_offset`` (the trial's
    index when the app runs trials) is added to ``seed``, as the headless
    trials seed theirs."""
    count = 0

    def factory(task: TaskSpec, specs: list[BackendSpec], *, seed_offset: int = 0) -> Source:
        nonlocal count
        count += 1
        path: str | Path | None = None
        if record is True:
            from thunderdome.recording.record import default_recording_path

            path = default_recording_path(task.name)
        elif record:
            base = Path(record)
            path = base if count == 1 else base.with_name(f"{base.stem}-{count}{base.suffix or '.jsonl'}")
        kwargs = dict(run_kwargs, time_scale=time_scale, max_tokens=max_tokens, seed=None if seed is None else seed + seed_offset)
        if race_process:
            from thunderdome.sources.child_process import child_race_source

            return child_race_source(task, specs, record_path=path, **kwargs)
        from thunderdome.sources.live import LiveSource

        return LiveSource(task, specs, record_path=path, **kwargs)

    return factory
