"""The TUI's UI-free parts: the event feed, the race clock, text cleaning, the
chart plot, number formats, and the import boundary (core never loads textual)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from thunderdome.core import events as ev
from thunderdome.core import figures
from thunderdome.core.metrics import Standings
from thunderdome.tui import numbers
from thunderdome.core.redact import REDACTED
from thunderdome.tui.feed import FEEDBACK, FEEDBACK_LINE_LIMIT, FEEDBACK_LINES, TURN, EventFeed, RaceTime, Series
from thunderdome.tui.safe_text import clean, one_line

sys.path.insert(0, str(Path(__file__).parent))
from tui_scripted import long_race, sigkill_race  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- safe text ---------------------------------------------------------------------------


def test_clean_shows_escapes_and_markup_literally():
    raw = "[bold]hi[/] \x1b[31mred\x1b[0m\x07\tend\r\n\x9bX"
    out = clean(raw)
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "\r" not in out
    assert "[bold]hi[/]" in out
    assert "␛[31mred␛[0m" in out
    assert "␇" in out  # BEL as a control picture
    assert "    end\n" in out


def test_one_line_is_single_line_and_bounded():
    out = one_line("a\nb" + "x" * 500, 40)
    assert "\n" not in out and len(out) == 40 and out.endswith("…")


# -- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 0.0, 0.9, 9.99, 21.83, 93.89, 512.0])
def test_seconds_has_fixed_width(value):
    assert len(numbers.seconds(value)) == 7


def test_clock_format_steps():
    assert numbers.clock(1.04) == "1.04"
    assert numbers.clock(12.34) == "12.3"
    assert numbers.clock(1234.5) == "1234"


# -- race time ------------------------------------------------------------------------------


def test_race_time_runs_between_fixes_and_never_goes_back():
    clock = FakeClock(10.0)
    rt = RaceTime(clock)
    assert rt.now() == 0.0  # not started
    rt.fix(0.0, 10.0)
    clock.now = 11.5
    assert rt.now() == pytest.approx(1.5)
    rt.fix(1.2, 11.6)  # a late-delivered fix must not pull the clock back
    clock.now = 11.6
    assert rt.now() >= 1.5
    rt.pause(True)
    clock.now = 20.0
    frozen = rt.now()
    assert frozen == pytest.approx(1.5)
    rt.pause(False)
    clock.now = 21.0
    assert rt.now() == pytest.approx(frozen + 1.0)
    rt.set_rate(4.0)
    clock.now = 22.0
    assert rt.now() == pytest.approx(frozen + 5.0)
    rt.stop(3.0)
    assert rt.now() == 3.0


def test_frozen_clock_reads_last_event_time():
    feed = EventFeed(FakeClock(5.0))
    feed.feed_all(long_race(until=4.2))
    assert feed.time.now() == pytest.approx(max(e.t for e in long_race(until=4.2)))


# -- feed ---------------------------------------------------------------------------------


def test_drain_folds_into_standings_like_the_reducer():
    events = long_race()
    feed = EventFeed(FakeClock())
    frame = feed.feed_all(events)
    reference = Standings().apply_all(events)
    assert frame.events == len(events)
    assert feed.standings.results() == reference.results()
    assert frame.finished is not None and frame.finished.winner == "cloud"
    assert feed.time.now() == pytest.approx(frame.finished.t)


def test_frame_reports_first_tokens_once_and_text_per_lane():
    events = long_race(until=3.0)
    feed = EventFeed(FakeClock())
    for event in events[: len(events) // 2]:
        feed.push(event)
    first = feed.drain()
    for event in events[len(events) // 2 :]:
        feed.push(event)
    second = feed.drain()
    landed = first.first_tokens + second.first_tokens
    assert sorted(landed) == ["cloud", "dgx-spark", "rtx4090"]
    assert len(set(landed)) == len(landed)
    text = "".join(t for frame in (first, second) for _, t in frame.text.get("cloud", []))
    expected = "".join(e.text for e in events if isinstance(e, ev.TokenDelta) and e.lane == "cloud")
    assert text == expected


def test_drain_limit_leaves_the_rest_queued():
    feed = EventFeed(FakeClock())
    for event in long_race(until=1.0):
        feed.push(event)
    total = feed.pending
    frame = feed.drain(limit=5)
    assert frame.events == 5 and feed.pending == total - 5


def test_series_usage_rescale_is_idempotent():
    s = Series()
    for i in range(10):
        s.add_delta(0.1 * i, turn=1)
    s.usage(1, 20)
    once = list(s.points)
    s.usage(1, 20)
    assert s.points == once
    assert s.total == 20
    assert [p[0] for p in s.points] == [0.1 * i for i in range(10)]


def test_series_usage_mid_stream_then_more_tokens():
    s = Series()
    for i in range(4):
        s.add_delta(0.1 * i, turn=1)
    s.usage(1, 4)  # one token per delta: nothing moves, the chart keeps its dots
    assert s.version == 0 and [p[1] for p in s.points] == [1, 2, 3, 4]
    s.usage(1, 8)  # a cumulative count mid-stream (Anthropic): two tokens per delta
    assert [p[1] for p in s.points] == [2, 4, 6, 8] and s.version == 1
    s.add_delta(0.5, turn=1)
    s.add_delta(0.6, turn=1)
    assert [p[1] for p in s.points][-2:] == [9, 10]
    s.usage(1, 12)  # same spacing as before, but the new points are not on it
    assert [p[1] for p in s.points] == [2, 4, 6, 8, 10, 12]
    s.add_delta(0.1, turn=2)  # a second turn starts from the first one's end
    s.usage(1, 6)
    assert [p[1] for p in s.points] == [1, 2, 3, 4, 5, 6, 7]


def test_thunderdome_events_reach_lane_details():
    feed = EventFeed(FakeClock())
    feed.feed_all(sigkill_race())
    assert feed.exec_results["cloud"].exit_code == 0
    assert feed.verdicts["cloud"].passed
    assert feed.standings.lanes["dgx-spark"].pid == 4 and "dgx-spark" not in feed.lane_notes
    assert feed.standings.lanes["dgx-spark"].eliminated_by == "cloud"


def test_an_agents_turns_reach_the_lane_text_as_marks_in_order():
    feed = EventFeed(FakeClock())
    frame = feed.feed_all([
        ev.RequestSent(t=0.1, lane="a", turn=1),
        ev.TokenDelta(t=0.2, lane="a", text="```bash\nfalse\n```"),
        ev.Verdict(t=0.3, lane="a", turn=1, detail="wrong"),
        ev.FeedbackSent(t=0.3, lane="a", turn=1, text="exit code: 1\n\nThat did not solve the task: wrong.", role="tool"),
        ev.RequestSent(t=0.4, lane="a", turn=2),
        ev.TokenDelta(t=0.5, lane="a", text="again", turn=2),
    ])
    channels = [channel for channel, _ in frame.text["a"]]
    assert channels == ["answer", FEEDBACK, TURN, "answer"]
    feedback, turn = frame.text["a"][1][1], frame.text["a"][2][1]
    assert turn == "2"
    assert feedback.splitlines() == [
        "↳ tool result sent to the model", "  exit code: 1", "  That did not solve the task: wrong."
    ]


def test_feedback_shown_is_a_redacted_visible_bounded_tail(monkeypatch):
    key = "sk-QZ7w-0123456789abcdef"
    monkeypatch.setenv("FEEDBACK_TEST_API_KEY", key)
    straddling = "y" * (FEEDBACK_LINE_LIMIT - 8) + key  # the key crosses the line's cut
    text = "\n".join(["first line", "```", "\x1b[2J\x1b]52;c;AAAA\x07cleared?", "", straddling, "```", "last"])
    shown = feedback_text_of(ev.FeedbackSent(t=1.0, lane="a", text=text))
    lines = shown.splitlines()
    assert lines[0] == "↳ feedback sent to the model (last 3 of 4 lines)"
    assert len(lines) == 1 + FEEDBACK_LINES and "first line" not in shown and "```" not in shown
    assert lines[1] == "  ␛[2J␛]52;c;AAAA␇cleared?"  # escapes shown literally
    assert all(len(line) <= FEEDBACK_LINE_LIMIT + 2 for line in lines[1:])
    assert lines[2].startswith("  yyy") and lines[2].endswith("…")
    assert not any(key[i : i + 6] in shown for i in range(len(key) - 5))  # no piece of the key is left
    assert REDACTED in feedback_text_of(ev.FeedbackSent(t=1.0, lane="a", text=f"echo {key}"))
    assert lines[3] == "  last" and shown.endswith("\n")


def feedback_text_of(event: ev.FeedbackSent) -> str:
    frame = EventFeed(FakeClock()).feed_all([event])
    [(channel, text)] = frame.text["a"]
    assert channel == FEEDBACK
    return text


# -- ranking ------------------------------------------------------------------------------


def test_leaderboard_and_headless_table_show_the_reducers_projection():
    from rich.console import Console

    from thunderdome.output.report import standings_table
    from thunderdome.tui.widgets.leaderboard import leaderboard_rows

    feed = EventFeed(FakeClock())
    feed.feed_all(long_race(until=8.0))
    standings = feed.standings
    ranked = standings.ranked(8.0)
    for s in ranked:
        shown = standings.projection(standings.lanes[s.name], 8.0)
        assert s.projected_t == (None if shown is None else shown.t)
    running = [s for s in ranked if s.projected_t is not None]
    assert "dgx-spark" in {s.name for s in running}  # a running lane has one
    colors = {s.name: "#ffffff" for s in ranked}
    board = {row.plain.split()[1]: row.plain for row in leaderboard_rows(standings, 8.0, colors, 80)[1:]}
    console = Console(width=200, record=True)
    console.print(standings_table(standings, 8.0, width=200))
    table = console.export_text()
    for s in running:
        assert board[s.name].rstrip().endswith("~" + numbers.seconds(s.projected_t).strip())
        assert f"ETA {figures.seconds(s.projected_t)}" in table  # the leaderboard's figure, same text


# -- leaderboard ----------------------------------------------------------------------------


def _cells(lines) -> list[list[tuple]]:
    """Glyph, colour, background and attributes of every cell (a space's colour is invisible)."""
    out = []
    for line in lines:
        row = []
        for seg in line:
            st = seg.style
            for ch in seg.text:
                ink = ch != " " and st is not None
                row.append((ch, st.color if ink else None, st.bgcolor if st else None, bool(st and st.strike),
                            bool(ink and st.bold), bool(ink and st.dim)))
        out.append(row)
    return out


@pytest.mark.parametrize("race", ["long", "sigkill"])
def test_leaderboard_rows_look_exactly_like_the_table(race):
    from rich.console import Console

    from thunderdome.tui.widgets.leaderboard import leaderboard_rows, leaderboard_table

    events = long_race(until=12.3, error_lane="rtx4090") if race == "long" else sigkill_race()
    standings = Standings().apply_all(events)
    now = standings.last_t
    colors = {"cloud": "#ff9f1c", "dgx-spark": "#2ec4f0", "rtx4090": "#e05dd6"}
    for width in range(24, 100, 5):
        for compact in (False, True):
            for leading in (0, 1):
                console = Console(width=width, color_system="truecolor", legacy_windows=False)
                table = leaderboard_table(standings, now, colors, compact=compact, leading=leading)
                rows = leaderboard_rows(standings, now, colors, width, compact=compact, leading=leading)
                got = [list(row.render(console)) for row in rows]
                assert _cells(got) == _cells(console.render_lines(table, pad=True)), (width, compact, leading)


# -- chart --------------------------------------------------------------------------------


def test_plot_fills_the_box_and_marks_first_tokens():
    from thunderdome.tui.widgets.chart import Line, plot

    feed = EventFeed(FakeClock())
    feed.feed_all(long_race(until=12.3))
    lines = [Line(name, "#ffffff", feed.series[name]) for name in ("cloud", "dgx-spark", "rtx4090")]
    rows = plot(lines, 12.3, 70, 12)
    assert len(rows) == 12
    assert all(row.cell_len <= 70 for row in rows)
    assert rows[-2].plain.count("◆") == 3  # one first-token marker per lane on the x axis
    braille = [c for row in rows for c in row.plain if 0x2800 < ord(c) <= 0x28FF]
    assert len(braille) > 30
    assert rows[-1].plain.rstrip().endswith("s")  # x axis unit
    small = plot(lines, 12.3, 10, 3)
    assert len(small) == 3 and all(row.plain == "" for row in small)


@pytest.mark.parametrize("size", [(70, 12), (118, 9), (40, 6)])
def test_plot_drawn_frame_by_frame_equals_a_fresh_plot(size):
    """The chart keeps each line's settled dots between redraws: redrawing as
    the race goes must give exactly the picture of one plot of the same data."""
    from thunderdome.tui.widgets.chart import Line, plot

    events = long_race(lanes=(("cloud", "cloud"), ("spark", "dgx-spark"), ("fast", "fast-local")), tokens=400)
    names = ("cloud", "spark", "fast")
    live = EventFeed(FakeClock())
    step = max(1, len(events) // 60)
    redraws = 0
    for k in range(0, len(events), step):
        chunk = events[k:k + step]
        live.feed_all(chunk)
        now = max(e.t for e in chunk) + 0.01
        fresh = EventFeed(FakeClock())
        fresh.feed_all(events[:k + step])
        drawn = plot([Line(n, f"#{i}{i}{i}{i}{i}{i}", live.series[n]) for i, n in enumerate(names)], now, *size)
        truth = plot([Line(n, f"#{i}{i}{i}{i}{i}{i}", fresh.series[n]) for i, n in enumerate(names)], now, *size)
        assert drawn == truth, f"after {k + step} events"
        redraws += 1
    assert redraws > 50
    assert any(live.series[n].plot_cache for n in names)  # the settled dots were kept


def test_axis_max_is_round_and_above():
    from thunderdome.tui.widgets.chart import axis_max

    for value in (0.3, 1.04, 5.11, 21.83, 93.89, 878):
        top = axis_max(value, 1.0)
        assert top >= value
        assert top <= value * 1.6 + 1


# -- import boundary --------------------------------------------------------------------------


def test_core_and_feed_never_import_textual():
    code = (
        "import sys\n"
        "import thunderdome.race.engine, thunderdome.race.runner, thunderdome.core.metrics, thunderdome.core.events\n"
        "import thunderdome.recording.record, thunderdome.recording.replay, thunderdome.output.export, thunderdome.core.discover\n"
        "import thunderdome.backends, thunderdome.tui, thunderdome.tui.feed, thunderdome.tui.safe_text\n"
        "import thunderdome.tui.gc_policy, thunderdome.output.headless\n"
        "import thunderdome.sources.factory, thunderdome.sources.live, thunderdome.sources.child_process\n"
        "import thunderdome.sources.replay, thunderdome.sources.fixed\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
