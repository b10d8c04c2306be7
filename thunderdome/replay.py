"""Recordings back into events: the loader (playing them is ``sources.replay``).

Invariant: this module reads files and imports no race code and no source,
so the recorder, the loader and the race never import each other.

Loading is strict about everything but the last line: an unknown format
version, a corrupt line in the middle or a file that is not a recording raises
``RecordingError`` ("FILE:LINE: problem"); an incomplete last line (a crash
mid-write) is skipped with a notice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thunderdome.events import EVENT_TYPES, Event, EventFormatError, RaceFinished, event_from_dict
from thunderdome.metrics import compute_results
from thunderdome.record import FORMAT, VERSION

READABLE_VERSIONS = (1, VERSION)
"""Format 1 (the first release) is upgraded on load, see ``_upgrade_v1``."""


class RecordingError(Exception):
    """A recording cannot be used. The message is one line: ``FILE:LINE: problem``."""


@dataclass
class Recording:
    """A loaded recording: its header line, its events, and what was odd about it."""

    header: dict[str, Any]
    events: list[Event]
    notices: list[str] = field(default_factory=list)
    path: str = ""

    @property
    def finished(self) -> bool:
        return any(isinstance(e, RaceFinished) for e in self.events)

    @property
    def duration(self) -> float:
        return max((e.t for e in self.events), default=0.0)


def load_recording(path: str | Path) -> Recording:
    """Read a recording. Raises RecordingError with a ``FILE:LINE: problem`` line."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise RecordingError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{name}: is a directory, not a recording") from None
    except OSError as exc:
        raise RecordingError(f"{name}: cannot read: {exc.strerror or exc}") from None
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    cut = not text.endswith("\n")  # the last line never got its newline
    if not cut:
        lines.pop()
    if not any(line.strip() for line in lines):
        raise RecordingError(f"{name}:1: empty file, not a Thunderdome recording")
    header = _header(name, lines[0])
    events: list[Event] = []
    notices: list[str] = []
    unknown: dict[str, int] = {}
    last = len(lines)
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if cut and lineno == last:
                notices.append(
                    f"{name}:{lineno}: last line is incomplete (the recording was cut off); "
                    f"replaying the {len(events)} events before it"
                )
                break
            raise RecordingError(f"{name}:{lineno}: corrupt line: not JSON ({exc.msg}, column {exc.colno})") from None
        if header["version"] == 1 and isinstance(obj, dict):
            obj = _upgrade_v1(obj)
        if isinstance(obj, dict) and isinstance(obj.get("type"), str) and obj["type"] not in EVENT_TYPES:
            unknown[obj["type"]] = unknown.get(obj["type"], 0) + 1
            continue
        try:
            events.append(event_from_dict(obj))
        except EventFormatError as exc:
            raise RecordingError(f"{name}:{lineno}: bad event: {exc}") from None
    if unknown:
        kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(unknown.items()))
        notices.append(f"{name}: skipped events of types this version does not know: {kinds}")
    if events and not any(isinstance(e, RaceFinished) for e in events):
        notices.append(f"{name}: the race did not finish in this recording (it stops at t={max(e.t for e in events):.2f} s)")
    return Recording(header=header, events=events, notices=notices, path=name)


_V1_FIGHTER = re.compile(r"fighter PID (\d{1,9})")


def _upgrade_v1(obj: dict[str, Any]) -> dict[str, Any]:
    """A format-1 event as format 2 writes it: ``lane_error`` is now
    ``lane_failed``; the arena's "fighter PID N" notice is now a
    ``fighter_spawned`` event."""
    kind = obj.get("type")
    if kind == "lane_error":
        return {**obj, "type": "lane_failed"}
    if kind == "notice" and obj.get("lane") and isinstance(obj.get("message"), str):
        match = _V1_FIGHTER.fullmatch(obj["message"])
        if match:
            return {"type": "fighter_spawned", "t": obj.get("t"), "lane": obj["lane"], "pid": int(match.group(1))}
    return obj


def _header(name: str, line: str) -> dict[str, Any]:
    not_ours = f"{name}:1: not a Thunderdome recording (the first line is not a recording header)"
    try:
        header = json.loads(line)
    except json.JSONDecodeError:
        raise RecordingError(not_ours) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise RecordingError(not_ours)
    version = header.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise RecordingError(
            f"{name}:1: recording format version {version!r} is not supported "
            f"(this thunderdome reads versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    return header


def replay_results(path: str | Path) -> dict[str, Any]:
    """The ``--json`` results dict of a recorded race (computed from its events)."""
    return compute_results(load_recording(path).events)


def recording_extent(path: str | Path) -> tuple[int, float | None]:
    """How many events a recording file holds and the ``t`` of the last one,
    read in chunks without parsing every line (cheap for a long race). A cut
    last line does not count, as ``load_recording`` skips it too; a path that
    is not a regular file (``/dev/full``) holds nothing."""
    file = Path(path)
    if not file.is_file():
        return 0, None
    lines, carry, last = 0, b"", b""
    with file.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            buf = carry + chunk
            end = buf.rfind(b"\n")
            if end < 0:
                carry = buf
                continue
            lines += buf.count(b"\n", 0, end + 1)
            last = buf[buf.rfind(b"\n", 0, end) + 1 : end]
            carry = buf[end + 1 :]
    events = max(lines - 1, 0)  # the first line is the header
    if not events:
        return 0, None
    try:
        t = json.loads(last).get("t")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return events, None
    return events, float(t) if isinstance(t, (int, float)) else None


__all__ = [
    "Recording",
    "RecordingError",
    "load_recording",
    "recording_extent",
    "replay_results",
]
