"""A lane's tool-call figures in words: an agent's start-up, time to first
tool call, time to action, turns (and an agent's requests, when it sent more
than its turns), model time and tool time.

Invariant: pure formatting of figures ``lane_stats`` computed (a
``LaneStats`` or its ``--json`` dict); nothing is measured here. A lane has
tool figures once it called a tool (``ttftc_s`` known), so a text-mode lane
and a long race show none. The results screen, the headless summary and the
lane's info row all say it with these words.
"""

from __future__ import annotations

from typing import Any, Mapping

from thunderdome.core.lane_stats import LaneStats


def seconds(value: float | None) -> str:
    """``0.412 s`` / ``12.3 s``; ``—`` unknown."""
    if value is None:
        return "—"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def _fields(figures: LaneStats | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(figures, LaneStats):
        return {k: getattr(figures, k) for k in ("startup_s", "ttftc_s", "tta_s", "turns", "requests", "model_s", "tool_s")}
    return figures


def has_tool_figures(figures: LaneStats | Mapping[str, Any]) -> bool:
    """The lane called a tool (its time to first tool call is known)."""
    return _fields(figures).get("ttftc_s") is not None


def first_call_words(figures: LaneStats | Mapping[str, Any]) -> str:
    """``first call 0.412 s · action 0.530 s``."""
    f = _fields(figures)
    return f"first call {seconds(f.get('ttftc_s'))} · action {seconds(f.get('tta_s'))}"


def tool_line(figures: LaneStats | Mapping[str, Any]) -> str:
    """``first call 0.412 s · action 0.530 s · 2 turns · model 1.204 s · tool 0.051 s``;
    an agent lane's line starts with its start-up (``start-up 3.402 s · ...``),
    and says its requests when it sent more than its turns (``2 turns of 5 requests``)."""
    f = _fields(figures)
    turns = f.get("turns") or 0
    requests = f.get("requests") or 0
    startup = f"start-up {seconds(f['startup_s'])} · " if f.get("startup_s") is not None else ""
    of = f" of {requests} requests" if requests > turns else ""
    return (
        f"{startup}{first_call_words(f)} · {turns} {'turn' if turns == 1 else 'turns'}{of}"
        f" · model {seconds(f.get('model_s'))} · tool {seconds(f.get('tool_s'))}"
    )


__all__ = ["first_call_words", "has_tool_figures", "seconds", "tool_line"]
