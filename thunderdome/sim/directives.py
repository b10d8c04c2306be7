"""Per-request instructions to the emulator (the ``thunderdome_sim`` object).

Invariant: directives are read from, in rising precedence, the
``x-thunderdome-sim`` header (JSON), Ollama's ``options.thunderdome_sim`` and
the body's top-level ``thunderdome_sim`` field (what official clients send via
``extra_body``); each value is type-checked here, so the server acts only on
well-formed directives and answers 400 for anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from thunderdome.sim.faults import DEFAULT_STALL_S, default_fault_at, parse_faults

FIELD = "thunderdome_sim"
HEADER = "x-thunderdome-sim"


@dataclass(frozen=True)
class Directives:
    reply: str | None = None
    """Exact answer text to stream."""
    wrong_reply: str | None = None
    wrong_rate: float = 0.0
    """Probability (0..1, seeded) of sending ``wrong_reply`` instead."""
    reasoning: str | None = None
    """Reasoning text streamed before the answer."""
    tokens: int | None = None
    """Length of generated long text (when no ``reply``)."""
    seed: int = 0
    """Seeds jitter, generated text and the wrong-answer draw. Vary it per trial."""
    time_scale: float | None = None
    """Multiplies every delay; None means the server's default."""
    fault: str | None = None
    quirks: frozenset[str] = field(default_factory=frozenset)
    fault_at: int = 5
    """Token slot at which a mid-stream fault fires."""
    stall_s: float = DEFAULT_STALL_S
    reasoning_field: str = "reasoning_content"
    """OpenAI delta key for reasoning: ``reasoning_content`` or ``reasoning``."""
    timings: bool = False
    """Add llama.cpp ``timings`` to the OpenAI finish chunk."""

    @property
    def fault_label(self) -> str | None:
        """Fault and quirks as one string for the request log."""
        names = ([self.fault] if self.fault else []) + sorted(self.quirks)
        return ",".join(names) or None


def _num(d: Mapping[str, Any], key: str, kind: type, lo: float | None = None, hi: float | None = None) -> Any:
    value = d[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok:
        raise ValueError(f"thunderdome_sim.{key} must be {'an integer' if kind is int else 'a number'}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"thunderdome_sim.{key} out of range: {value}")
    return kind(value)


def _text(d: Mapping[str, Any], key: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"thunderdome_sim.{key} must be a string")
    return value


def collect(body: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """Merge the three sources into one raw dict. Raises ValueError."""
    merged: dict[str, Any] = {}
    raw_header = headers.get(HEADER)
    if raw_header:
        try:
            from_header = json.loads(raw_header)
        except ValueError:
            raise ValueError(f"{HEADER} header is not JSON") from None
        if not isinstance(from_header, dict):
            raise ValueError(f"{HEADER} header must be a JSON object")
        merged.update(from_header)
    options = body.get("options")
    if isinstance(options, dict) and isinstance(options.get(FIELD), dict):
        merged.update(options[FIELD])
    direct = body.get(FIELD)
    if direct is not None:
        if not isinstance(direct, dict):
            raise ValueError(f"{FIELD} must be an object")
        merged.update(direct)
    return merged


def parse(body: Mapping[str, Any], headers: Mapping[str, str]) -> Directives:
    """Directives for one request. Raises ValueError naming the bad field."""
    d = collect(body, headers)
    known = set(Directives.__dataclass_fields__) - {"quirks"}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown thunderdome_sim field(s): {', '.join(unknown)}")
    fault, quirks = parse_faults(d.get("fault"))
    kw: dict[str, Any] = {"fault": fault, "quirks": quirks, "fault_at": default_fault_at(fault)}
    for key in ("reply", "wrong_reply", "reasoning"):
        kw[key] = _text(d, key)
    if "wrong_rate" in d:
        kw["wrong_rate"] = _num(d, "wrong_rate", float, 0.0, 1.0)
    if d.get("tokens") is not None:
        kw["tokens"] = _num(d, "tokens", int, 0, 1_000_000)
    if d.get("seed") is not None:
        kw["seed"] = _num(d, "seed", int)
    if d.get("time_scale") is not None:
        kw["time_scale"] = _num(d, "time_scale", float, 0.0, 1000.0)
    if d.get("fault_at") is not None:
        kw["fault_at"] = _num(d, "fault_at", int, 0)
    if d.get("stall_s") is not None:
        kw["stall_s"] = _num(d, "stall_s", float, 0.0)
    if d.get("reasoning_field") is not None:
        if d["reasoning_field"] not in ("reasoning_content", "reasoning"):
            raise ValueError("thunderdome_sim.reasoning_field must be 'reasoning_content' or 'reasoning'")
        kw["reasoning_field"] = d["reasoning_field"]
    if d.get("timings") is not None:
        if not isinstance(d["timings"], bool):
            raise ValueError("thunderdome_sim.timings must be true or false")
        kw["timings"] = d["timings"]
    return Directives(**kw)


__all__ = ["FIELD", "HEADER", "Directives", "collect", "parse"]
