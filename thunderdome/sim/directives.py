"""Per-request instructions to the emulator (the ``thunderdome_sim`` object).

Invariant: directives are read from, in rising precedence, the
``x-thunderdome-sim`` header (JSON), Ollama's ``options.thunderdome_sim`` and
the body's top-level ``thunderdome_sim`` field (what official clients send via
``extra_body``); each value is checked against the one list of sim options
(``options.py``, which the backends file is checked against too), so the
server acts only on well-formed directives and answers 400 for anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from thunderdome.sim.faults import DEFAULT_STALL_S, default_fault_at
from thunderdome.sim.options import OptionError, parse_options

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
    slots: int | None = None
    """Requests this model runs at a time (llama.cpp ``--parallel``); later
    ones wait in a FIFO queue (``sim/slots.py``). None: no limit."""
    request_metrics: bool = False
    """Add vLLM's per-request ``metrics`` to the OpenAI usage chunk."""
    cached_tokens: int = 0
    """Prompt tokens reported as served from the server's cache (llama.cpp
    ``cache_n``, OpenAI/Responses ``cached_tokens``, Anthropic
    ``cache_read_input_tokens``); the schedule is unchanged."""

    @property
    def fault_label(self) -> str | None:
        """Fault and quirks as one string for the request log."""
        names = ([self.fault] if self.fault else []) + sorted(self.quirks)
        return ",".join(names) or None


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
    try:
        values = parse_options(collect(body, headers))
    except OptionError as exc:
        raise ValueError(f"{FIELD}.{exc}") from None
    fault, quirks = values.pop("fault", (None, frozenset()))
    values.setdefault("fault_at", default_fault_at(fault))
    return Directives(fault=fault, quirks=quirks, **values)


__all__ = ["FIELD", "HEADER", "Directives", "collect", "parse"]
