"""The emulator's Anthropic thinking signatures: signed as streamed, checked when sent back.

Invariant: a signature is the base64 HMAC-SHA256 of a thinking block's exact
text under a key drawn once per process, so only text this emulator
streamed, unchanged, verifies. ``check`` reads a Messages request the way
the real API does with thinking on: every ``thinking`` block sent back must
carry its own signature, and when the model thinks, the final assistant
message of a tool loop (the one whose ``tool_use`` the last ``tool_result``
answers) must start with its thinking block; the first problem comes back
in Anthropic's words, else None. ``redacted_thinking`` data is opaque: accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any, Mapping

_KEY = secrets.token_bytes(32)

MISSING = (
    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{found}`. "
    "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
    "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). "
    "We recommend you include thinking blocks from previous turns."
)
INVALID = "messages.{i}.content.{j}: Invalid `signature` in `thinking` block"


class Signer:
    """Signs one thinking block, its text fed piece by piece as it streams."""

    __slots__ = ("_mac",)

    def __init__(self) -> None:
        self._mac = hmac.new(_KEY, digestmod=hashlib.sha256)

    def update(self, text: str) -> None:
        self._mac.update(text.encode("utf-8"))

    def signature(self) -> str:
        return base64.b64encode(self._mac.digest()).decode("ascii")


def sign(text: str) -> str:
    """The signature of a whole thinking text."""
    signer = Signer()
    signer.update(text)
    return signer.signature()


def _blocks(message: Any) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def check(body: Mapping[str, Any], thinks: bool) -> tuple[str | None, int]:
    """(the request's first thinking problem or None, how many thinking
    blocks it sent back with a valid signature). ``thinks``: the model
    answering streams thinking (then tool loops need their thinking back)."""
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    verified = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        for j, block in enumerate(_blocks(message)):
            if block.get("type") != "thinking":
                continue
            text, signature = block.get("thinking"), block.get("signature")
            if not (isinstance(text, str) and isinstance(signature, str) and hmac.compare_digest(signature, sign(text))):
                return INVALID.format(i=i, j=j), verified
            verified += 1
    if thinks and messages and any(b.get("type") == "tool_result" for b in _blocks(messages[-1])):
        i = next((k for k in range(len(messages) - 1, -1, -1) if isinstance(messages[k], dict) and messages[k].get("role") == "assistant"), None)
        blocks = _blocks(messages[i]) if i is not None else []
        if i is not None and any(b.get("type") == "tool_use" for b in blocks):
            first = blocks[0].get("type")
            if first not in ("thinking", "redacted_thinking"):
                return MISSING.format(i=i, found=first), verified
    return None, verified


__all__ = ["INVALID", "MISSING", "Signer", "check", "sign"]
