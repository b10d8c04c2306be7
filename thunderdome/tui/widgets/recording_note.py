"""The results screen's notes: why each lane ended, tool calls, the race's
facts, where the recording, exports and screenshot went.

Invariant: every line is read from the ``Standings`` and the source's
``RecordingStatus``; an incomplete recording is shown as such (what
``describe()`` says) and never offered for replay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from thunderdome.core.events import NATURAL_ENDS
from thunderdome.core.lane_stats import CLIENT_LIMITED_NOTE
from thunderdome.core.metrics import LaneStats, Standings, client_limited
from thunderdome.core.tool_figures import has_tool_figures, tool_line
from thunderdome.tui import numbers
from thunderdome.tui.palette import DIM, LABEL, STATUS_COLOR
from thunderdome.tui.safe_text import one_line

if TYPE_CHECKING:
    from thunderdome.sources.base import RecordingStatus


def lane_note(standings: Standings, s: LaneStats) -> str:
    """Why a lane ended as it did, in one line ('' when there is nothing to say)."""
    lane = standings.lanes[s.name]
    if s.status == "eliminated":
        who = f"killed by {s.eliminated_by}" if s.eliminated_by else "eliminated"
        return who + (f" · {lane.reason}" if lane.reason and lane.reason != who else "")
    if s.status == "error":
        return s.error or lane.reason or "error"
    if s.status == "stopped":
        return lane.reason or "stopped"
    if s.verdict:
        return s.verdict
    unusual = s.finish_reason is not None and s.finish_reason not in NATURAL_ENDS and s.status == "finished"
    return " · ".join(part for part in (f"finish reason: {s.finish_reason}" if unusual else "", *s.figure_notes()) if part)


class RecordingNote(Widget):
    """Where the recording and the exports went."""

    DEFAULT_CSS = "RecordingNote { height: auto; }"

    def __init__(self, standings: Standings, recording: RecordingStatus | None, colors: dict[str, str]) -> None:
        super().__init__(id="recording-note")
        self.standings = standings
        self.recording = recording
        self.isolation = standings.isolation
        self.kind = standings.kind
        self.lane_colors = colors
        self.exports: list[str] = []
        self.screenshot: str | None = None

    def render(self) -> Text:
        text = Text()
        standings = self.standings
        for s in standings.ranked(standings.finished_t):
            note = lane_note(standings, s)
            if not note:
                continue
            mark, color = (
                ("✖ ", "#ff6b6b") if s.status in ("error", "eliminated")
                else ("■ ", STATUS_COLOR["stopped"]) if s.status == "stopped"
                else ("✔ ", "#7ad151")
            )
            text.append(mark, Style(color=color, bold=True))
            text.append(one_line(s.name, 30), Style(color=self.lane_colors.get(s.name, ""), bold=True))
            text.append("  " + one_line(note, 300) + "\n", Style(color="#d0d0d0"))
        tool_lanes = [s for s in standings.ranked(standings.finished_t) if has_tool_figures(s)]
        if tool_lanes:
            text.append("tool calls\n", LABEL)
        for s in tool_lanes:
            text.append("⚒ ", Style(color="#ffcf33", bold=True))
            text.append(one_line(s.name, 30), Style(color=self.lane_colors.get(s.name, ""), bold=True))
            text.append("  " + tool_line(s) + "\n", Style(color="#d0d0d0"))
        if text.plain:
            text.append("\n")
        duration = standings.finished_t
        text.append("race       ", LABEL)
        text.append(f"{numbers.seconds(duration).strip()}", Style(bold=True))
        if standings.max_tokens:
            text.append(f" · max {standings.max_tokens} tokens", DIM)
        if standings.time_scale != 1.0:
            text.append(f" · sim time ×{standings.time_scale:g}", Style(color="#ffcf33", bold=True))
        if client_limited(standings.ranked(standings.finished_t)):
            text.append(f"\n           ⚠ {CLIENT_LIMITED_NOTE}", Style(color="#ffcf33", bold=True))
        if standings.started_at:
            text.append("\nstarted    ", LABEL)
            text.append(standings.started_at[:19].replace("T", " ") + " UTC", DIM)
        text.append("\n")
        text.append("recording  ", LABEL)
        recording = self.recording
        text.append(one_line(recording.path, 300) if recording else "not recorded", Style(bold=bool(recording)))
        if recording is not None and not recording.complete:
            text.append("\n           ✖ ", Style(color="#ff6b6b", bold=True))
            text.append(one_line(recording.describe(), 300), Style(color="#ff6b6b", bold=True))
        elif recording is not None:
            text.append("\n           replay: ", LABEL)
            text.append(f"thunderdome replay {one_line(recording.path, 300)}", DIM)
        if self.kind == "thunderdome":
            text.append("\nsandbox    ", LABEL)
            ok = self.isolation == "bwrap"
            text.append(self.isolation, Style(color="#7ad151" if ok else "#ffd23f", bold=True))
            if not ok:
                text.append("  ⚠ weaker isolation than bubblewrap", Style(color="#ffd23f"))
        for path in self.exports:
            text.append("\nexported   ", LABEL)
            text.append(one_line(path, 300), Style(bold=True))
        if self.screenshot:
            text.append("\nscreenshot ", LABEL)
            text.append(one_line(self.screenshot, 300), Style(bold=True))
        text.append("\n\n◆ first token · ✖ out or failed · time axis: log\n", DIM)
        text.append("tokens: usage/server = the server's own count,\n        estimate (*) = streamed chunks counted", DIM)
        if tool_lanes:
            text.append("\nfirst call: its name arrived · action: its arguments\ncomplete · model/tool: time streaming vs running", DIM)
        return text
