"""Which output-token count a turn's figures use, and why.

Invariant: a count that the stream itself contradicts is never believed.
Every non-empty delta carries at least one token, so a server count below
the number of non-empty deltas is wrong; every token is at least one byte of
text (byte-level BPE, SentencePiece with byte fallback) and a character at
most four UTF-8 bytes, so a count above four tokens per streamed character
(plus the end-of-turn tokens some servers add) counts tokens that were never
streamed (hidden reasoning, or a wrong count). In both cases the figures use
the delta count, marked ``estimate``, and ``count_check`` says what the
server claimed; otherwise the server's count wins (see DESIGN.md's metric
table).
"""

from __future__ import annotations

from typing import NamedTuple

SPECIAL_TOKENS = 2
"""End-of-turn tokens a server may count without streaming any text for them."""


class Count(NamedTuple):
    tokens: int
    source: str
    """``usage`` / ``server`` (the server's count) or ``estimate`` (the deltas)."""
    check: str
    """Why the server's count was not used ('' when it was, or there was none)."""


def defended_count(usage: int | None, usage_source: str | None, deltas: int, chars: int) -> Count:
    """The count to use for a turn with ``deltas`` non-empty deltas holding
    ``chars`` characters, given the server's ``usage`` (None: not reported)."""
    if usage is None:
        return Count(deltas, "estimate", "")
    if usage < deltas:
        return Count(deltas, "estimate", f"server counted {usage} tokens for {deltas} non-empty deltas")
    if usage > 4 * chars + SPECIAL_TOKENS:
        return Count(deltas, "estimate", f"server counted {usage} tokens for {chars} characters streamed")
    return Count(usage, usage_source or "usage", "")
