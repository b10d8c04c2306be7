"""One lane of the race: a header track, an agent line, and the token stream,
painted by one widget.

Invariant: a lane is one widget: its header, info rows and text are parts
it paints through the Line API, not widgets (each widget in a repainted
region costs Textual its own compositing, and 16 lanes repaint every
frame). It shows only what ``LaneView.show()`` hands it (a snapshot of the reducer's state, computed once per frame), and its status
shows through one CSS class ``-<status>`` (``-waiting``, ``-streaming``,
``-winner``, ``-error``, ...) styled in ``thunderdome.tcss``; the class is
set at once, the stylesheet re-applied by ``LaneView.restyle()`` when the
race screen has time for it (only if a rule tells the two statuses apart).
All text it paints is built as ``rich.text.Text`` from cleaned strings: no
markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from thunderdome.core import events as ev
from thunderdome.core import figures
from thunderdome.core.metrics import LaneState, LaneStats
from thunderdome.tui import numbers
from thunderdome.tui.palette import join_rows, DIM, LABEL, MARKER_STYLE, STATUS_BADGE, STATUS_COLOR, STATUS_ICON, badge
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.rows import RowStrips
from thunderdome.tui.widgets.stream import COMPONENT_CLASSES as STREAM_CLASSES
from thunderdome.tui.widgets.stream import DEFAULT_CSS as STREAM_CSS
from thunderdome.tui.widgets.stream import WHEEL_ROWS, TokenStream

STATUSES = tuple(STATUS_BADGE)
FLASH_STYLE = Style(bgcolor="#6b5310", bold=True)
FLASH_S = 1.2
"""Race seconds the header stays highlighted after the first token lands; a
function of race time, so replays, pauses and snapshots show it exactly."""
_EIGHTHS = " ▏▎▍▌▋▊▉"


def progress_bar(fraction: float, width: int, color: str, *, empty: str = "#30343c") -> Text:
    """A smooth bar of ``width`` cells: solid cells are painted as background
    (no glyph seams), the leading edge as an eighth block."""
    width = max(width, 0)
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = Text(no_wrap=True)
    text.append(" " * full, Style(bgcolor=color))
    if part and full < width:
        text.append(_EIGHTHS[part], Style(color=color, bgcolor=empty))
        full += 1
    text.append(" " * (width - full), Style(bgcolor=empty))
    return text


@dataclass
class LaneSnapshot:
    """Everything a lane shows for one frame."""

    state: LaneState
    stats: LaneStats
    now: float
    cap: int
    color: str
    kind: str = "long"
    """Race kind: ``long`` or ``thunderdome``."""
    pid: str = ""
    exec_result: ev.ExecFinished | None = None
    verdict: ev.Verdict | None = None
    turn: int = 1
    max_turns: int = 1
    notes: list[str] = field(default_factory=list)
    first_token_t: float | None = None
    """Race time of the lane's first token (for the landing highlight)."""


def header_rows(snap: LaneSnapshot, width: int) -> list[Text]:
    """The two header rows: identity + badge, then the track."""
    lane, stats = snap.state, snap.stats
    stalled = None if stats.stalled_s is None else figures.silence_digits(stats.stalled_s)
    return [ident_row(lane.name, lane.kind, lane.model, snap.color, lane.status, stalled, width), track_row(snap, width)]


@lru_cache(maxsize=1024)
def ident_row(name: str, kind: str, model: str, color: str, status: str, stalled: str | None, width: int) -> Text:
    """The first header row: name, kind and model, then the status badge (or
    the stall, ``stalled`` seconds: no token for far longer than its own
    pace). One ``Text`` per distinct row, shared: rows are never changed
    once built, and an unchanged row is not even compared."""
    if stalled is None:
        badge_text = badge(status)
    else:
        badge_text = Text(f" STALLED {stalled} s ".center(12), style="bold #1a1a1a on #ffcf33")
    ident = Text(no_wrap=True, overflow="ellipsis")
    ident.append(one_line(name, 40), Style(color=color, bold=True))
    if kind or model:
        ident.append("  " + one_line(" · ".join(p for p in (kind, model) if p), 60), DIM)
    room = max(width - badge_text.cell_len - 1, 1)
    ident.truncate(room, overflow="ellipsis", pad=True)
    return Text.assemble(ident, " ", badge_text, no_wrap=True)


def header_line(snap: LaneSnapshot, width: int) -> Text:
    """The header in one row, for a lane with one row on screen: the name in a
    fifth of the row (cut or padded, so the lanes' tracks line up), its status
    icon, then the track."""
    lane = snap.state
    name = Text(one_line(lane.name, 40), Style(color=snap.color, bold=True), no_wrap=True)
    name.truncate(max(8, width // 5), overflow="ellipsis", pad=True)
    if snap.stats.stalled_s is not None:
        icon = Text("⏸", Style(color="#ffcf33", bold=True))
    else:
        icon = Text(STATUS_ICON.get(lane.status, " "), Style(color=STATUS_COLOR.get(lane.status, ""), bold=True))
    return Text.assemble(name, " ", icon, " ", track_row(snap, width - name.cell_len - 3), no_wrap=True)


def track_row(snap: LaneSnapshot, width: int) -> Text:
    """The track: ◆ TTFT (or the wait so far), tok/s, tokens, a progress bar
    and the elapsed time. For ``FLASH_S`` after the first token the TTFT
    figure is highlighted (painted here, not by a CSS class: a class change
    restyles the lane's whole subtree, ~10 ms)."""
    lane, stats = snap.state, snap.stats
    status = lane.status
    row2 = Text(no_wrap=True, overflow="ellipsis")
    if stats.ttft_s is not None:
        row2.append("◆ ", MARKER_STYLE)
        row2.append("TTFT ", LABEL)
        row2.append(numbers.seconds(stats.ttft_s).strip().rjust(7), Style(bold=True))
    elif lane.ended:
        row2.append("◇ ", DIM)
        row2.append("no token".ljust(12), DIM)
    else:
        waited = max(0.0, snap.now - (lane.turns[0].request_t if lane.turns else (lane.started_t or 0.0)))
        row2.append("◇ ", DIM)
        row2.append(("wait " + numbers.seconds(waited).strip()).ljust(12), DIM)
    row2.append("  ")
    row2.append(numbers.tps(stats.output_tps, 11), Style(bold=stats.output_tps is not None))
    tail = Text(no_wrap=True)
    tail.append("  ")
    tail.append(numbers.seconds(figures.clock_s(stats, snap.kind, snap.now), 7), Style(color=STATUS_COLOR.get(status, "")))
    tokens = lane.live_tokens if not lane.ended else stats.tokens
    count = Text("  " + numbers.tokens(tokens, snap.cap or None) + " ", no_wrap=True)
    bar_w = width - row2.cell_len - count.cell_len - tail.cell_len
    if bar_w >= 6:
        row2.append_text(count)
        fraction = tokens / snap.cap if snap.cap else (1.0 if lane.ended else 0.0)
        row2.append_text(progress_bar(fraction, bar_w, STATUS_COLOR.get(status, snap.color) if lane.ended else snap.color))
    elif width - row2.cell_len - count.cell_len - tail.cell_len >= 0:
        row2.append_text(count)
    row2.append_text(tail)
    landed = snap.first_token_t
    if landed is not None and 0.0 <= snap.now - landed < FLASH_S:
        row2.stylize(FLASH_STYLE, 0, 2 + 5 + 7)  # the ◆ TTFT figure, lit up
    return row2


def info_rows(snap: LaneSnapshot) -> list[Text]:
    """Agent details (Thunderdome races), and why a lane ended badly."""
    lane = snap.state
    rows: list[Text] = []
    if snap.kind == "thunderdome":
        row = Text(no_wrap=True, overflow="ellipsis")
        if snap.pid:
            row.append("PID ", LABEL)
            row.append(snap.pid.ljust(6), Style(bold=True))
        if snap.max_turns > 1:
            row.append("turn ", LABEL)
            row.append(f"{snap.turn}/{snap.max_turns}  ", Style(bold=True))
        stats = snap.stats
        if stats.startup_s is not None:  # an agent lane: its launch to its first request
            row.append("start-up ", LABEL)
            row.append(numbers.seconds(stats.startup_s).strip() + "  ", Style(bold=True))
        if stats.ttftc_s is not None:  # tool mode: its first call's name, then its arguments, arrived
            row.append("call ", LABEL)
            row.append(numbers.seconds(stats.ttftc_s).strip() + "  ", Style(bold=True))
            row.append("act ", LABEL)
            row.append(numbers.seconds(stats.tta_s).strip() + "  ", Style(bold=True))
        if lane.last_command:
            row.append("$ ", Style(color="#7ad151", bold=True))
            row.append(one_line(lane.last_command, 120), Style(color="#e0e0e0", bold=True))
            row.append("  ")
        elif lane.status in ("streaming", "thinking") and not lane.ended:
            row.append("writing a command…  ", DIM)
        result = snap.exec_result
        if result is not None:
            if result.timed_out:
                row.append("⏱ timed out  ", Style(color="#ffd23f", bold=True))
            elif result.exit_code == 0:
                row.append("✔ exit 0  ", Style(color="#7ad151", bold=True))
            else:
                row.append(f"✖ exit {result.exit_code}  ", Style(color="#ff5555", bold=True))
        verdict = snap.verdict
        if verdict is not None and lane.status not in ("eliminated", "error"):
            mark = ("✔ ", "#7ad151") if verdict.passed else ("✖ ", "#ff8c42")
            row.append(mark[0] + one_line(verdict.detail or ("pass" if verdict.passed else "fail"), 80), Style(color=mark[1]))
        if stats.ttftc_s is not None and stats.tool_s is not None:
            row.append("  model ", LABEL)
            row.append(f"{numbers.seconds(stats.model_s).strip()} / tool {numbers.seconds(stats.tool_s).strip()}", DIM)
        if row.plain.strip():
            rows.append(row)
    if lane.status == "eliminated":
        who = f"killed by {lane.eliminated_by}" if lane.eliminated_by else "eliminated"
        text = Text("✖ " + one_line(who, 60), Style(color="#ff6b6b", bold=True), no_wrap=True, overflow="ellipsis")
        if lane.reason and lane.reason != who:
            text.append("  " + one_line(lane.reason, 160), Style(color="#e06c6c"))
        rows.append(text)
    elif lane.status == "error":
        rows.append(Text("✖ " + one_line(lane.reason or "error", 200), Style(color="#ff5555", bold=True), no_wrap=True, overflow="ellipsis"))
    elif lane.status == "winner":
        when = figures.seconds(figures.done_s(snap.stats, snap.kind))
        rows.append(Text(f"★ WINNER {when}", Style(color="#ffcf33", bold=True), no_wrap=True))
    elif lane.status == "stopped":
        rows.append(Text("■ " + one_line(lane.reason or "stopped", 160), STATUS_COLOR["stopped"], no_wrap=True, overflow="ellipsis"))
    for note in snap.notes[-1:]:
        rows.append(Text("ⓘ " + one_line(note, 160), DIM, no_wrap=True, overflow="ellipsis"))
    return rows


class LanePart(RowStrips):
    """A few rows of a lane (its header, its info lines), painted by the lane
    widget at ``top`` of its content."""

    def __init__(self, host: Widget) -> None:
        super().__init__()
        self._host = host
        self.top = 0

    def render(self) -> Text:
        """The rows as one ``Text``."""
        return join_rows(self.rows)

    @property
    def region(self) -> Region:
        """Where the rows are on screen."""
        box = self._host.content_region
        return Region(box.x, box.y + self.top, box.width, len(self.rows))


class LaneHeader(LanePart):
    """The lane's two header rows (one for ``-one-line`` lanes), built from
    its snapshot; a row is repainted only when it changes."""

    def __init__(self, host: Widget) -> None:
        super().__init__(host)
        self.snapshot: LaneSnapshot | None = None
        self.one_row = False
        """The layout leaves the header one row (``-one-line`` lanes)."""

    def build_rows(self, width: int) -> list[Text]:
        if self.snapshot is None or not width:
            return []
        return [header_line(self.snapshot, width)] if self.one_row else header_rows(self.snapshot, width)


_STYLED: dict[int, frozenset[str]] = {}


def _styled_statuses(widget: Widget) -> frozenset[str]:
    """The statuses whose ``-<status>`` class some rule of the app's stylesheet selects."""
    stylesheet = widget.app.stylesheet
    found = _STYLED.get(id(stylesheet))
    if found is None:
        try:
            selectors = "\n".join(rule.selectors for rule in stylesheet.rules)
        except Exception:  # an unexpected stylesheet: always restyle
            return frozenset(STATUSES)
        found = _STYLED[id(stylesheet)] = frozenset(s for s in STATUSES if re.search(rf"\.-{s}\b", selectors))
    return found


HEADER = "lane--header"
"""The component class of the header rows' style."""
LANE_GRID_MODES = {"-headers": (2, False), "-one-line": (1, False)}
"""The lane grid's classes (``race_layout``) that take rows from a lane:
its header rows and whether its text shows; else (2, True)."""


class LaneView(Widget):
    """A lane, painted by this one widget: header rows, info rows, then the
    token stream's window below them. ``show(snapshot)`` once per frame;
    ``stream`` for its text. The info rows (agent line, end reason) take
    no room while they have nothing to say."""

    COMPONENT_CLASSES = {HEADER, *STREAM_CLASSES}
    DEFAULT_CSS = """
    LaneView {
        width: 1fr;
        height: 1fr;
        overflow: hidden hidden;
    """ + STREAM_CSS + "}"

    def __init__(self, name: str, color: str, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="lane -waiting")
        self.lane_name = name
        self.color = color
        self.header = LaneHeader(self)
        self.info = LanePart(self)
        self.stream = TokenStream(self)
        self._status = "waiting"
        self._header_base: Style | None = None
        self._base: Style | None = None
        self._pass_width: int | None = None
        self._placed = Size()
        """The size the parts were placed for."""
        self.restyle_due = False
        """The status class changed in a way the stylesheet cares about."""
        self.styles.border_left = ("outer", color)  # set before mount: no layout of its own

    # -- the parts' places ------------------------------------------------------------------

    def _arrange(self) -> None:
        """Place the parts for the lane's size and the grid's mode."""
        rows, text = next((mode for name, mode in LANE_GRID_MODES.items()
                           if self.parent is not None and self.parent.has_class(name)), (2, True))
        self.header.one_row = rows == 1
        self.info.top = rows
        top = rows + len(self.info.rows)
        self._placed = self.size
        width, height = self.size
        self.stream.place(Region(0, top, width, max(height - top, 0) if text else 0))

    def _relayout(self) -> None:
        """The lane's size or styles (the grid's mode) changed: place the
        parts again, build the header for them, repaint everything."""
        self._arrange()
        self.header.replace(self.header.build_rows(self.size.width))
        self.refresh()

    def _header_now(self) -> None:
        """Build the header rows for the lane's width; repaint the rows that differ."""
        changed = self.header.set(self.header.build_rows(self.size.width))
        if changed is None:
            self.refresh()
        else:
            for y in changed:
                self._refresh_row(y)

    def _refresh_row(self, y: int) -> None:
        gutter = self.styles.gutter
        self.refresh(Region(0, gutter.top + y, self.outer_size.width, 1))

    def on_resize(self) -> None:
        self._relayout()

    # -- one frame ----------------------------------------------------------------------------

    def show(self, snap: LaneSnapshot) -> None:
        self.header.snapshot = snap
        self._header_now()
        if snap.state.ended:
            self.stream.release_held()
        rows = info_rows(snap)
        if [r.plain for r in rows] != [r.plain for r in self.info.rows]:
            self.info.replace(rows)
            self._arrange()
            self.refresh()
        status = snap.state.status
        if status != self._status:
            # the class changes now; restyling the lane (~3 ms) is left to
            # ``restyle()``, and skipped when no rule tells them apart
            styled = _styled_statuses(self)
            self.restyle_due = self.restyle_due or self._status in styled or status in styled
            self.remove_class(f"-{self._status}", update=False)
            self.add_class(f"-{status}", update=False)
            self._status = status

    def restyle(self) -> None:
        """Apply the stylesheet for the lane's current status class (its
        parts' styles too: a rule may change only those)."""
        if self.restyle_due:
            self.restyle_due = False
            self.update_node_styles()
            self.notify_style_update()

    # -- painting -----------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._header_base = self._base = None
        self.header.forget()
        self.info.forget()
        self.stream.restyled()
        self._relayout()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self._in_stream(event.y) and self.stream.scroll_rows(-WHEEL_ROWS):
            event.stop()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        if self._in_stream(event.y) and self.stream.scroll_rows(WHEEL_ROWS):
            event.stop()

    def _in_stream(self, y: int) -> bool:
        top = self.styles.gutter.top + self.info.top + len(self.info.rows)
        return top <= y < top + self.stream.size.height

    def render_lines(self, crop: Region) -> list[Strip]:
        """Textual's paint of the lane: the parts' geometry is read once for
        all its lines, not per line (and placed first if the lane was
        resized since, before its resize event is handled)."""
        if self.size != self._placed:
            self._relayout()
        self._pass_width = self.size.width
        self.stream.begin_paint()
        try:
            return super().render_lines(crop)
        finally:
            self.stream.end_paint()
            self._pass_width = None

    def render_line(self, y: int) -> Strip:
        width = self.size.width if self._pass_width is None else self._pass_width
        console = self.app.console
        info = self.info
        if y < info.top:
            if self._header_base is None:
                self._header_base = self.get_component_rich_style(HEADER)
            return self.header.line(y, width, console, self._header_base)
        if self._base is None:
            self._base = self.rich_style
        top = info.top + len(info.rows)
        if y < top:
            return info.line(y - info.top, width, console, self._base)
        if y - top < self.stream.size.height:
            return self.stream.render_line(y - top)
        return Strip.blank(width, self._base)
