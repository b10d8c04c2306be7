"""The hand-off between a race's thread and the UI's frame timer.

Invariant: ``EventFeed.push`` is the only thing the source thread calls; it is
a ``deque.append`` plus one clock read, so it can never delay the race. Every
other method runs on the UI thread, once per frame: ``drain()`` folds the
queued events into the UI's own ``Standings`` and returns one ``Frame`` that
says what changed, so widgets update once per frame, never once per token.
A lane's text pieces keep the events' order; besides the token channels
(answer, reasoning) and tool calls (``TOOL``) they hold the marks of an
agent's turns: the feedback sent to the model
(``FEEDBACK``, redacted, then cut to a few visible lines) and the start of
each turn after the first (``TURN``, from its ``RequestSent``).

Nothing here imports textual: the feed is tested on its own.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from thunderdome.core.events import (
    CommandExtracted,
    Event,
    ExecFinished,
    FeedbackSent,
    LaneEvent,
    Notice,
    RaceFinished,
    RaceStarted,
    RequestSent,
    TokenDelta,
    ToolCallDelta,
    ToolCallDone,
    Usage,
    Verdict,
)
from thunderdome.core.command_text import CommandText
from thunderdome.core.metrics import Standings
from thunderdome.core.redact import redact
from thunderdome.tui.safe_text import clean
from thunderdome.core.visible import visible_line

Clock = Callable[[], float]
TOOL = "tool"
"""The stream channel of tool calls (their commands as they form)."""
TOOL_ARGS_SHOWN = 2000
"""Characters of a call's arguments shown when they hold no command string."""

FEEDBACK, TURN = "feedback", "turn"
"""The mark channels of a lane's text: feedback shown to the viewer, and a
turn's start (its text is the turn's number)."""
FEEDBACK_LINES = 3
"""Lines of the feedback (its tail) a lane shows."""
FEEDBACK_LINE_LIMIT = 240
"""Characters a feedback line is cut to."""
FEEDBACK_ROLES = {"tool": "tool result"}


def feedback_text(event: FeedbackSent) -> str:
    """What a lane shows of the feedback: a label, then the last
    ``FEEDBACK_LINES`` lines that say something (code fences and blank lines
    left out), redacted before they are cut, each on one visible line."""
    lines = [line for line in redact(event.text).splitlines() if line.strip() and not line.strip().startswith("```")]
    shown = lines[-FEEDBACK_LINES:]
    what = FEEDBACK_ROLES.get(event.role, "feedback")
    head = f"↳ {what} sent to the model" + (f" (last {len(shown)} of {len(lines)} lines)" if len(lines) > len(shown) else "")
    return "\n".join([head, *("  " + visible_line(line, FEEDBACK_LINE_LIMIT) for line in shown)]) + "\n"


class RaceTime:
    """The race clock as the viewer sees it: seconds since the start barrier.

    Each event is a fix (its ``t`` at the moment it was received); between
    fixes the clock runs at ``rate`` (the replay speed; 0 while paused). The
    value never goes backwards, and it stops at the race's end. With a frozen
    ``clock`` (snapshot tests) it reads exactly the last event's ``t``.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.rate = 1.0
        self.paused = False
        self.started = False
        self.stopped_at: float | None = None
        self._fix: tuple[float, float] = (0.0, clock())
        self._floor = 0.0

    def fix(self, t: float, at: float) -> None:
        """An event stamped ``t`` was received at ``at`` (UI clock)."""
        self.started = True
        if t >= self._fix[0]:
            self._fix = (t, at)

    def now(self) -> float:
        if self.stopped_at is not None:
            return self.stopped_at
        if not self.started:
            return 0.0
        if self.paused:
            return self._floor
        t, at = self._fix
        value = max(self._floor, t + max(0.0, self.clock() - at) * self.rate)
        self._floor = value
        return value

    def pause(self, paused: bool) -> None:
        value = self.now()
        self.paused = paused
        self._fix = (value, self.clock())

    def set_rate(self, rate: float) -> None:
        value = self.now()
        self.rate = rate
        self._fix = (value, self.clock())

    def stop(self, t: float) -> None:
        self.stopped_at = t


@dataclass
class Series:
    """One lane's line on the chart: cumulative tokens over race time."""

    points: list[tuple[float, float]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """The points' times alone (the chart bisects them every redraw)."""
    first_token_t: float | None = None
    end_t: float | None = None
    end_status: str = ""
    version: int = 0
    """Bumped when existing points change (a rescale, a point out of order)."""
    plot_cache: dict = field(default_factory=dict, repr=False, compare=False)
    """The chart's settled dots for this series (see ``widgets.chart``)."""
    _turn_start: dict[int, int] = field(default_factory=dict)
    _turn_deltas: dict[int, int] = field(default_factory=dict)
    _turn_step: dict[int, float | None] = field(default_factory=dict)
    """A turn's spacing between points while they are evenly spaced, else None."""

    @property
    def total(self) -> float:
        return self.points[-1][1] if self.points else 0.0

    def add_delta(self, t: float, turn: int) -> None:
        points = self.points
        if self.first_token_t is None:
            self.first_token_t = t
        if turn not in self._turn_start:
            self._turn_start[turn] = len(points)
        count = self._turn_deltas[turn] = self._turn_deltas.get(turn, 0) + 1
        if count == 1:
            self._turn_step[turn] = 1.0
        elif self._turn_step.get(turn) != 1.0:
            self._turn_step[turn] = None  # rescaled earlier, +1 now: no longer evenly spaced
        if points and t < points[-1][0]:
            self.version += 1  # out of order: earlier dots may move
        points.append((t, (points[-1][1] if points else 0.0) + 1))
        self.times.append(t)

    def usage(self, turn: int, tokens: int) -> None:
        """Rescale ``turn``'s points so the turn ends at the server's count
        (idempotent: a cumulative count sent twice gives the same line)."""
        deltas = self._turn_deltas.get(turn, 0)
        start = self._turn_start.get(turn)
        if not deltas or start is None:
            return
        points = self.points
        base = points[start - 1][1] if start > 0 else 0.0
        end = start + deltas
        old_end = points[end - 1][1]
        step = tokens / deltas
        if self._turn_step.get(turn) == step:
            return  # evenly spaced at this step already: nothing moves (no O(n) pass, no redraw)
        self._turn_step[turn] = step
        self.version += 1
        for k in range(deltas):
            points[start + k] = (points[start + k][0], base + (k + 1) * step)
        shift = points[end - 1][1] - old_end
        for i in range(end, len(points)):
            points[i] = (points[i][0], points[i][1] + shift)


@dataclass
class Frame:
    """What changed since the last frame."""

    events: int = 0
    text: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """lane -> [(channel, cleaned text)] in arrival order; channels: answer,
    reasoning, and the marks ``FEEDBACK`` and ``TURN``."""
    touched: set[str] = field(default_factory=set)
    """Lanes with any new event (their header needs a redraw)."""
    first_tokens: list[str] = field(default_factory=list)
    """Lanes whose first token landed in this frame."""
    states: set[str] = field(default_factory=set)
    """Lanes with more than token text (a status, a figure, a note, a first token)."""
    changed: bool = False
    """Something besides token text arrived (a lane's status, figures or the
    race's state may have changed): the ranking is due again."""
    notices: list[Notice] = field(default_factory=list)
    started: RaceStarted | None = None
    finished: RaceFinished | None = None


class EventFeed:
    """Queue (any thread) -> Standings + chart series + text (UI thread)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._queue: deque[tuple[Event, float]] = deque()
        self.standings = Standings()
        self.time = RaceTime(clock)
        self.series: dict[str, Series] = {}
        self.notices: list[Notice] = []
        self.lane_notes: dict[str, list[str]] = {}
        """Per-lane notices (e.g. the arena's PID), cleaned, in order."""
        self.exec_results: dict[str, ExecFinished] = {}
        self.turn: dict[str, int] = {}
        self.verdicts: dict[str, Verdict] = {}
        self.commands: dict[tuple[str, int, int], CommandText] = {}
        """(lane, turn, call index) -> its command as it forms (``tool_text``)."""
        self.started: RaceStarted | None = None
        self.finished: RaceFinished | None = None

    # -- source thread --------------------------------------------------------------

    def push(self, event: Event) -> None:
        """Called by the source (any thread): cheap and thread-safe."""
        self._queue.append((event, self.clock()))

    # -- UI thread --------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._queue)

    def drain(self, limit: int | None = None) -> Frame:
        """Fold queued events (at most ``limit``) and say what changed."""
        frame = Frame()
        queue = self._queue
        while queue and (limit is None or frame.events < limit):
            event, at = queue.popleft()
            frame.events += 1
            self._fold(event, at, frame)
        return frame

    def feed_all(self, events: Iterable[Event]) -> Frame:
        """Push and drain ``events`` at once (tests, snapshots, replays)."""
        for event in events:
            self.push(event)
        return self.drain()

    def series_for(self, lane: str) -> Series:
        series = self.series.get(lane)
        if series is None:
            series = self.series[lane] = Series()
        return series

    def tool_text(self, event: ToolCallDelta | ToolCallDone) -> str:
        """What a tool call adds to its lane's stream, cleaned: its command as
        it forms (``CommandText``), after a ``$ ``; at its end, if no command
        string showed (another tool, an argv list), its name and arguments."""
        key = (event.lane, event.turn, event.index)
        decoder = self.commands.setdefault(key, CommandText())
        if isinstance(event, ToolCallDelta):
            first = not decoder.shown
            text = decoder.feed(event.text)
            return clean("$ " + text if text and first else text)
        del self.commands[key]
        return "\n" if decoder.shown else clean(f"{event.name} {event.arguments[:TOOL_ARGS_SHOWN]}") + "\n"

    def _fold(self, event: Event, at: float, frame: Frame) -> None:
        self.standings.apply(event)
        self.time.fix(event.t, at)
        if isinstance(event, (TokenDelta, ToolCallDelta)):  # both are output
            series = self.series_for(event.lane)
            if series.first_token_t is None:
                frame.first_tokens.append(event.lane)
                frame.states.add(event.lane)
                frame.changed = True
            series.add_delta(event.t, event.turn)
            if isinstance(event, TokenDelta):
                text, channel = clean(event.text), event.channel
            else:
                text, channel = self.tool_text(event), TOOL
            if text:
                frame.text.setdefault(event.lane, []).append((channel, text))
            frame.touched.add(event.lane)
            return
        frame.changed = True
        if isinstance(event, LaneEvent):
            frame.touched.add(event.lane)
            frame.states.add(event.lane)
            self.turn[event.lane] = max(self.turn.get(event.lane, 1), getattr(event, "turn", 1))
            lane = self.standings.lanes.get(event.lane)
            if isinstance(event, Usage) and event.output_tokens is not None:
                self.series_for(event.lane).usage(event.turn, event.output_tokens)
            elif isinstance(event, ExecFinished):
                self.exec_results[event.lane] = event
            elif isinstance(event, Verdict):
                self.verdicts[event.lane] = event
            elif isinstance(event, CommandExtracted):
                self.exec_results.pop(event.lane, None)
            elif isinstance(event, ToolCallDone):
                text = self.tool_text(event)
                if text:
                    frame.text.setdefault(event.lane, []).append((TOOL, text))
            elif isinstance(event, FeedbackSent):
                frame.text.setdefault(event.lane, []).append((FEEDBACK, feedback_text(event)))
            elif isinstance(event, RequestSent) and event.turn > 1:
                frame.text.setdefault(event.lane, []).append((TURN, str(event.turn)))
            if lane is not None and lane.ended:
                series = self.series_for(event.lane)
                if series.end_t is None:
                    series.end_t, series.end_status = event.t, lane.status
        elif isinstance(event, RaceStarted):
            self.started = frame.started = event
            for info in event.lanes:
                self.series_for(str(info.get("name", "")))
        elif isinstance(event, RaceFinished):
            self.finished = frame.finished = event
            self.time.stop(event.t)
            if event.winner and event.winner in self.series:
                self.series[event.winner].end_status = "winner"
        elif isinstance(event, Notice):
            self.notices.append(event)
            frame.notices.append(event)
            if event.lane:
                self.lane_notes.setdefault(event.lane, []).append(clean(event.message))
                frame.touched.add(event.lane)
                frame.states.add(event.lane)
