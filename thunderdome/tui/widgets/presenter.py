"""Presenter mode: per lane the TTFT, output speed and elapsed time in large digits.

Invariant: a presenter lane shows only what ``PresenterLane.show()`` hands it,
the same ``LaneSnapshot`` the normal lane header gets in that frame, and each
figure's value and digits come from ``thunderdome.core.figures`` as the header's
do (the unit is in the figure's label), so the big digits and the normal
view never disagree. Colours come from the stylesheet (the presenter theme)
except the lane's name and status, painted in their palette colours; while
``flashing`` (its first token has just landed: the feed's
``Frame.first_tokens``) the whole panel inverts, black on the accent.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Digits, Static

from thunderdome.core import figures
from thunderdome.tui import numbers
from thunderdome.tui.palette import STATUS_BADGE, STATUS_COLOR, STATUS_ICON
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.lane import FLASH_S, LaneSnapshot, progress_bar

FIGURES = (("ttft", "TTFT", figures.SECONDS), ("tps", figures.RATE, figures.RATE), ("elapsed", "elapsed", figures.SECONDS))
"""The big figures of a lane: (id, label, unit)."""


class Figure(Vertical):
    """One big figure: a small label (with the unit) over three rows of digits."""

    DEFAULT_CSS = "Figure { width: 1fr; height: 4; }"

    def __init__(self, label: str, unit: str, *, id: str) -> None:
        super().__init__(id=id, classes="figure")
        self.label_text, self.unit = label, unit
        self.label = Static(classes="figure-label", markup=False)
        self.digits = Digits("-", classes="figure-digits")
        self._label = ""

    def compose(self) -> ComposeResult:
        yield self.label
        yield self.digits

    def show(self, digits: str, marker: str = "") -> None:
        """``digits``: the figure's digits as ``thunderdome.core.figures`` writes them
        (its unknown-value dash becomes the one the digit font draws)."""
        label = f"{marker}{self.label_text}" + ("" if self.label_text == self.unit else f" {self.unit}")
        if label != self._label:
            self._label = label
            self.label.update(label)
        value = "-" if digits == figures.NONE else digits
        if value != self.digits.value:
            self.digits.update(value)


class Track(Widget):
    """A progress bar the width of the lane, and the token count after it."""

    DEFAULT_CSS = "Track { height: 1; }"

    def __init__(self) -> None:
        super().__init__()
        self.fraction, self.count = 0.0, ""
        self.color: str | None = None

    def show(self, fraction: float, count: str, color: str | None) -> None:
        if (fraction, count, color) != (self.fraction, self.count, self.color):
            self.fraction, self.count, self.color = fraction, count, color
            self.refresh()

    def render(self) -> Text:
        count = Text(" " + self.count, no_wrap=True)
        width = max(self.size.width - count.cell_len, 0)
        return Text.assemble(progress_bar(self.fraction, width, self.color or "#000000"), count, no_wrap=True)


class PresenterLane(Vertical):
    """A lane in presenter mode: who and how it stands, three big figures, a track."""

    flashing: reactive[bool] = reactive(False)
    """The lane's first token has just landed: the panel is inverted."""

    def __init__(self, name: str, color: str) -> None:
        super().__init__(classes="presenter-lane")
        self.lane_name, self.color = name, color
        self.ident = Static(classes="presenter-ident")
        self.figures = {key: Figure(label, unit, id=f"figure-{key}") for key, label, unit in FIGURES}
        self.track = Track()
        self.snapshot: LaneSnapshot | None = None
        self._ident_shown: Text | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="presenter-row"):
            yield self.ident
            yield from self.figures.values()
        yield self.track

    def on_mount(self) -> None:
        self.styles.border_left = ("outer", self.color)

    def watch_flashing(self, flashing: bool) -> None:
        self.set_class(flashing, "-flash")
        if self.snapshot is not None:
            self.show(self.snapshot)

    def show(self, snap: LaneSnapshot) -> None:
        self.snapshot = snap
        lane, stats = snap.state, snap.stats
        ident = self._ident(snap)
        if ident != self._ident_shown:  # a Static's update asks for a layout: only when it changed
            self._ident_shown = ident
            self.ident.update(ident)
        marker = "◆ " if stats.ttft_s is not None else "◇ "
        self.figures["ttft"].show(figures.seconds_digits(stats.ttft_s), marker)
        self.figures["tps"].show(figures.rate_digits(stats.output_tps))
        self.figures["elapsed"].show(figures.seconds_digits(figures.clock_s(stats, snap.kind, snap.now)))
        tokens = lane.live_tokens if not lane.ended else stats.tokens
        fraction = tokens / snap.cap if snap.cap else (1.0 if lane.ended else 0.0)
        self.track.show(fraction, numbers.tokens(tokens, snap.cap or None) + " tokens", self._color(snap.color))

    def _color(self, color: str) -> str | None:
        """A colour painted inline, or none while flashing (the stylesheet's inverted text)."""
        return None if self.flashing or not color else color

    def _ident(self, snap: LaneSnapshot) -> Text:
        lane, stats = snap.state, snap.stats
        status = lane.status
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{stats.rank} " if stats.rank else "  ", Style(bold=True))
        text.append(one_line(lane.name, 40) + "\n", Style(color=self._color(snap.color), bold=True))
        if stats.stalled_s is not None:
            label = "STALLED " + figures.seconds(stats.stalled_s)
        else:
            label = STATUS_ICON.get(status, "") + " " + STATUS_BADGE.get(status, (status.upper(), ""))[0]
        text.append(label + "\n", Style(color=self._color(STATUS_COLOR.get(status, "")), bold=True))
        text.append(one_line(lane.model or lane.kind, 40), Style(color=self._color("#c8c8c8")))
        return text


class PresenterView(VerticalScroll):
    """Every lane of the race in presenter mode, in race order."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lanes: dict[str, PresenterLane] = {}

    def sync(self, colors: dict[str, str]) -> None:
        """Hold exactly the lanes of ``colors`` (name -> lane colour), in its order."""
        for name in [n for n in self.lanes if n not in colors]:
            self.lanes.pop(name).remove()
        for name, color in colors.items():
            if name not in self.lanes:
                self.lanes[name] = PresenterLane(name, color)
                self.mount(self.lanes[name])

    def show(self, snap: LaneSnapshot) -> None:
        lane = self.lanes.get(snap.state.name)
        if lane is not None:
            lane.show(snap)

    def first_tokens(self, landed: dict[str, float | None], now: float) -> None:
        """The first tokens of ``landed`` (lane -> race time) arrived in this
        frame: each lane that got its first token less than ``FLASH_S`` ago
        flashes for ``FLASH_S`` (one caught up on later, e.g. a replay's
        fast-forward, does not)."""
        for name, t in landed.items():
            lane = self.lanes.get(name)
            if lane is None or t is None or not 0.0 <= now - t < FLASH_S:
                continue
            lane.flashing = True
            self.set_timer(FLASH_S, lambda lane=lane: setattr(lane, "flashing", False), name=f"flash-{name}")
