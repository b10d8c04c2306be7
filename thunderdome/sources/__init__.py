"""Where events come from: one protocol, no UI.

Invariant: every event source lives here and has the surface of
``base.Source``; nothing in this package imports textual, and nothing here
is imported by the core (events, metrics, record, replay) or the race.

    base.py           Source, ReplayControls, RecordingStatus
    threaded.py       ThreadedSource: a source on its own thread and loop
    recorded_race.py  record_race: run a race and record it (the one policy)
    live.py           LiveSource: a live race on a thread of this process
    child_process.py  ProcessSource: a live race in a child process
    replay.py         ReplaySource: a recording played back, with controls
    fixed.py          ListSource, BrokenSource: no race (tests, bad files)
    factory.py        live_source_factory: what the TUI starts
"""

from __future__ import annotations

from thunderdome.sources.base import OnEvent, RecordingStatus, ReplayControls, Source, SourceFactory

__all__ = ["OnEvent", "RecordingStatus", "ReplayControls", "Source", "SourceFactory"]
