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

from thunderdome.tui.palette import join_rows, DIM
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.clock import RaceClock

TITLE = Style(color="#ff9f1c", bold=True)
WARN = Style(color="#000000", bgcolor="#ffd23f", bold=True)
KIND_LABEL = {"thunderdome": "Thunderdome", "long": "long generation"}
RULE_LABEL = {"last_standing": "last process standing", "first_correct": "first correct answer wins"}


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
