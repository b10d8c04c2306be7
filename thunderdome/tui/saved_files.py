"""What the app writes to disk besides the recording, and where: exports,
screenshots, and the closing word on each recording.

Invariant: files go to the configured folder, else beside a recording that
is complete, else the current folder; nothing ever goes next to a recording
that failed. Every path or message printed is made visible and redacted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

from thunderdome.core.redact import redact
from thunderdome.sources.base import RecordingStatus
from thunderdome.core.visible import visible_line


def complete_recording(status: RecordingStatus | None) -> str | None:
    """The recording's path if it is complete; None when there is none, or it failed."""
    return status.path if status is not None and status.complete else None


def output_folder(configured: str | None, recording: str | None) -> Path:
    """``configured`` if given, else the folder of ``recording`` (a complete one), else cwd."""
    if configured:
        return Path(configured)
    if recording:
        return Path(recording).parent
    return Path.cwd()


def export_stem(recording: str | None, task: str | None) -> str:
    """The recording's name if there is one, else ``thunderdome-TASK-YYYYmmdd-HHMMSS``."""
    if recording:
        return Path(recording).stem
    return f"thunderdome-{task or 'race'}-{time.strftime('%Y%m%d-%H%M%S')}"


def export_json(payload: dict[str, Any], folder: Path, stem: str) -> str:
    """Write ``payload`` as ``stem.json`` into ``folder`` (no raw control byte); return its path."""
    from thunderdome.core.visible import json_safe

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.json"
    path.write_text(json_safe(json.dumps(payload, indent=2, ensure_ascii=False)) + "\n", encoding="utf-8")
    return str(path)


def export_files(results: dict[str, Any], folder: Path, stem: str) -> list[str]:
    """Write ``stem.md`` and ``stem.json`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in ("md", "json"):
        try:
            from thunderdome.output.export import export_results

            text = export_results(results, fmt)
        except ImportError:
            if fmt != "json":
                continue
            text = json.dumps(results, indent=2, ensure_ascii=False) + "\n"
        path = folder / f"{stem}.{fmt}"
        path.write_text(text, encoding="utf-8")
        written.append(str(path))
    return written


def recording_report(statuses: Iterable[RecordingStatus | None]) -> tuple[list[str], bool]:
    """The lines to print once the terminal is back (``recorded PATH`` or why
    a recording is incomplete), and whether any recording failed."""
    lines: list[str] = []
    failed = False
    for status in statuses:
        if status is None:
            continue
        if not status.complete:
            lines.append(f"thunderdome: {visible_line(redact(status.describe()))}")
            failed = True
        elif Path(status.path).exists():
            path = visible_line(str(status.path))
            lines.append(f"thunderdome: recorded {path}  (replay: thunderdome replay {path})")
    return lines, failed
