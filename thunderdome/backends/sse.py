"""Incremental framing of streamed response bodies: SSE events and NDJSON lines.

Invariant: framing is pure and incremental. Bytes go in exactly as they came
off the socket, in chunks of any size (one byte at a time works); ``split``
returns a frame as soon as the chunk that completes it is fed, so the caller
stamps it with that chunk's arrival time. Lines end in ``\\n``,
``\\r\\n`` or a lone ``\\r`` (a ``\\r\\n`` split across chunks is one line end).
A line is decoded as UTF-8 only once complete, so a multi-byte character split
across chunks is fine; invalid UTF-8 or a line over 1 MiB is a ``FrameError``,
returned (not raised) with the lines before the bad one.
"""

from __future__ import annotations

import json
import re
from typing import Sequence

from thunderdome.core.errors import ThunderdomeError

MAX_LINE = 1024 * 1024
"""Longest line accepted (bytes, without its line end)."""

_EOL = re.compile(rb"\r\n|\r|\n")


class FrameError(ThunderdomeError):
    """The byte stream cannot be framed. ``reason`` is one line for the UI."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_scan_json = json.JSONDecoder().scan_once


def parse_json_frame(text: str) -> object:
    """Parse one frame's JSON; raise FrameError("malformed JSON frame: ...").
    Same result as ``json.loads``; the common case (no surrounding blanks)
    skips its wrappers."""
    try:
        obj, end = _scan_json(text, 0)
        if end == len(text):
            return obj
    except (StopIteration, ValueError):
        pass  # json.loads decides, and words the error
    try:
        return json.loads(text)
    except ValueError:
        snippet = " ".join(text.split())
        if len(snippet) > 80:
            snippet = snippet[:80] + "…"
        raise FrameError(f"malformed JSON frame: {snippet}") from None


_TOO_LONG = "frame larger than 1 MiB"
_NO_LINES: tuple[str, ...] = ()

Split = tuple[Sequence[str], "FrameError | None"]
"""Complete lines, and the error that stopped the split (None if none)."""


class LineSplitter:
    """Bytes in, complete decoded lines out (without their line ends)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = bytearray()
        """The unfinished last line; never holds a line end."""
        self._after_cr = False
        self._max = max_line

    def split(self, data: bytes) -> Split:
        """The lines this chunk completes, and the error at a bad one (the
        lines before it are still returned; nothing after it is)."""
        if self._after_cr and data:
            self._after_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if not data:
            return _NO_LINES, None
        if b"\r" not in data:
            sep = b"\n"
        elif data.count(b"\r") == data.count(b"\r\n") == data.count(b"\n"):
            sep = b"\r\n"  # every line ends in CRLF (sse-starlette and friends)
        else:
            return self._split_any(data)
        end = data.rfind(sep)
        buf = self._buf
        if end < 0:
            buf += data  # the line goes on (linear: only the new bytes are scanned)
            return _NO_LINES, (FrameError(_TOO_LONG) if len(buf) > self._max else None)
        if buf:
            head = bytes(buf) + data[:end]
            buf.clear()
        else:
            head = data[:end]
        rest = data[end + len(sep) :]
        if rest:
            buf += rest
        if len(head) <= self._max:
            try:
                lines: Sequence[str] = head.decode("utf-8").split(sep.decode())
            except UnicodeDecodeError:
                return self._checked(head.split(sep))
        else:
            lines, error = self._checked(head.split(sep))
            if error is not None:
                return lines, error
        return lines, (FrameError(_TOO_LONG) if len(buf) > self._max else None)

    def _checked(self, raw: list[bytes]) -> Split:
        """Line by line: stop at the first over-long or non-UTF-8 line."""
        lines: list[str] = []
        for line in raw:
            if len(line) > self._max:
                return lines, FrameError(_TOO_LONG)
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                return lines, FrameError("invalid UTF-8 in stream")
        return lines, (FrameError(_TOO_LONG) if len(self._buf) > self._max else None)

    def _split_any(self, data: bytes) -> Split:
        """Mixed or lone-CR line ends: the general (regex) way."""
        buf = self._buf
        scan = len(buf)
        buf += data
        raw: list[bytes] = []
        pos = 0
        for match in _EOL.finditer(buf, scan):
            raw.append(bytes(buf[pos : match.start()]))
            pos = match.end()
            if match.group() == b"\r" and pos == len(buf):
                self._after_cr = True  # a "\n" may start the next chunk
        del buf[:pos]
        return self._checked(raw)

    def close_split(self) -> Split:
        """At end of stream: the last line if it had no line end."""
        if not self._buf:
            return _NO_LINES, None
        line = bytes(self._buf)
        self._buf.clear()
        return self._checked([line])


Frames = tuple[list[tuple[str, str]], "FrameError | None"]
"""Dispatched SSE events as ``(event, data)``, and the error that stopped them."""


class SSEDecoder:
    """Server-sent events (the WHATWG rules: ``:`` comments, ``field: value``,
    ``data`` lines joined with ``\\n``, a blank line dispatches). An event still
    pending at end of stream is dispatched too (lenient: some servers omit the
    last blank line)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._lines = LineSplitter(max_line)
        self._data: list[str] = []
        self._event = ""

    def split(self, data: bytes) -> Frames:
        """The events this chunk completes (the hot path: no per-event objects
        beyond one tuple)."""
        lines, error = self._lines.split(data)
        return self._frames(lines, [], final=False), error

    def close_split(self) -> Frames:
        lines, error = self._lines.close_split()
        out = self._frames(lines, [], final=error is None)
        return out, error

    def _frames(self, lines: Sequence[str], out: list[tuple[str, str]], *, final: bool) -> list[tuple[str, str]]:
        data = self._data
        for line in lines:
            if not line:
                if data:
                    out.append((self._event or "message", data[0] if len(data) == 1 else "\n".join(data)))
                    data = self._data = []
                self._event = ""
            elif line.startswith("data:"):
                data.append(line[6:] if line.startswith(" ", 5) else line[5:])
            elif line[0] != ":":  # ":" starts a comment / keep-alive
                field, sep, value = line.partition(":")
                if sep and value.startswith(" "):
                    value = value[1:]
                if field == "data":  # "data" without a colon: an empty data line
                    data.append(value)
                elif field == "event":
                    self._event = value
                # id / retry / unknown fields: nothing to do for a one-shot stream
        if final and data:
            out.append((self._event or "message", "\n".join(data)))
            self._data = []
            self._event = ""
        return out


class NDJSONDecoder:
    """Newline-delimited JSON: each non-blank line is one frame."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._lines = LineSplitter(max_line)

    def split(self, data: bytes) -> tuple[list[str], FrameError | None]:
        lines, error = self._lines.split(data)
        return [line for line in lines if line and not line.isspace()], error

    def close_split(self) -> tuple[list[str], FrameError | None]:
        lines, error = self._lines.close_split()
        return [line for line in lines if line and not line.isspace()], error


__all__ = ["MAX_LINE", "FrameError", "parse_json_frame", "LineSplitter", "SSEDecoder", "NDJSONDecoder"]
