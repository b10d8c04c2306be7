"""Make outside text safe to paint on a terminal: visible and without secrets.

Invariant: text that leaves ``clean()`` contains no control characters other
than ``\\n`` (see ``thunderdome.core.visible``), so ``\\x1b[31m`` or a ``[bold]``
tag in a model's reply is displayed literally; text that leaves ``one_line()``
is also redacted of every known secret (``thunderdome.core.redact``) *before* it is
cut. (Markup is never parsed: widgets build ``rich.text.Text`` objects from
plain strings.) Token text is redacted as one stream by the token widget,
since a key may arrive split across deltas.
"""

from __future__ import annotations

from thunderdome.core.redact import redact
from thunderdome.core.visible import TAB, visible, visible_line

clean = visible
"""``clean(text)``: control characters made visible (per token: no redaction here)."""


def one_line(text: str, limit: int = 200) -> str:
    """``text`` redacted, on a single line (newlines shown as ``⏎``), cut to ``limit``."""
    return visible_line(redact(str(text)), limit)


__all__ = ["TAB", "clean", "one_line"]
