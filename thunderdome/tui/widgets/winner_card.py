"""The winner card on the results screen: who won, in big digits, and why.

Invariant: the card is a pure picture of the ``Standings`` it is given (the
winner by ``Standings.winner``, the figures from ``ranked()``); with no
winner it says so and lists why each lane did not finish.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Digits, Static

from thunderdome.core import figures
from thunderdome.core.metrics import LaneStats, Standings
from thunderdome.tui import numbers
from thunderdome.tui.palette import DIM, LABEL
from thunderdome.tui.safe_text import one_line


def why_line(standings: Standings, ranked: list[LaneStats]) -> Text:
    """Why the winner won: an earlier start, a faster pace, or both (or, in a
    Thunderdome race, whom it knocked out)."""
    text = Text()
    if standings.kind == "thunderdome" and ranked:
        victims = [s.name for s in ranked if s.eliminated_by == ranked[0].name]
        if victims:
            text.append(one_line("knocked out " + ", ".join(victims), 200), Style(color="#d0d0d0"))
            return text
    if len(ranked) < 2 or ranked[0].ttft_s is None:
        return text
    first, second = ranked[0], ranked[1]
    parts: list[str] = []
    if second.ttft_s is not None:
        gap = second.ttft_s - first.ttft_s
        if gap > 0.005:
            parts.append(f"first token {figures.seconds(gap)} before {second.name}")
        elif gap < -0.005:
            parts.append(f"first token {figures.seconds(-gap)} after {second.name}")
    if first.output_tps and second.output_tps:
        ratio = first.output_tps / second.output_tps
        if ratio >= 1.05:
            parts.append(f"{ratio:.1f}× {second.name}'s output speed")
        elif ratio <= 0.95:
            parts.append(f"{1 / ratio:.1f}× slower output than {second.name}")
    if parts:
        text.append(one_line(" · ".join(parts), 200), Style(color="#d0d0d0"))
    return text


class WinnerCard(Horizontal):
    """Who won, in big digits, and why."""

    def __init__(self, standings: Standings, colors: dict[str, str]) -> None:
        super().__init__(id="winner")
        self.standings = standings
        self.lane_colors = colors

    def compose(self) -> ComposeResult:
        standings = self.standings
        ranked = standings.ranked(standings.finished_t)
        winner = next((s for s in ranked if s.name == standings.winner), None)
        text = Text(no_wrap=True, overflow="ellipsis")
        if winner is None:
            text.append("  NO WINNER\n", Style(bold=True, color="#ff6b6b"))
            reasons = [f"{s.name}: {s.error or s.status}" for s in ranked]
            text.append("  " + one_line("; ".join(reasons) or "no lane finished", 300) + "\n", DIM)
            seconds = standings.finished_t or 0.0
        else:
            text.append("  ★ WINNER  ", Style(color="#000000", bgcolor="#ffcf33", bold=True))
            text.append("  " + one_line(winner.name, 40), Style(color=self.lane_colors.get(winner.name, "#ffffff"), bold=True))
            text.append("  " + one_line(" · ".join(p for p in (winner.kind, winner.model) if p), 60) + "\n", DIM)
            seconds = figures.done_s(winner, standings.kind) or 0.0
            text.append(f"  {figures.winner_line(winner, standings.kind)}", Style(bold=True))
            if winner.ttft_s is not None:
                text.append(f" · TTFT {figures.seconds(winner.ttft_s)}", LABEL)
            if winner.tta_s is not None:
                text.append(f" · action {figures.seconds(winner.tta_s)}", LABEL)
            if winner.output_tps:
                text.append(f" · {figures.rate(winner.output_tps)}", LABEL)
            text.append("\n  ")
            text.append_text(why_line(standings, ranked))
        yield Static(text, id="winner-text")
        yield Digits(figures.seconds_digits(seconds) if winner is not None else numbers.clock(seconds), id="winner-time")
