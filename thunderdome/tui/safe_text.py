"""Make model output safe to paint on a terminal.

Invariant: text that leaves ``clean()`` contains no control characters other
than ``\\n``; escape sequences and other controls are shown as visible
Unicode control pictures (``ESC`` becomes ``␛``), so ``\\x1b[31m`` or a
``[bold]`` tag in a model's reply is displayed literally and can neither
recolour the screen nor move the cursor. (Markup is never parsed: widgets build
``rich.text.Text`` objects from plain strings.)
"""

from __future__ import annotations

TAB = "    "

_TABLE: dict[int, str] = {code: chr(0x2400 + code) for code in range(0x20)}
_TABLE[0x1B] = "␛"
_TABLE[0x7F] = "␡"
_TABLE[ord("\n")] = "\n"
_TABLE[ord("\t")] = TAB
_TABLE[ord("\r")] = ""
for _code in range(0x80, 0xA0):  # C1 controls (e.g. CSI 0x9b)
    _TABLE[_code] = "�"
for _code in (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)):  # bidi overrides
    _TABLE[_code] = ""


def clean(text: str) -> str:
    """``text`` with every control character made visible or removed."""
    return text.translate(_TABLE)


def one_line(text: str, limit: int = 200) -> str:
    """``clean(text)`` on a single line (newlines shown as ``⏎``), cut to ``limit``."""
    flat = clean(text).replace("\n", " ⏎ ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
