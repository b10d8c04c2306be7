"""Every screen size: what must stay on screen, through the real app (Pilot).

At 80x24 the leaderboard and every lane's header are on screen together (3
and 8 lanes), every footer key is inside the terminal on every screen, the
help is whole; resizing mid-race (live and in a replay) keeps every
leaderboard row. Races are scripted (tests/tui_scripted.py via ListSource)
or a recorded fixture, so what is on screen does not depend on timing.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets._footer import FooterKey

from thunderdome.race.tasks import load_task
from thunderdome.sources.fixed import ListSource
from thunderdome.core.specs import BackendSpec
from thunderdome.tui.app import make_app
from thunderdome.tui.race_layout import MODE_ROWS, race_layout
from thunderdome.tui.screens.help import HelpScreen
from thunderdome.tui.screens.race import RaceScreen
from thunderdome.tui.screens.setup import SetupScreen
from thunderdome.tui.widgets.lane import LaneView
from thunderdome.tui.widgets.leaderboard import Leaderboard

sys.path.insert(0, str(Path(__file__).parent))
from _pilot import results_shown, wait_for  # type: ignore[import-not-found]
from tui_scripted import long_race  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
PROFILES = ("cloud", "dgx-spark", "rtx4090-offload", "fast-local", "instant", "cloud", "dgx-spark", "fast-local")


def lanes(n: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"lane-{i}", profile) for i, profile in enumerate(PROFILES[:n]))


def task():
    return dataclasses.replace(load_task("long-essay"), max_tokens=1024, timeout=60)


def scripted_app(events, *, live: bool = True, **kw):
    spec = BackendSpec(name="x", kind="sim", profile="cloud", model="cloud")
    return make_app(mode="race", task=task(), specs=[spec], source_factory=lambda t, s: ListSource(events, live=live),
                    clock=lambda: 3.0, results_delay=0.01, **kw)


def inside(outer: Region, inner: Region) -> bool:
    return inner.height > 0 and inner.width > 0 and outer.contains_region(inner)


def leaderboard_whole(screen: RaceScreen) -> None:
    """Every lane has its row on the leaderboard, and every row is on screen."""
    board = screen.query_one(Leaderboard)
    text = "\n".join(row.plain for row in board.rows)
    assert all(name in text for name in screen.feed.standings.lanes), text
    assert board.region.height == len(board.rows), (board.region, len(board.rows))
    assert inside(screen.query_one("#body").region, board.region)


def headers_on_screen(screen: RaceScreen) -> None:
    body = screen.query_one("#body").region
    views = list(screen.query(LaneView))
    assert len(views) == len(screen.feed.standings.lanes)
    for view in views:
        assert inside(body, view.header.region), (view.lane_name, view.header.region, body)
        assert view.header.render().plain.strip(), view.lane_name


def footer_keys_fit(app) -> list[str]:
    """The keys of the footer on screen, each checked to be inside the terminal."""
    width, height = app.size
    keys = list(app.screen.query(FooterKey))
    assert keys
    for key in keys:
        assert key.region.right <= width and key.region.y == height - 1 and key.region.width > 0, (key.key, key.region)
    return [key.key for key in keys]


# -- the layout, as a pure function ----------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 36), (160, 48), (240, 60)])
@pytest.mark.parametrize("n", [1, 3, 5, 8])
def test_the_layout_keeps_the_leaderboard_and_every_header_on_screen(size, n):
    width, height = size
    layout = race_layout(width, height, n)
    body = height - 4
    board = layout.board_height if layout.board_height is not None else n + 3
    assert board >= n + 3  # the leaderboard box holds every row
    needed = layout.rows * MODE_ROWS[layout.lane_mode]
    assert board + needed <= body  # the board and every lane in its mode fit at once
    assert layout.lanes_min_height >= needed
    if layout.lanes_height is not None:  # squeezed: the lanes take all that is left
        assert layout.lanes_height == body - board


def test_lanes_give_up_gaps_then_text_then_a_header_row():
    modes = [race_layout(80, 24, n).lane_mode for n in (1, 2, 3, 4, 5, 8)]
    assert modes == ["full", "full", "tight", "brief", "headers", "one-line"]
    assert race_layout(80, 24, 3).chart_below and not race_layout(80, 60, 3).chart_below
    assert race_layout(160, 48, 8).lane_mode == "full"


# -- 80x24: the leaderboard and every lane at once -------------------------------------------------


@pytest.mark.parametrize("n", [3, 8])
async def test_80x24_shows_the_leaderboard_and_every_lane_header(n):
    app = scripted_app(long_race(until=3.0, lanes=lanes(n)))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.lanes) == n and screen.feed.pending == 0, what=f"{n} lanes")
        await pilot.pause()
        await pilot.pause()
        leaderboard_whole(screen)
        headers_on_screen(screen)
        screen.query_one("#body").scroll_end(animate=False)  # the chart is below the lanes: scroll to it
        await pilot.pause()
        assert inside(screen.query_one("#body").region, screen.query_one("#chart-below").region)


# -- resizing keeps every row --------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 8])
async def test_resizing_mid_race_keeps_every_leaderboard_row(n):
    app = scripted_app(long_race(until=3.0, lanes=lanes(n)))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.lanes) == n and screen.feed.pending == 0, what=f"{n} lanes")
        await pilot.pause()
        leaderboard_whole(screen)
        for size in [(160, 48), (80, 24), (160, 48)]:
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await pilot.pause()
            leaderboard_whole(screen)
            headers_on_screen(screen)


async def test_resizing_a_replay_keeps_every_leaderboard_row():
    app = make_app(mode="replay", replay_path=FIXTURES / "long-sim.jsonl", speed=0.25)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.feed.started is not None, what="replay start")
        await pilot.press("space")  # paused at the start, then stepped to mid-race
        while not (len(screen.lanes) == 3 and screen.feed.standings.lanes["fast"].live_tokens > 5):
            seen = screen.feed.standings.events_seen
            await pilot.press("full_stop")
            await wait_for(pilot, lambda: screen.feed.standings.events_seen > seen, what="one step")
        await pilot.pause()
        assert not screen.over
        for size in [(160, 48), (80, 24), (160, 48)]:
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await pilot.pause()
            leaderboard_whole(screen)
            headers_on_screen(screen)
        await pilot.press("space")
        await pilot.pause()
        leaderboard_whole(screen)


# -- every key in sight at 80x24 ----------------------------------------------------------------


async def test_every_footer_key_fits_80_columns_live_and_in_a_replay():
    app = scripted_app(long_race(until=3.0))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RaceScreen) and len(app.screen.lanes) == 3, what="race")
        await pilot.pause()
        assert {"q", "s", "e", "question_mark", "r", "t"} <= set(footer_keys_fit(app))
    app = make_app(mode="replay", replay_path=FIXTURES / "long-sim.jsonl", speed=1.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RaceScreen) and app.screen.feed.started is not None, what="replay")
        await pilot.pause()
        keys = set(footer_keys_fit(app))
        assert {"q", "s", "e", "question_mark", "space", "plus", "minus", "full_stop", "r"} <= keys


@pytest.mark.parametrize("n", [3, 8])
async def test_the_results_at_80x24_show_every_column_and_every_key(n):
    app = scripted_app(long_race(lanes=lanes(n)), live=False, tasks_after=[task()], next_delay=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: results_shown(app), what="results")
        await pilot.pause()
        assert {"q", "s", "e", "question_mark", "r", "n"} <= set(footer_keys_fit(app))
        table = app.screen.query_one(DataTable)
        assert table.virtual_size.width <= table.scrollable_content_region.width  # nothing behind a scrollbar
        header = "".join(seg.text for seg in table.render_line(0))
        for column in ("TTFT", "TTFA", "e2e", "tok", "tok/s", "srv/s", "ITL", "done"):
            assert column in header, header
        shown = ["".join(seg.text for seg in table.render_line(1 + i)) for i in range(n)]
        assert all("s" in row and "/" in row for row in shown)  # times with units, ITL p50/p99
        assert inside(app.screen.region, table.region)


async def test_setup_at_80x24_shows_its_keys_several_tasks_and_the_kind_of_each(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    app = make_app(mode="setup", discover=False,
                   source_factory=lambda t, s: ListSource(long_race(), live=False), results_delay=0.01)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen) and bool(app.screen.tasks), what="setup")
        await pilot.pause()
        assert {"q", "s", "e", "question_mark", "ctrl+s", "d"} <= set(footer_keys_fit(app))
        options = app.screen.query_one("#task-list")
        assert options.region.height >= 6  # several tasks at once, not one
        await pilot.press("down")  # the highlighted row's task kind stays readable on the highlight
        await pilot.pause()
        strip = options.render_line(options.highlighted - options.scroll_offset.y)
        kind = [seg for seg in strip if "first correct" in seg.text or "last standing" in seg.text]
        assert kind, strip.text
        fg, bg = kind[0].style.color.get_truecolor(), kind[0].style.bgcolor.get_truecolor()
        assert sum(abs(a - b) for a, b in zip(fg, bg)) > 200, (fg, bg)  # not orange on orange
        await pilot.press("ctrl+s")  # on to the race and its results: back to setup is a key too
        await wait_for(pilot, lambda: results_shown(app), what="results")
        await pilot.pause()
        assert {"b", "r", "q", "question_mark"} <= set(footer_keys_fit(app))


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_help_is_whole_and_says_how_to_close_it(size):
    app = scripted_app(long_race(until=3.0))
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RaceScreen) and len(app.screen.lanes) == 3, what="race")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.pause()
        box = app.screen.query_one("#help")
        screen_region = Region(0, 0, *size)
        assert inside(screen_region, box.region)
        for part in box.query("Static"):
            assert inside(box.region, part.region), part  # nothing cut off at the bottom
        assert "esc" in (box.border_subtitle or "")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RaceScreen), what="help closed")
