"""The one list of sim options: what a sim lane (or a request's ``thunderdome_sim``) may set.

Invariant: ``SIM_OPTIONS`` is the only place an option's name, type and range
live. The backends file is checked against it when it loads (config.py), the
client sends exactly these keys to the emulator (backends), and the emulator
parses each request's directive with the same checks (directives.py), so a
value the file accepts is a value the emulator accepts. This module imports
nothing but the fault catalogue: loading a backends file stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from thunderdome.sim.faults import parse_faults
from thunderdome.core.errors import UsageError

Parse = Callable[[Any], Any]
"""Checks one value; returns it as the emulator uses it, or raises ValueError(problem)."""


@dataclass(frozen=True)
class SimOption:
    """One option of a sim lane."""

    name: str
    parse: Parse
    doc: str
    sim_only: bool = True
    """False for options real servers take too (``seed``): allowed on real
    lanes, where they go to the server as a request field."""


class OptionError(UsageError, ValueError):
    """A bad option: ``key`` names it, ``problem`` says what is wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _number(kind: type, lo: float | None = None, hi: float | None = None) -> Parse:
    def parse(value: Any) -> Any:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok = ok and float(value).is_integer()
        if not ok:
            raise ValueError("must be an integer" if kind is int else "must be a number")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"{lo if lo is not None else '-inf'} to {hi if hi is not None else 'inf'}"
            raise ValueError(f"out of range: {value} (allowed: {bounds})")
        return kind(value)

    return parse


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _one_of(*choices: str) -> Parse:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of: {', '.join(choices)}")
        return value

    return parse


SIM_OPTIONS: dict[str, SimOption] = {
    option.name: option
    for option in (
        SimOption("reply", _text, "exact answer text to stream"),
        SimOption("wrong_reply", _text, "the answer sent instead, with probability wrong_rate"),
        SimOption("wrong_rate", _number(float, 0.0, 1.0), "probability (0..1, seeded) of sending wrong_reply"),
        SimOption("reasoning", _text, "reasoning text streamed before the answer"),
        SimOption("tokens", _number(int, 0, 1_000_000), "length of the generated text when there is no reply"),
        SimOption("seed", _number(int), "seeds jitter, generated text and the wrong-answer draw", sim_only=False),
        SimOption("time_scale", _number(float, 0.0, 1000.0), "multiplies every delay"),
        SimOption("fault", parse_faults, "a fault and quirks: a name, 'a,b' or a list (faults.py)"),
        SimOption("fault_at", _number(int, 0), "token slot at which a mid-stream fault fires"),
        SimOption("stall_s", _number(float, 0.0), "seconds a stall fault lasts"),
        SimOption("reasoning_field", _one_of("reasoning_content", "reasoning"), "OpenAI delta key for reasoning"),
        SimOption("timings", _flag, "add llama.cpp timings to the OpenAI finish chunk"),
        SimOption("slots", _number(int, 1, 4096), "requests the model runs at a time; later ones wait in a queue (llama.cpp --parallel)"),
        SimOption("request_metrics", _flag, "add vLLM per-request metrics (queue_time_ms, ...) to the OpenAI usage chunk"),
        SimOption("cached_tokens", _number(int, 0), "prompt tokens reported as served from cache (schedule unchanged)"),
    )
}
"""Every sim option by name. Add one here (and its field in ``Directives``)."""


def parse_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Each given option parsed (``None`` means not given). Raises OptionError
    at the first unknown or bad one. ``fault`` parses to ``(fault, quirks)``."""
    parsed: dict[str, Any] = {}
    for key, value in raw.items():
        option = SIM_OPTIONS.get(key)
        if option is None:
            raise OptionError(key, f"unknown option (known: {', '.join(SIM_OPTIONS)})")
        if value is None:
            continue
        try:
            parsed[key] = option.parse(value)
        except ValueError as exc:
            raise OptionError(key, str(exc)) from None
    return parsed


__all__ = ["SIM_OPTIONS", "OptionError", "SimOption", "parse_options"]
