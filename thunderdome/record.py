"""The recorder: a race's events to a JSONL file, appended and flushed as they happen.

Invariant: what reaches disk is a header line followed by one event per line,
each line written whole and flushed within ~50 ms of its event, so a crash or
``kill -9`` leaves a file that loads up to its last complete line. No secret
reaches disk: every string is scrubbed of the values of the backends' key
variables (and of any ``*_API_KEY`` / ``*_TOKEN`` / ``*_SECRET`` variable of
8+ characters) before it is written, including a key a server echoes into the
token stream split across several deltas.

The sink (``Recorder.__call__``) only enqueues; a writer task on the same
event loop serialises, scrubs, writes (aiofiles) and flushes in batches.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import json
import os
import platform
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Mapping

import aiofiles

import thunderdome
from thunderdome.events import Event, RaceStarted

FORMAT = "thunderdome-recording"
VERSION = 2
"""2: ``lane_error`` became ``lane_failed``; fighter PIDs are ``fighter_spawned``
events, not notice text. ``replay`` still reads 1."""
REDACTED = "[redacted]"
SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET")
MIN_SUFFIX_SECRET = 8
"""Variables found by suffix are secrets only from this length on."""
MIN_NAMED_SECRET = 4
"""A backend's own key variable is scrubbed from this length on (shorter
values cannot be real keys and would shred ordinary text)."""
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
    """``<dir>/YYYYmmdd-HHMMSS-<task>.jsonl``; a suffix keeps two races started
    in the same second apart."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", task).strip("._") or "race"
    folder = default_recordings_dir()
    path = folder / f"{stamp}-{safe}.jsonl"
    n = 2
    while path.exists():
        path = folder / f"{stamp}-{safe}-{n}.jsonl"
        n += 1
    return path


# --- the secret scrubber ----------------------------------------------------------------


def env_secrets(names: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> set[str]:
    """Values to scrub: those of the named variables, and of every variable
    whose name ends in _API_KEY/_TOKEN/_SECRET with a value of 8+ chars."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for name in names:
        value = env.get(name) or ""
        for v in (value, value.strip()):
            if len(v) >= MIN_NAMED_SECRET:
                found.add(v)
    for name, value in env.items():
        if name.upper().endswith(SECRET_SUFFIXES):
            for v in (value, value.strip()):
                if len(v) >= MIN_SUFFIX_SECRET:
                    found.add(v)
    return found


class Redactor:
    """Replaces secret values with ``[redacted]`` in event dicts.

    Token deltas of one stream (lane, turn, channel) are scrubbed as one text:
    a delta whose text ends with the beginning of a secret is held back (whole,
    its ``t`` untouched) until the next delta of that stream or the lane's next
    other event shows whether the secret completes. Every delta is still
    written, so counts and timings (the metrics) are unchanged; only the text
    of deltas that carried part of a secret changes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        self._held: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        self._longest = 0
        self._firsts: frozenset[str] = frozenset()
        self._small: dict[str, str] = {}
        """Scrubbed forms of the short strings every delta repeats (field
        names, lane names, channels)."""
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        merged = set(self.secrets) | {s for s in secrets if s}
        self.secrets = sorted(merged, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, self.secrets))) if self.secrets else None
        self._longest = max((len(s) for s in self.secrets), default=0)
        self._firsts = frozenset(s[0] for s in self.secrets)
        self._small.clear()

    def _scrub_small(self, text: str) -> str:
        clean = self._small.get(text)
        if clean is None:
            clean = self.scrub(text)
            if len(text) <= 64:
                if len(self._small) >= 4096:
                    self._small.clear()
                self._small[text] = clean
        return clean

    def scrub(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def scrub_obj(self, obj: Any) -> Any:
        """A copy of ``obj`` (JSON-like) with every string scrubbed."""
        if self._pattern is None:
            return obj
        if isinstance(obj, str):
            return self.scrub(obj)
        if isinstance(obj, dict):
            return {self.scrub(k) if isinstance(k, str) else k: self.scrub_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.scrub_obj(v) for v in obj]
        return obj

    def feed(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Take one event dict; return the dicts now safe to write, in order."""
        if self._pattern is None:
            return [data]
        if data.get("type") == "token_delta":
            text = data.get("text", "")
            small = self._scrub_small
            clean: dict[str, Any] = {}
            for k, v in data.items():
                if k != "text":
                    clean[small(k) if isinstance(k, str) else k] = small(v) if isinstance(v, str) else self.scrub_obj(v)
            clean["text"] = text = text if isinstance(text, str) else ""
            key = (str(clean.get("lane", "")), int(clean.get("turn", 1) or 1), str(clean.get("channel", "")))
            held = self._held.get(key)
            if held is None and self._pattern.search(text) is None and self._secret_prefix_start(text, 0) == len(text):
                return [clean]  # nothing held, nothing secret, no secret starting at its end
            self._held.setdefault(key, []).append(clean)
            return self._release(key, final=False)
        lane = data.get("lane")
        out: list[dict[str, Any]] = []
        for key in list(self._held):
            if not lane or key[0] == lane:
                out.extend(self._release(key, final=True))
        out.append(self.scrub_obj(data))
        return out

    def flush(self) -> list[dict[str, Any]]:
        """Release everything held (end of recording)."""
        out: list[dict[str, Any]] = []
        for key in list(self._held):
            out.extend(self._release(key, final=True))
        return out

    def _release(self, key: tuple[str, int, str], *, final: bool) -> list[dict[str, Any]]:
        held = self._held.get(key, [])
        texts = [d["text"] for d in held]
        whole = "".join(texts)
        assert self._pattern is not None
        matches = [(m.start(), m.end()) for m in self._pattern.finditer(whole)]
        tail_from = matches[-1][1] if matches else 0
        hold_from = len(whole) if final else self._secret_prefix_start(whole, tail_from)
        # rebuild each delta's text: characters outside matches, REDACTED where a match starts
        out_texts: list[str] = []
        pos = 0
        mi = 0
        for text in texts:
            end = pos + len(text)
            parts: list[str] = []
            i = pos
            while i < end:
                while mi < len(matches) and matches[mi][1] <= i:
                    mi += 1
                if mi < len(matches) and matches[mi][0] <= i < matches[mi][1]:
                    if i == matches[mi][0]:
                        parts.append(REDACTED)
                    i = min(end, matches[mi][1])
                    continue
                nxt = matches[mi][0] if mi < len(matches) else end
                nxt = min(max(nxt, i + 1), end)
                parts.append(whole[i:nxt])
                i = nxt
            out_texts.append("".join(parts))
            pos = end
        released: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        pos = 0
        for data, text, new_text in zip(held, texts, out_texts):
            end = pos + len(text)
            data["text"] = new_text
            (released if end <= hold_from and not kept else kept).append(data)
            pos = end
        if kept:
            self._held[key] = kept
        else:
            self._held.pop(key, None)
        return released

    def _secret_prefix_start(self, whole: str, tail_from: int) -> int:
        """Start of the longest suffix of ``whole`` (after ``tail_from``) that
        begins some secret without completing it; ``len(whole)`` if none."""
        longest = self._longest
        firsts = self._firsts
        for i in range(max(tail_from, len(whole) - longest + 1), len(whole)):
            if whole[i] in firsts:
                rest = whole[i:]
                if any(len(s) > len(rest) and s.startswith(rest) for s in self.secrets):
                    return i
        return len(whole)


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


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
"""``json.dumps(data, separators=(",", ":"), ensure_ascii=False)`` without
building an encoder per call."""
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _line(data: dict[str, Any]) -> str:
    return _encode(data) + "\n"


def _as_dict(event: Event) -> dict[str, Any]:
    """``event.to_dict()``, with the field names looked up once per class."""
    cls = type(event)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        if cls.to_dict is not Event.to_dict:  # a class with its own form keeps it
            return event.to_dict()
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    data: dict[str, Any] = {"type": cls.type}
    for name in names:
        data[name] = getattr(event, name)
    return data


class Recorder:
    """A race sink that records to ``path``. ``await start()`` before the
    race (opens the file; raises OSError if it cannot), pass the recorder as a
    sink, ``await close()`` after (drains and closes). Must be used on the
    race's event loop; ``__call__`` from another thread is tolerated.

    A write failure mid-race never raises through the race: it stops the
    recording and is kept in ``error``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lines_written = 0
        self.error: str | None = None
        self._queue: deque[Event] = deque()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._writer: asyncio.Task[None] | None = None
        self._file: Any = None
        self._closing = False
        self._header_written = False
        self._pending: list[dict[str, Any]] = []
        self._redactor = Redactor(env_secrets())

    async def start(self) -> None:
        if self._writer is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = await aiofiles.open(self.path, "w", encoding="utf-8")
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._wake = asyncio.Event()
        self._writer = asyncio.create_task(self._write_loop(), name=f"recorder:{self.path.name}")

    def __call__(self, event: Event) -> None:
        """The sink: enqueue and wake the writer. Never raises."""
        if self._closing:
            return
        self._queue.append(event)
        wake = self._wake
        if wake is None or wake.is_set():
            return
        if threading.get_ident() == self._thread_id:
            wake.set()
        elif self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # loop closing: close() drains what is queued
                pass

    async def close(self) -> None:
        """Write everything queued, flush and close the file."""
        if self._writer is None:
            return
        self._closing = True
        assert self._wake is not None
        self._wake.set()
        try:
            await self._writer
        finally:
            if self._file is not None:
                try:
                    await self._file.close()
                except OSError as exc:
                    self.error = self.error or f"closing {self.path}: {exc.strerror or exc}"
                self._file = None

    async def __aenter__(self) -> "Recorder":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _write_loop(self) -> None:
        assert self._wake is not None
        last_flush = 0.0
        while True:
            if not self._queue:
                if self._closing:
                    break
                self._wake.clear()
                if self._queue or self._closing:
                    continue
                await self._wake.wait()
                continue
            wait = FLUSH_INTERVAL - (time.monotonic() - last_flush)
            if wait > 0 and not self._closing:
                await asyncio.sleep(wait)  # let a burst of tokens gather into one write
            batch = [self._queue.popleft() for _ in range(len(self._queue))]
            await self._write(self._render(batch))
            last_flush = time.monotonic()
        tail = [_line(d) for d in self._redactor.flush()]
        if not self._header_written:
            tail = [_line(header_for({}))] + [_line(self._redactor.scrub_obj(d)) for d in self._pending] + tail
            self._header_written = True
        await self._write(tail)

    def _render(self, batch: list[Event]) -> list[str]:
        lines: list[str] = []
        feed = self._redactor.feed
        for event in batch:
            if not self._header_written and isinstance(event, RaceStarted):
                names = [str(lane.get("api_key_env")) for lane in event.lanes if lane.get("api_key_env")]
                self._redactor.add(env_secrets(names))
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

    async def _write(self, lines: list[str]) -> None:
        if not lines or self.error is not None or self._file is None:
            return
        try:
            await self._file.write("".join(lines))
            await self._file.flush()
            self.lines_written += len(lines)
        except OSError as exc:
            self.error = f"recording stopped: cannot write {self.path}: {exc.strerror or exc}"


__all__ = [
    "FORMAT",
    "VERSION",
    "REDACTED",
    "Recorder",
    "Redactor",
    "default_recordings_dir",
    "default_recording_path",
    "env_secrets",
    "header_for",
]
