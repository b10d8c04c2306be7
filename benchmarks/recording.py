"""Benchmarks record their races as real races do, to files that are gone afterwards.

Invariant: a benchmark run with recording on records through the same
``Recorder`` (serialising on its own thread) that ``thunderdome race`` uses,
into a temporary folder removed when the race is done; a recording that
failed or wrote nothing raises, so no figure is reported from a race whose
recording broke. With recording off these helpers give None and record
nothing.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

RECORD_HELP = "races do not record (default: they record to a temp file, as real races do)"
"""The help of every benchmark's ``--no-record`` switch."""


@contextlib.contextmanager
def temp_recording_path(record: bool, prefix: str = "bench-record-") -> Iterator[Path | None]:
    """A recording path in a fresh temporary folder (None when not recording)."""
    if not record:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder) / "race.jsonl"


def check_recording(error: str | None, events: int) -> None:
    """Raise when a recording failed or holds no event."""
    if error or not events:
        raise RuntimeError(f"the recording failed: {error or 'nothing written'}")


@contextlib.asynccontextmanager
async def temp_recorder(record: bool, prefix: str = "bench-record-") -> AsyncIterator[Any]:
    """A started ``Recorder`` on a temporary file, closed and checked on the
    way out (None when not recording). Use it as the race's first sink."""
    from thunderdome.recording.record import Recorder

    with temp_recording_path(record, prefix) as path:
        if path is None:
            yield None
            return
        recorder = Recorder(path)
        await recorder.start()
        try:
            yield recorder
        finally:
            await recorder.close()
        check_recording(recorder.error, recorder.lines_written)
