"""The command of a ``bash`` tool call, read from its JSON arguments as they stream.

Invariant: ``CommandText.feed(fragment)`` returns exactly the characters of
the ``"command"`` string value that ``fragment`` completes, decoded from JSON
(``\\n``, ``\\"``, ``\\u001b`` ... become the characters they stand for), so
the pieces it returns over a call join into ``json.loads(arguments)["command"]``.
It costs O(len(fragment)): an escape split across fragments waits for the
next one, and the search for the key gives up after ``SEEK_LIMIT``
characters. The text is raw: a consumer makes it visible
(``thunderdome.core.visible``) before it reaches a terminal, since a decoded
``\\u001b`` is a real ESC. Arguments with no command string (another tool,
an argv list) give nothing; ``shown`` then stays False.
"""

from __future__ import annotations

import re

SEEK_LIMIT = 4096
"""Characters of arguments searched for the ``"command"`` key before giving up."""
_KEY = re.compile(r'"command"\s*:\s*"')
_SPECIAL = re.compile(r'["\\]')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class CommandText:
    """One tool call's command string, decoded as its argument fragments arrive."""

    __slots__ = ("_state", "_buffer", "shown")

    def __init__(self) -> None:
        self._state = "seek"
        """``seek`` (looking for the key), ``string`` (inside its value), ``done``."""
        self._buffer = ""
        """``seek``: the arguments so far; ``string``: an escape cut at a fragment's end."""
        self.shown = False
        """Some command text has been returned."""

    def feed(self, fragment: str) -> str:
        """The command characters ``fragment`` adds ('' when none)."""
        if self._state == "seek":
            start = max(0, len(self._buffer) - 16)  # the key may straddle the fragments
            self._buffer += fragment
            match = _KEY.search(self._buffer, start)
            if match is None:
                if len(self._buffer) > SEEK_LIMIT:
                    self._state, self._buffer = "done", ""
                return ""
            self._state, fragment, self._buffer = "string", self._buffer[match.end():], ""
        if self._state != "string":
            return ""
        text = self._decode(self._buffer + fragment)
        self.shown = self.shown or bool(text)
        return text

    def _decode(self, s: str) -> str:
        out: list[str] = []
        i, n = 0, len(s)
        self._buffer = ""
        while i < n:
            match = _SPECIAL.search(s, i)
            if match is None:
                out.append(s[i:])
                break
            k = match.start()
            out.append(s[i:k])
            if s[k] == '"':  # the string's end
                self._state = "done"
                break
            if k + 1 >= n:
                self._buffer = s[k:]
                break
            if s[k + 1] != "u":
                out.append(_ESCAPES.get(s[k + 1], s[k + 1]))
                i = k + 2
                continue
            char, used = _unicode_escape(s, k)
            if used == 0:  # cut mid-escape: wait for the rest
                self._buffer = s[k:]
                break
            out.append(char)
            i = k + used
        return "".join(out)


def _unicode_escape(s: str, k: int) -> tuple[str, int]:
    """The character of the ``\\uXXXX`` escape at ``s[k]`` (a surrogate pair
    as one) and the characters it took; (``""``, 0) if ``s`` ends before it does."""
    code = _hex(s, k + 2)
    if code is None:
        return ("", 0) if len(s) < k + 6 else ("\ufffd", 2)
    if 0xD800 <= code < 0xDC00:  # a high surrogate: its low half should follow
        rest = s[k + 6: k + 12]
        if len(rest) < 6 and (not rest or rest[0] == "\\"):
            return "", 0
        low = _hex(s, k + 8) if rest.startswith("\\u") else None
        if low is not None and 0xDC00 <= low < 0xE000:
            return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), 12
        return "\ufffd", 6
    if 0xDC00 <= code < 0xE000:
        return "\ufffd", 6
    return chr(code), 6


def _hex(s: str, at: int) -> int | None:
    digits = s[at: at + 4]
    if len(digits) < 4:
        return None
    try:
        return int(digits, 16)
    except ValueError:
        return None


__all__ = ["SEEK_LIMIT", "CommandText"]
