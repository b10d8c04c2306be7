"""The emulator's catalogue of broken-server behaviours, and how each is named.

Invariant: a request carries at most one *fault* (the server misbehaves in
one way, at the slot of token ``fault_at``) and any number of *quirks*
(legal-but-awkward wire habits a good client must survive). Every name here
is documented with the exact wire behaviour it produces; the stream runner
(``stream.py``) is the only place that acts on them, except the
``REPLY_FAULTS``, which change what is said, not how: the reply
(``replies.py``) acts on those.
"""

from __future__ import annotations

from typing import Any

HTTP_FAULTS: dict[str, int] = {
    "http_401": 401,
    "http_404": 404,
    "http_429": 429,
    "http_500": 500,
    "http_503": 503,
}
"""Answer at once with this status and a protocol-shaped error body
(``http_429`` adds ``Retry-After: 20``)."""

FAULTS: dict[str, str] = {
    **{name: f"HTTP {code} with a protocol-shaped JSON error body" for name, code in HTTP_FAULTS.items()},
    "html_200": "HTTP 200 with a text/html page instead of a stream (a proxy or captive portal)",
    "drop_mid": "after fault_at tokens, at the next token's due time, the socket is aborted: no terminating chunk",
    "stall_before": "headers are sent, then no byte at all for stall_s; then the stream resumes, shifted",
    "stall_after": "after fault_at tokens, no byte for stall_s; then the stream resumes, shifted",
    "bad_json": "after fault_at tokens, one frame with truncated JSON; the stream then goes on normally",
    "bad_utf8": "after fault_at tokens, one token frame holding bytes that are not UTF-8; then normal",
    "huge_line": "after fault_at tokens, one frame that never ends: an endless line with no newline",
    "error_frame": "after fault_at tokens, a protocol error frame with HTTP 200 (OpenAI: then [DONE]); "
    "then the chunked body ends properly",
    "no_end": "after fault_at tokens, the chunked body ends properly but with no [DONE] / done:true / "
    "message_stop (and no finish reason, no usage)",
    "flood_line": "after fault_at tokens, the answer goes on as one line with no newline: 10 MiB of text "
    "in tokens of 1 KiB each, at the profile's pace (max_tokens still applies); then it ends normally",
    "cut": "after fault_at tokens (default 0), the terminator without any finish reason: OpenAI "
    "[DONE] (llama-cpp-python's cut stream), Ollama done:true without done_reason, Anthropic message_stop "
    "without message_delta",
}

BURST = 4
"""Token frames per write under the ``burst`` quirk."""

QUIRKS: dict[str, str] = {
    "split_utf8": "every frame holding a multi-byte character is written as two chunks split inside "
    "that character, 2 ms apart",
    "trickle": "the whole response (head, chunk framing, body) is written one byte per write",
    "keepalive": "keep-alives before the first token and midway between tokens: OpenAI ': keep-alive' "
    "comments, Anthropic ping events, Ollama blank lines",
    "no_usage": "OpenAI: no usage chunk even when include_usage is asked; Ollama: no counts or "
    "durations on the done line; Anthropic: no effect",
    "choices_null": "OpenAI: the usage chunk carries \"choices\": null (sent even without include_usage)",
    "burst": f"token frames leave {BURST} per write (each group at its last token's due time): "
    "a client reads them together, as a busy client would",
    "undercount": "the reported output-token count (usage, eval_count) is a third of the tokens streamed, "
    "rounded down: a count the stream contradicts",
}

MID_STREAM = ("drop_mid", "stall_after", "bad_json", "bad_utf8", "huge_line", "error_frame", "no_end", "cut")
"""Faults that fire at the slot of token ``fault_at``."""

REPLY_FAULTS = ("flood_line",)
"""Faults the reply acts on (``choose_reply(flood_at=...)``), not the stream runner."""

DEFAULT_FAULT_AT = 5
DEFAULT_STALL_S = 3600.0


def default_fault_at(fault: str | None) -> int:
    """``cut`` defaults to 0 (role chunk then [DONE]); every other fault to 5."""
    return 0 if fault == "cut" else DEFAULT_FAULT_AT


def parse_faults(value: Any) -> tuple[str | None, frozenset[str]]:
    """``"drop_mid"``, ``"trickle,keepalive"`` or a list -> (fault, quirks).
    Raises ValueError for unknown names or more than one fault."""
    if value is None or value == "":
        return None, frozenset()
    if isinstance(value, str):
        names = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = [v.strip() for v in value]
    else:
        raise ValueError("'fault' must be a name, a comma-separated string or a list of names")
    fault: str | None = None
    quirks: set[str] = set()
    for name in names:
        if name in QUIRKS:
            quirks.add(name)
        elif name in FAULTS:
            if fault is not None and fault != name:
                raise ValueError(f"at most one fault per request, got {fault!r} and {name!r}")
            fault = name
        else:
            known = ", ".join([*FAULTS, *QUIRKS])
            raise ValueError(f"unknown fault {name!r} (known: {known})")
    return fault, frozenset(quirks)


HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in to continue</title></head>\n"
    b"<body><h1>Network login required</h1><p>Please sign in to access the internet.</p></body></html>\n"
)

__all__ = [
    "DEFAULT_FAULT_AT",
    "DEFAULT_STALL_S",
    "FAULTS",
    "HTML_PAGE",
    "HTTP_FAULTS",
    "MID_STREAM",
    "QUIRKS",
    "REPLY_FAULTS",
    "default_fault_at",
    "parse_faults",
]
