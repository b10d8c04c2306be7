"""The figures a person reads, each defined once: which value, its unit, its format.

Invariant: every screen that shows a figure (lane header, leaderboard,
results table and winner line, headless table and summary, Markdown export)
takes its value and its text from the one function here, so one fact reads
as one number everywhere. A text is made from the value rounded as
``--json`` rounds it (``JSON_DIGITS``), so an export formatted from the
results dict and a screen formatted from the reducer give the same string.
Widths and padding are the caller's; digits and units are these.

Which value:

- **done** (``done_s``): when the lane crossed the line, on the race clock
  (seconds since the start barrier): a Thunderdome lane's passing verdict
  (its completion), a long-race lane's last token if it finished cleanly.
  The winner has the smallest; it is what the winner line, ★ WINNER, the
  leaderboard's done/finish column and the results' done column show.
- **clock** (``clock_s``): a lane's time on the race clock: its done time,
  else its end, else now (running). The lane header's clock.
- TTFT, TTFA, e2e: from the lane's first request (``thunderdome.core.metrics``).
- **tok/s**: the output speed read at the moment the screen shows (the same
  ``Standings.ranked(now)`` reading for every widget of a frame).
"""

from __future__ import annotations

from typing import Any, Mapping

from thunderdome.core.lane_stats import LaneStats

SECONDS = "s"
RATE = "tok/s"
JSON_DIGITS = {"seconds": 4, "rate": 2}
"""Decimals ``--json`` keeps (``lane_stats._r``): texts are made from these."""
NONE = "—"
CROSSED = ("finished", "winner")
"""Long-race statuses that crossed the line (a failed or stopped lane did not)."""


# --- formats ------------------------------------------------------------------------------


def seconds_digits(value: float | None) -> str:
    """``0.253`` / ``5.14`` / ``21.8`` / ``94``: milliseconds under 1 s (a TTFT
    is read to the millisecond), two decimals under 10 s, one under 100 s, then none.
    The cut-offs are taken after rounding, so ``0.9996`` reads ``1.00``, never ``1.000``."""
    if value is None:
        return NONE
    value = round(value, JSON_DIGITS["seconds"])
    if round(value, 3) < 1:
        return f"{value:.3f}"
    if round(value, 2) < 10:
        return f"{value:.2f}"
    if round(value, 1) < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def seconds(value: float | None) -> str:
    """``5.14 s`` (``—`` when unknown)."""
    return NONE if value is None else f"{seconds_digits(value)} {SECONDS}"


def rate_digits(value: float | None) -> str:
    """``190.2``: tok/s with one decimal (none from 10000 up)."""
    if value is None:
        return NONE
    value = round(value, JSON_DIGITS["rate"])
    return f"{value:.1f}" if value < 10000 else f"{value:.0f}"


def rate(value: float | None) -> str:
    """``190.2 tok/s`` (``— tok/s`` when unknown: the column keeps its unit)."""
    return f"{rate_digits(value)} {RATE}"


def silence_digits(value: float) -> str:
    """``4.2``: how long a stalled lane has been silent (seconds, one decimal:
    it grows while shown, so a steadier figure than ``seconds``)."""
    return f"{value:.1f}"


# --- which value --------------------------------------------------------------------------


def done_value(kind: str, status: str, completion_s: float | None, finish_s: float | None) -> float | None:
    """When the lane crossed the line (race clock), or None: see the module docstring."""
    if kind == "thunderdome":
        return completion_s
    return finish_s if status in CROSSED else None


def done_s(s: LaneStats, kind: str) -> float | None:
    """``done_value`` of a lane's figures in a race of ``kind``."""
    return done_value(kind, s.status, s.completion_s, s.finish_t)


def done_of(lane: Mapping[str, Any], kind: str) -> float | None:
    """``done_value`` of a ``--json`` lane (exports)."""
    return done_value(kind, str(lane.get("status") or ""), lane.get("completion_s"), lane.get("finish_s"))


def clock_s(s: LaneStats, kind: str, now: float) -> float:
    """The lane's time on the race clock at ``now``: done, else its end, else now."""
    done = done_s(s, kind)
    if done is not None:
        return done
    return s.end_t if s.end_t is not None else now


def winner_line(s: LaneStats, kind: str) -> str:
    """``completed the task in 1.02 s`` / ``finished first in 5.14 s``: the
    winner's done time, as every results view says it."""
    return winner_words(kind, done_s(s, kind))


def winner_words(kind: str, done: float | None) -> str:
    """The winner line for a done time (None: not known, e.g. an older results file)."""
    label = "completed the task" if kind == "thunderdome" else "finished first"
    return label if done is None else f"{label} in {seconds(done)}"


__all__ = [
    "RATE",
    "SECONDS",
    "clock_s",
    "done_of",
    "done_s",
    "done_value",
    "rate",
    "rate_digits",
    "seconds",
    "seconds_digits",
    "silence_digits",
    "winner_line",
    "winner_words",
]
