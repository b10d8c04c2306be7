"""The race banner: what is racing, warnings, replay state, and the clock.

Invariant: the banner's text is a pure function of what ``show()`` is given;
task titles and notices are cleaned before they are painted.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget

from thunderdome.core import figures
from thunderdome.core.events import RaceFinished
from thunderdome.core.metrics import Standings, lane_stats
from thunderdome.tui.palette import join_rows, DIM
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.clock import RaceClock

TITLE = Style(color="#ff9f1c", bold=True)
WARN = Style(color="#000000", bgcolor="#ffd23f", bold=True)
WINNER_BADGE = Style(color="#000000", bgcolor="#ffcf33", bold=True)
KIND_LABEL = {"thunderdome": "Thunderdome", "long": "long generation"}
RULE_LABEL = {"last_standing": "last process standing", "first_correct": "first correct answer wins"}


def race_status(
    standings: Standings,
    *,
    started: bool,
    finished: RaceFinished | None,
    failed: str | None,
    replay_speed: float | None = None,
    paused: bool = False,
) -> Text:
    """The banner's status line: racing / finished / failed, and the replay state."""
    status = Text(no_wrap=True)
    if failed:
        status.append("✖ " + one_line(failed, 300), Style(color="#ff5555", bold=True))
        status.append("   r retry · q quit", DIM)
    elif finished is not None:
        winner = finished.winner
        status.append("■ FINISHED", Style(color="#7ad151", bold=True))
        status.append(f"  winner: {one_line(winner, 40)}" if winner else "  no winner", Style(bold=True))
    elif not started:
        status.append("… getting ready (connecting, starting the emulator)", DIM)
    elif standings.winner is not None:  # called the moment it happened; the others stop or race on
        alive = sum(1 for lane in standings.lanes.values() if not lane.ended)
        status.append_text(winner_called(standings, standings.winner))
        if alive:
            status.append(f"  {alive}/{len(standings.lanes)} lanes racing on for places", DIM)
    else:
        alive = sum(1 for lane in standings.lanes.values() if not lane.ended)
        status.append("● RACING", Style(color="#ff5f5f", bold=True))
        status.append(f"  {alive}/{len(standings.lanes)} lanes running", DIM)
        if standings.max_tokens:
            status.append(f" · max {standings.max_tokens} tokens", DIM)
    if standings.time_scale != 1.0:
        status.append(f"   sim time ×{standings.time_scale:g}", Style(color="#ffcf33", bold=True))
    if replay_speed is not None:
        state = "⏸ PAUSED" if paused else "▶ REPLAY"
        status.append(f"   {state} {replay_speed:g}×", Style(color="#2ec4f0", bold=True))
    return status


def winner_called(standings: Standings, winner: str) -> Text:
    """``★ WINNER  cloud  1.02 s``: the winner and its done time, as its lane
    and the results show it (``figures.done_s``)."""
    text = Text(no_wrap=True)
    text.append(" ★ WINNER ", WINNER_BADGE)
    text.append(f"  {one_line(winner, 40)}", Style(bold=True))
    lane = standings.lanes.get(winner)
    if lane is not None:
        text.append(f"  {figures.seconds(figures.done_s(lane_stats(lane), standings.kind))}", Style(color="#ffcf33", bold=True))
    return text


def race_warnings(standings: Standings, warnings: list[str], *, started: bool) -> list[str]:
    """The notices to keep in view, plus a weak sandbox (Thunderdome races without bwrap)."""
    shown = list(warnings)
    isolation = standings.isolation
    if started and standings.kind == "thunderdome" and isolation != "bwrap":
        label = f"sandbox: {isolation} (no bubblewrap) — model commands are less isolated"
        if not any("bwrap" in w or "bubblewrap" in w or "isolation" in w for w in shown):
            shown.insert(0, label)
    return shown


class BannerText(Widget):
    DEFAULT_CSS = "BannerText { width: 1fr; height: 3; }"
    rows: list[Text] = []

    def render(self) -> Text:
        return join_rows(self.rows)


class RaceBanner(Horizontal):
    """Three rows: title line, task line, status line; the clock at the right."""

    DEFAULT_CSS = "RaceBanner { height: 3; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = BannerText()
        self.clock = RaceClock(id="clock")

    def compose(self) -> ComposeResult:
        yield self.text
        yield self.clock
        yield BannerText(id="clock-unit")

    def show(
        self,
        *,
        task: str,
        kind: str,
        win_rule: str,
        title: str,
        status: Text,
        warnings: list[str],
        now: float,
    ) -> None:
        row1 = Text(no_wrap=True, overflow="ellipsis")
        row1.append(" ⚡ THUNDERDOME ", Style(color="#000000", bgcolor="#ff9f1c", bold=True))
        row1.append("  ")
        row1.append(one_line(task, 40), Style(bold=True))
        label = RULE_LABEL.get(win_rule) or KIND_LABEL.get(kind, kind)
        if label:
            row1.append(" · " + label, DIM)
        row2 = Text(no_wrap=True, overflow="ellipsis")
        row2.append(" " + one_line(title, 300), Style(italic=True, color="#c8c8c8"))
        row3 = Text(no_wrap=True, overflow="ellipsis")
        row3.append(" ")
        row3.append_text(status)
        for warning in warnings:
            row3.append("  ")
            row3.append(" ⚠ " + one_line(warning, 120) + " ", WARN)
        rows = [row1, row2, row3]
        if rows != self.text.rows:
            self.text.rows = rows
            self.text.refresh()
        unit = self.query_one("#clock-unit", BannerText)
        if not unit.rows:
            unit.rows = [Text(""), Text(""), Text("s", DIM)]
            unit.refresh()
        self.clock.show(now)
