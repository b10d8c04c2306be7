"""The recorder: a race's events to a JSONL file, appended and flushed as they happen.

Invariant: what reaches disk is a header line followed by one event per line,
each line written whole and flushed within ~50 ms of its event, so a crash or
``kill -9`` leaves a file that loads up to its last complete line. No secret
reaches disk: every string is redacted (``thunderdome.core.redact``: the backends'
key variables, any ``*_API_KEY`` / ``*_TOKEN`` / ``*_SECRET`` variable of 8+
characters, URL credentials) before it is written, including a key a server
echoes into the token stream split across several deltas or across the
reasoning and answer channels of a turn.

The sink (``Recorder.__call__``) only appends to a deque, on whatever thread
or loop calls it; a writer thread serialises, redacts, writes and flushes in
batches, so the loop that stamps tokens pays one append per event
(``python -m benchmarks.recorder_cost``). Files are created exclusively: a
default path is reserved with ``O_EXCL``, so two races never share a file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import json
import operator
import os
import platform
import re
import sys
import threading
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, Callable, TextIO

import thunderdome
from thunderdome.core.batch_queue import BatchQueue
from thunderdome.core.events import Event, RaceStarted
from thunderdome.core.redact import HeldText, Secrets, known, redact_obj, remember_backend
from thunderdome.core.visible import json_safe

FORMAT = "thunderdome-recording"
VERSION = 2
"""2: ``lane_error`` became ``lane_failed``; fighter PIDs are ``fighter_spawned``
events, not notice text. ``replay`` still reads 1."""
FLUSH_INTERVAL = 0.02
"""Seconds: the writer coalesces events for at most this long per batch."""


# --- where recordings go -------------------------------------------------------------


def default_recordings_dir() -> Path:
    """$THUNDERDOME_RECORDINGS, else $XDG_DATA_HOME/thunderdome/recordings,
    else ~/.local/share/thunderdome/recordings."""
    explicit = os.environ.get("THUNDERDOME_RECORDINGS")
    if explicit:
        return Path(explicit).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser() / "thunderdome" / "recordings"


def default_recording_path(task: str) -> Path:
    """``<dir>/YYYYmmdd-HHMMSS-<task>.jsonl``, created empty and exclusively
    (``O_EXCL``) so no other race can take it; a suffix keeps two races
    started in the same second apart."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", task).strip("._") or "race"
    folder = default_recordings_dir()
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = folder / (f"{stamp}-{safe}.jsonl" if n == 1 else f"{stamp}-{safe}-{n}.jsonl")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
            return path
        except FileExistsError:
            n += 1


# --- the event scrubber ------------------------------------------------------------------


_NUMBERS = (int, float, bool, type(None))


class Redactor:
    """Replaces secret values with ``[redacted]`` in event dicts.

    The token deltas of one lane's turn (both channels) are redacted as one
    text (``redact.HeldText``): a delta whose text ends with the beginning of
    a secret is held back (whole, its ``t`` untouched) until the next delta of
    that turn or the lane's next other event shows whether the secret
    completes (a race-wide event such as ``winner_decided`` ends no lane's
    text: what waits is written after it). Every delta is still written, so counts and timings (the
    metrics) are unchanged; only the text of deltas that carried part of a
    secret changes."""

    def __init__(self, secrets: Secrets | set[str] | list[str] | tuple[str, ...] = ()) -> None:
        self.secrets = secrets if isinstance(secrets, Secrets) else Secrets(secrets)
        self._held: dict[tuple[str, int], HeldText[dict[str, Any]]] = {}
        self._small: dict[str, str] = {}
        """Redacted forms of the short strings every delta repeats (field
        names, lane names, channels)."""

    def add(self, secrets: Secrets | set[str]) -> None:
        self.secrets = self.secrets | (secrets.values if isinstance(secrets, Secrets) else secrets)
        self._small.clear()
        for held in self._held.values():
            held.secrets = self.secrets

    def _scrub_small(self, text: str) -> str:
        clean = self._small.get(text)
        if clean is None:
            clean = self.secrets.redact(text)
            if len(text) <= 64:
                if len(self._small) >= 4096:
                    self._small.clear()
                self._small[text] = clean
        return clean

    def _scrub_field(self, value: Any) -> Any:
        """A field name or value of a delta, redacted: short strings through
        their cache, numbers as they are (no secret in them), others walked."""
        kind = type(value)
        if kind is str:
            clean = self._small.get(value)
            return self._scrub_small(value) if clean is None else clean
        return value if kind in _NUMBERS else self.scrub_obj(value)

    def scrub_obj(self, obj: Any) -> Any:
        """A copy of ``obj`` (JSON-like) with every string redacted."""
        return redact_obj(obj, self.secrets)

    def feed(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Take one event dict; return the dicts now safe to write, in order."""
        if not self.secrets:
            return [data]
        if data.get("type") == "token_delta":
            text = data.get("text", "")
            clean = {self._scrub_field(k): self._scrub_field(v) for k, v in data.items() if k != "text"}
            key = (str(clean.get("lane", "")), int(clean.get("turn", 1) or 1))
            held = self._held.get(key)
            if held is None:
                held = self._held[key] = HeldText(self.secrets)
            return self._with_texts(held.push(clean, text if isinstance(text, str) else ""))
        lane = data.get("lane")
        out: list[dict[str, Any]] = []
        ends_all = not lane and data.get("type") == "race_finished"
        for key in list(self._held):  # a race-wide event mid-race (a winner called) ends no lane's text
            if key[0] == lane or ends_all:
                out.extend(self._with_texts(self._held.pop(key).release()))
        out.append(self.scrub_obj(data))
        return out

    def flush(self) -> list[dict[str, Any]]:
        """Release everything held (end of recording)."""
        out: list[dict[str, Any]] = []
        for key in list(self._held):
            out.extend(self._with_texts(self._held.pop(key).release()))
        return out

    @staticmethod
    def _with_texts(pairs: list[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
        for data, text in pairs:
            data["text"] = text
        return [data for data, _ in pairs]


# --- the recorder -------------------------------------------------------------------------


def header_for(race: dict[str, Any]) -> dict[str, Any]:
    """The first line of a recording, from a (scrubbed) race_started dict."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "tool_version": thunderdome.__version__,
        "task": race.get("task", ""),
        "kind": race.get("kind", ""),
        "title": race.get("title", ""),
        "backends": list(race.get("lanes", [])),
        "isolation": race.get("isolation", ""),
        "time_scale": race.get("time_scale", 1.0),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "recorded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _compact_encoder() -> Callable[[Any], str]:
    """``json.dumps(data, separators=(",", ":"), ensure_ascii=False)`` as one
    C encoder built once (``JSONEncoder.encode`` builds one per call, about
    half its cost for an event), else the plain encoder."""
    plain = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    if c_make_encoder is None:
        return plain.encode
    chunks = c_make_encoder(None, plain.default, encode_basestring, None, ":", ",", False, False, True)
    return lambda data: "".join(chunks(data, 0))


_raw_encode = _compact_encoder()


def _encode(data: dict[str, Any]) -> str:
    """The compact JSON of ``data`` without a raw DEL or C1 byte (a recording
    stays safe to ``cat``)."""
    return json_safe(_raw_encode(data))


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_FIELD_VALUES: dict[type, Callable[[Any], Any]] = {}


def _line(data: dict[str, Any]) -> str:
    return _encode(data) + "\n"


def _as_dict(event: Event) -> dict[str, Any]:
    """``event.to_dict()``, with the field names looked up once per class and
    the values read in one ``attrgetter`` call."""
    cls = type(event)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        if cls.to_dict is not Event.to_dict:  # a class with its own form keeps it
            return event.to_dict()
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        _FIELD_VALUES[cls] = operator.attrgetter(*names)
    values = _FIELD_VALUES[cls](event)
    data: dict[str, Any] = {"type": cls.type}
    data.update(zip(names, values) if len(names) > 1 else [(names[0], values)])
    return data


GIL_SWITCH_S = 0.0005
"""The interpreter's thread switch interval while a recorder runs (see ``Recorder.start``)."""


class Recorder:
    """A race sink that records to ``path``. ``await start()`` before the
    race (opens the file and starts the writer thread; raises OSError if it
    cannot), pass the recorder as a sink (from any thread), ``await close()``
    after (drains, flushes and closes).

    A write failure mid-race never raises through the race: it stops the
    recording and is kept in ``error``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lines_written = 0
        """Event lines written so far (the benchmarks check a recording really was made)."""
        self.error: str | None = None
        self._events: BatchQueue[Event] = BatchQueue(FLUSH_INTERVAL)
        self._thread: threading.Thread | None = None
        self._file: TextIO | None = None
        self._header_written = False
        self._pending: list[dict[str, Any]] = []
        self._redactor = Redactor(known())

    async def start(self) -> None:
        if self._thread is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by the writer thread
        # The writer shares the GIL with the loop that stamps tokens: hand it
        # back within 0.5 ms, not CPython's default 5 ms, so a batch being
        # serialised never delays a stamp by more than that.
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
        self._thread = threading.Thread(target=self._write_loop, name=f"recorder:{self.path.name}", daemon=True)
        self._thread.start()

    def __call__(self, event: Event) -> None:
        """The sink: append, and wake the writer if it sleeps. Never raises."""
        if not self._events.closed:
            self._events.put(event)

    async def close(self) -> None:
        """Write everything queued, flush and close the file."""
        thread = self._thread
        if thread is None:
            return
        self._events.close()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)

    async def __aenter__(self) -> "Recorder":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _write_loop(self) -> None:
        """The writer thread: wait for events, let a burst gather, write it."""
        try:
            for batch in self._events.batches():
                self._write(self._render(batch))
            tail = [_line(d) for d in self._redactor.flush()]
            if not self._header_written:
                tail = [_line(header_for({}))] + [_line(self._redactor.scrub_obj(d)) for d in self._pending] + tail
                self._header_written = True
            self._write(tail)
        finally:
            self._close_file()

    def _close_file(self) -> None:
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError as exc:
            self.error = self.error or f"closing {self.path}: {exc.strerror or exc}"
        self._file = None

    def _render(self, batch: list[Event]) -> list[str]:
        lines: list[str] = []
        feed = self._redactor.feed
        for event in batch:
            if not self._header_written and isinstance(event, RaceStarted):
                for lane in event.lanes:  # key variables named by the race (a child process, a replay's header)
                    remember_backend(lane)
                self._redactor.add(known())
                data = self._redactor.scrub_obj(event.to_dict())
                lines.append(_line(header_for(data)))
                self._header_written = True
                lines.extend(_line(self._redactor.scrub_obj(d)) for d in self._pending)
                self._pending.clear()
                lines.append(_line(data))
                continue
            data = _as_dict(event)
            if not self._header_written:  # events before race_started wait for the header
                self._pending.append(data)
                continue
            out = feed(data)
            if len(out) == 1:
                lines.append(_encode(out[0]) + "\n")
            else:
                lines.extend(_line(d) for d in out)
        return lines

    def _write(self, lines: list[str]) -> None:
        if not lines or self.error is not None or self._file is None:
            return
        try:
            self._file.write("".join(lines))
            self._file.flush()
            self.lines_written += len(lines)
        except OSError as exc:
            self.error = f"recording stopped: cannot write {self.path}: {exc.strerror or exc}"


__all__ = [
    "FORMAT",
    "VERSION",
    "Recorder",
    "Redactor",
    "default_recordings_dir",
    "default_recording_path",
    "header_for",
]
