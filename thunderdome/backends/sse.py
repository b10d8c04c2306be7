"""Incremental framing of streamed response bodies: SSE events and NDJSON lines.

Invariant: framing is pure and incremental. Bytes go in exactly as they came
off the socket, in chunks of any size (one byte at a time works), each with the
arrival time ``t`` of that chunk; a frame comes out as soon as the chunk that
completes it is fed, tagged with that chunk's ``t``. Lines end in ``\\n``,
``\\r\\n`` or a lone ``\\r`` (a ``\\r\\n`` split across chunks is one line end).
A line is decoded as UTF-8 only once complete, so a multi-byte character split
across chunks is fine; invalid UTF-8 or a line over 1 MiB raises
``FrameError``. Lines before the bad one are still produced first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterator

MAX_LINE = 1024 * 1024
"""Longest line accepted (bytes, without its line end)."""

_EOL = re.compile(rb"\r\n|\r|\n")


class FrameError(Exception):
    """The byte stream cannot be framed. ``reason`` is one line for the UI."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched server-sent event. ``event`` defaults to ``message``."""

    data: str
    t: float
    event: str = "message"


@dataclass(frozen=True, slots=True)
class JSONLine:
    """One non-blank NDJSON line (not yet parsed)."""

    text: str
    t: float


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("invalid UTF-8 in stream") from None


def parse_json_frame(text: str) -> object:
    """Parse one frame's JSON; raise FrameError("malformed JSON frame: ...")."""
    try:
        return json.loads(text)
    except ValueError:
        snippet = " ".join(text.split())
        if len(snippet) > 80:
            snippet = snippet[:80] + "…"
        raise FrameError(f"malformed JSON frame: {snippet}") from None


class LineSplitter:
    """Bytes in, complete decoded lines out (without their line ends)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self._after_cr = False
        self._max = max_line

    def feed(self, data: bytes) -> Iterator[str]:
        """Yield the lines this chunk completes; raise FrameError at a bad one."""
        if self._after_cr and data:
            self._after_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if not data:
            return
        buf = self._buf
        scan = len(buf)
        buf += data
        lines: list[bytes] = []
        pos = 0
        for match in _EOL.finditer(buf, scan):
            lines.append(bytes(buf[pos : match.start()]))
            pos = match.end()
            if match.group() == b"\r" and pos == len(buf):
                self._after_cr = True  # a "\n" may start the next chunk
        del buf[:pos]
        for line in lines:
            if len(line) > self._max:
                raise FrameError("frame larger than 1 MiB")
            yield _decode(line)
        if len(buf) > self._max:
            raise FrameError("frame larger than 1 MiB")

    def close(self) -> Iterator[str]:
        """At end of stream: the last line if it had no line end."""
        if self._buf:
            line = bytes(self._buf)
            self._buf.clear()
            if len(line) > self._max:
                raise FrameError("frame larger than 1 MiB")
            yield _decode(line)


class SSEDecoder:
    """Server-sent events (the WHATWG rules: ``:`` comments, ``field: value``,
    ``data`` lines joined with ``\\n``, a blank line dispatches). An event still
    pending at end of stream is dispatched too (lenient: some servers omit the
    last blank line)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._lines = LineSplitter(max_line)
        self._data: list[str] = []
        self._event = ""

    def feed(self, data: bytes, t: float) -> Iterator[SSEEvent]:
        for line in self._lines.feed(data):
            event = self._line(line, t)
            if event is not None:
                yield event

    def close(self, t: float) -> Iterator[SSEEvent]:
        for line in self._lines.close():
            event = self._line(line, t)
            if event is not None:
                yield event
        event = self._line("", t)
        if event is not None:
            yield event

    def _line(self, line: str, t: float) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent(data="\n".join(self._data), t=t, event=self._event or "message")
            self._data = []
            self._event = ""
            return event
        if line.startswith(":"):
            return None  # comment / keep-alive
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        # id / retry / unknown fields: nothing to do for a one-shot stream
        return None


class NDJSONDecoder:
    """Newline-delimited JSON: each non-blank line is one frame."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._lines = LineSplitter(max_line)

    def feed(self, data: bytes, t: float) -> Iterator[JSONLine]:
        for line in self._lines.feed(data):
            if line.strip():
                yield JSONLine(text=line, t=t)

    def close(self, t: float) -> Iterator[JSONLine]:
        for line in self._lines.close():
            if line.strip():
                yield JSONLine(text=line, t=t)


__all__ = ["MAX_LINE", "FrameError", "parse_json_frame", "SSEEvent", "JSONLine", "LineSplitter", "SSEDecoder", "NDJSONDecoder"]
