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
from typing import Any, BinaryIO, Iterator

from thunderdome.core.errors import UsageError
from thunderdome.core.events import EVENT_TYPES, Event, EventFormatError, RaceFinished, event_from_dict
from thunderdome.core.metrics import compute_results
from thunderdome.core.readfile import MIB, FileRefused, open_limited
from thunderdome.recording.record import FORMAT, VERSION

RECORDING_LIMIT = 1024 * MIB
"""The largest recording we open (a long race at 16 lanes is tens of MiB)."""
READABLE_VERSIONS = (1, VERSION)
"""Format 1 (the first release) is upgraded on load, see ``_upgrade_v1``."""


class RecordingError(UsageError):
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


MAX_LINE = 64 * MIB
"""The longest recording line we parse (a whole race's reply in one delta is far less)."""


class RecordingStream:
    """A recording read as it is played: its header at once, its events one
    pass at a time (``events()``), so memory stays bounded however long the
    race was. ``notices`` fill up as the pass meets something odd;
    ``progress`` is the fraction of the file read so far."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.notices: list[str] = []
        self.progress = 0.0
        with self._open() as fh:
            first = fh.readline(MAX_LINE)
        if not first.strip():
            with self._open() as fh:
                if not fh.read(MAX_LINE).strip():
                    raise RecordingError(f"{self.path}:1: empty file, not a Thunderdome recording")
            raise RecordingError(f"{self.path}:1: not a Thunderdome recording (the first line is not a recording header)")
        self.header = _header(self.path, first.decode("utf-8", errors="replace"))
        self.size = max(Path(self.path).stat().st_size, 1)

    def _open(self) -> BinaryIO:
        try:
            return open_limited(self.path, RECORDING_LIMIT, "a recording")
        except FileRefused as exc:
            raise RecordingError(str(exc)) from None

    def events(self) -> Iterator[Event]:
        """One pass over the events. Raises RecordingError (``FILE:LINE:
        problem``) at a corrupt line in the middle; stops with a notice at an
        incomplete last line or a lane clock that goes backwards."""
        name, version = self.path, self.header["version"]
        self.notices.clear()
        unknown: dict[str, int] = {}
        lane_t: dict[str, float] = {}
        count, last_t, finished, read = 0, 0.0, False, 0
        with self._open() as fh:
            read += len(fh.readline(MAX_LINE))
            for lineno, raw in enumerate(iter(lambda: fh.readline(MAX_LINE), b""), start=2):
                read += len(raw)
                if count % 4096 == 0:
                    self.progress = min(read / self.size, 1.0)
                complete = raw.endswith(b"\n")
                line = raw.decode("utf-8", errors="replace")
                if not line.strip():
                    continue
                try:
                    obj = parse_json_line(line)
                except ValueError as exc:
                    if not complete and len(raw) < MAX_LINE:  # the last line never got its newline
                        self.notices.append(
                            f"{name}:{lineno}: last line is incomplete (the recording was cut off); "
                            f"replaying the {count} events before it"
                        )
                        break
                    reason = f"a line longer than {MAX_LINE // MIB} MiB" if not complete else str(exc)
                    raise RecordingError(f"{name}:{lineno}: corrupt line: {reason}") from None
                if version == 1 and isinstance(obj, dict):
                    obj = _upgrade_v1(obj)
                if isinstance(obj, dict) and isinstance(obj.get("type"), str) and obj["type"] not in EVENT_TYPES:
                    unknown[obj["type"]] = unknown.get(obj["type"], 0) + 1
                    continue
                try:
                    event = event_from_dict(obj)
                except EventFormatError as exc:
                    raise RecordingError(f"{name}:{lineno}: bad event: {exc}") from None
                backwards = _goes_backwards(event, lane_t)
                if backwards:
                    self.notices.append(f"{name}:{lineno}: {backwards}; replaying the {count} events before it")
                    break
                count += 1
                last_t = max(last_t, event.t)
                finished = finished or isinstance(event, RaceFinished)
                yield event
        self.progress = 1.0
        if unknown:
            kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(unknown.items()))
            self.notices.append(f"{name}: skipped events of types this version does not know: {kinds}")
        if count and not finished:
            self.notices.append(f"{name}: the race did not finish in this recording (it stops at t={last_t:.2f} s)")


def load_recording(path: str | Path) -> Recording:
    """Read a whole recording into memory (small ones: tests, the TUI's
    results). Raises RecordingError with a ``FILE:LINE: problem`` line."""
    stream = RecordingStream(path)
    events = list(stream.events())
    return Recording(header=stream.header, events=events, notices=stream.notices, path=stream.path)


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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json_line(line: str) -> Any:
    """One JSON line of a recording. Raises ValueError with a short reason for
    anything ``json.loads`` refuses, nests too deep to parse, holds an integer
    too long to convert, or spells ``NaN``/``Infinity``."""
    try:
        return json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise ValueError("not JSON this reader accepts (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"not JSON this reader accepts ({str(exc).split(':')[0]})") from None


def _goes_backwards(event: Event, lane_t: dict[str, float]) -> str:
    """Why ``event`` cannot follow the events before it (its lane's clock
    went backwards), or ''."""
    lane = getattr(event, "lane", "")
    if not lane:
        return ""
    before = lane_t.get(lane)
    if before is not None and event.t < before:
        return f"lane {lane!r}: t goes backwards ({event.t:g} s after {before:g} s)"
    lane_t[lane] = event.t
    return ""


def _header(name: str, line: str) -> dict[str, Any]:
    not_ours = f"{name}:1: not a Thunderdome recording (the first line is not a recording header)"
    try:
        header = parse_json_line(line)
    except ValueError:
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
    except (ValueError, RecursionError, AttributeError):  # our own file, but cut anywhere
        return events, None
    return events, float(t) if isinstance(t, (int, float)) else None


__all__ = [
    "Recording",
    "RecordingError",
    "RecordingStream",
    "load_recording",
    "recording_extent",
    "replay_results",
]
