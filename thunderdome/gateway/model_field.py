"""A chat request body read at its top level, and its ``model`` replaced in place.

Invariant: ``read_object`` reads a UTF-8 body (no BOM) as a JSON object
exactly when ``json.loads`` does, to the same dict (the last of duplicate
keys wins), plus where each top-level key's value lies in the text; each
value is read by ``json``'s own scanner, so a key is top-level only if it
really is (a ``"model"`` inside a message's text, an escaped key, odd
whitespace are all read as ``json.loads`` reads them). ``with_model`` changes
only the bytes of the one top-level ``model`` value; when that is not certain
to be right (no such key, or more than one), it says so (None) and the
caller re-encodes the body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"
"""JSON's whitespace, the only one ``json.loads`` skips between tokens."""


@dataclass(frozen=True, slots=True)
class TopLevel:
    """A JSON object body: its value, and where its top-level values lie."""

    text: str
    """The body decoded as UTF-8."""
    value: dict[str, Any]
    """What ``json.loads`` gives for the body."""
    spans: dict[str, list[tuple[int, int]]]
    """Key -> the ``text`` spans of its values, in order (more than one: a duplicate key)."""


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _SPACE:
        at += 1
    return at


def read_object(raw: bytes) -> TopLevel | None:
    """``raw`` read as a JSON object, its top-level values located; None if it is
    not a UTF-8 JSON object (the caller then reads it as ``json.loads`` would)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    value: dict[str, Any] = {}
    spans: dict[str, list[tuple[int, int]]] = {}
    at = _skip(text, 0)
    if not text.startswith("{", at):
        return None
    at = _skip(text, at + 1)
    try:
        if text.startswith("}", at):
            at += 1
        else:
            while True:
                if not text.startswith('"', at):
                    return None
                key, at = scanstring(text, at + 1, True)
                at = _skip(text, at)
                if not text.startswith(":", at):
                    return None
                start = _skip(text, at + 1)
                value[key], at = _DECODER.raw_decode(text, start)
                spans.setdefault(key, []).append((start, at))
                at = _skip(text, at)
                if text.startswith(",", at):
                    at = _skip(text, at + 1)
                elif text.startswith("}", at):
                    at += 1
                    break
                else:
                    return None
    except (ValueError, RecursionError):
        return None  # not JSON, or nested deeper than json.loads reads either
    return TopLevel(text, value, spans) if _skip(text, at) == len(text) else None


def with_model(raw: bytes, top: TopLevel, model: str) -> bytes | None:
    """``raw`` with its one top-level ``model`` value replaced by ``model`` (a
    JSON string), every other byte as it was; None when the body has no
    ``model`` or several (a duplicate key: re-encode to leave no doubt)."""
    spans = top.spans.get("model", [])
    if len(spans) != 1:
        return None
    lo, hi = spans[0]
    head = len(top.text[:lo].encode("utf-8"))
    tail = head + len(top.text[lo:hi].encode("utf-8"))
    return b"".join((raw[:head], json.dumps(model, ensure_ascii=False).encode("utf-8"), raw[tail:]))


__all__ = ["TopLevel", "read_object", "with_model"]
