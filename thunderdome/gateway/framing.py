"""HTTP/1.1 body framing, read as the bytes arrive: where a body ends, and its payload without the chunk framing.

Invariant: ``BodyFraming.take`` gives the same payload and finds the same end
however the body's bytes are split into segments (each byte is looked at
once); framing that is not HTTP/1.1 is a one-line ``FramingError``. Both
sides of the gateway read with it: a reply from upstream
(``gateway/upstream.py``) and a chunked request from an agent
(``gateway/agent_link.py``).
"""

from __future__ import annotations

import string

from thunderdome.core.errors import ThunderdomeError

LINE_LIMIT = 4096
"""A chunk-size or trailer line longer than this is not HTTP."""
_HEX = frozenset(string.hexdigits.encode())


class FramingError(ThunderdomeError):
    """Bytes that are not the body framing their head announced."""


class BodyFraming:
    """Where a response body ends, read as its bytes arrive: ``take(data)``
    gives the payload pieces in ``data`` (chunked framing removed) and sets
    ``done`` at the body's end; ``extra`` is anything after it. ``length``
    None and not ``chunked``: the body ends with the connection (``end()``)."""

    def __init__(self, length: int | None, chunked: bool) -> None:
        self.chunked = chunked
        self.left = length
        self.done = not chunked and length == 0
        self.extra = b""
        self.verbatim: bytes | None = None
        """After ``take``: the bytes it read (up to the body's end) when they are
        whole chunks with bare hex sizes from a chunk's start, ending with
        a chunk or with the bare last chunk: valid framing of the pieces as
        they are, to pass on as they came; else None (the pieces need framing anew)."""
        self._line = bytearray()
        self._state = "size"
        """Chunked: "size" (a chunk-size line), "data" (``left`` bytes), "crlf" (after the data), "trailer"."""

    def take(self, data: bytes) -> list[bytes]:
        self.verbatim = None
        if self.done:
            self.extra += data
            return []
        if not self.chunked:
            if self.left is None:
                return [data] if data else []
            piece, rest = data[: self.left], data[self.left :]
            self.left -= len(piece)
            if self.left == 0:
                self.done, self.extra = True, rest
            return [piece] if piece else []
        return self._take_chunked(data)

    def _take_chunked(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        at, n = 0, len(data)
        plain = self._state == "size" and not self._line
        """So far, ``data[:at]`` is whole chunks with bare hex sizes, from a chunk's start."""
        while at < n:
            if self.done:
                self.extra = data[at:]
                break
            if plain and self._state == "size":
                # The common case, a whole chunk (or the bare last one) in hand: read it at once.
                end = data.find(b"\r\n", at, at + LINE_LIMIT)
                digits = data[at:end]
                if end > at and _HEX.issuperset(digits):
                    size = int(digits, 16)
                    stop = end + 2 + size
                    if data[stop : stop + 2] == b"\r\n":
                        if size:
                            out.append(data[end + 2 : stop])
                        else:
                            self.done = True
                        at = stop + 2
                        continue
                plain = False  # anything else is read byte by byte below
            if self._state == "data":
                assert self.left is not None
                piece = data[at : at + self.left]
                at += len(piece)
                self.left -= len(piece)
                out.append(piece)
                if self.left == 0:
                    self._state = "crlf"
                continue
            end = data.find(b"\n", at)
            stop = n if end < 0 else end + 1
            self._line += data[at:stop]
            at = stop
            if len(self._line) > LINE_LIMIT:
                raise FramingError("a chunk line in the response body is over 4 KiB")
            if end >= 0:
                line, self._line = bytes(self._line), bytearray()
                self._line_ended(line)
        if plain:
            self.verbatim = data[: n - len(self.extra)] if self.done else data
        return out

    def _line_ended(self, line: bytes) -> None:
        if not line.endswith(b"\r\n"):
            raise FramingError("bad line ending in the chunked response body")
        if self._state == "crlf":
            if line != b"\r\n":
                raise FramingError("bad chunk terminator in the response body")
            self._state = "size"
        elif self._state == "trailer":
            if line == b"\r\n":
                self.done = True
        else:
            digits = line[:-2].split(b";", 1)[0].strip()
            if not digits or not _HEX.issuperset(digits):
                raise FramingError("bad chunk size in the response body")
            self.left = int(digits, 16)
            self._state = "data" if self.left else "trailer"

    def end(self) -> None:
        """The connection ended: fine for a body that ends with it, else the body was cut."""
        if self.done:
            return
        if not self.chunked and self.left is None:
            self.done = True
            return
        short = f"{self.left} bytes short of its Content-Length" if not self.chunked else "before its last chunk"
        raise FramingError(f"connection dropped mid-body ({short})")


__all__ = ["BodyFraming", "FramingError", "LINE_LIMIT"]
