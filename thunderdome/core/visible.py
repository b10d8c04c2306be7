"""Text from outside made visible: no byte of it can steer a terminal.

Invariant: text that leaves ``visible()`` contains no control character other
than ``\\n``: C0 controls and DEL become Unicode control pictures (``ESC`` is
``␛``, BEL ``␇``), C1 controls (8-bit CSI, OSC) become ``�``, tabs become
spaces, carriage returns and bidi overrides vanish — so an escape sequence in
a model's reply, a server's error, a task or backends file or a recording is
shown literally and can neither recolour, retitle, clear the screen nor write
the clipboard (OSC 52). ``visible_line`` is the same on one line. Markup is a
consumer's matter: build ``rich.text.Text`` from these strings (never parse
them as markup). ``json_safe`` keeps JSON text free of raw DEL and C1 bytes
(``json.dumps`` already escapes C0 controls), so a recording or an export can
be ``cat`` to a terminal.
"""

from __future__ import annotations

TAB = "    "

_TABLE: dict[int, str] = {code: chr(0x2400 + code) for code in range(0x20)}
_TABLE[0x1B] = "␛"
_TABLE[0x7F] = "␡"
_TABLE[ord("\n")] = "\n"
_TABLE[ord("\t")] = TAB
_TABLE[ord("\r")] = ""
for _code in range(0x80, 0xA0):  # C1 controls (e.g. CSI 0x9b, OSC 0x9d)
    _TABLE[_code] = "�"
for _code in (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)):  # bidi overrides
    _TABLE[_code] = ""
_JSON = {code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0))}
_LINE = dict(_TABLE)
_LINE[ord("\n")] = " ⏎ "


def visible(text: str) -> str:
    """``text`` with every control character made visible or removed."""
    return text.translate(_TABLE)


def visible_line(text: str, limit: int | None = None) -> str:
    """``visible(text)`` on a single line (newlines shown as ``⏎``), cut to ``limit``."""
    flat = str(text).translate(_LINE)
    return flat if limit is None or len(flat) <= limit else flat[: limit - 1] + "…"


def json_safe(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with DEL and C1
    controls written as ``\\u`` escapes: the same JSON, no raw control byte."""
    if text.isascii() and "\x7f" not in text:  # the common case, checked at C speed
        return text
    return text.translate(_JSON)


__all__ = ["TAB", "json_safe", "visible", "visible_line"]
