"""The early win through the real app: live first_correct races of sim lanes
over loopback HTTP with commands in the real sandbox. The banner and the
winning lane say ★ WINNER while another lane still works (a task that races
on); by default the others are stopped, keeping their figures, in a colour
that is not an error's. Waits on conditions, never on fixed sleeps."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from rich.style import Style

from thunderdome.core import figures
from thunderdome.race.tasks import load_task
from thunderdome.core.specs import BackendSpec
from thunderdome.tui.app import make_app
from thunderdome.tui.palette import STATUS_COLOR
from thunderdome.tui.screens.race import RaceScreen
from thunderdome.tui.widgets.banner import RaceBanner
from thunderdome.tui.widgets.leaderboard import Leaderboard

sys.path.insert(0, str(Path(__file__).parent))
from _pilot import wait_for  # type: ignore[import-not-found]  # noqa: E402

THINK = " ".join(["think"] * 600)
SPECS = [
    BackendSpec(name="quick", kind="sim", profile="fast-local", model="fast-local", agent="text"),  # slow's first token comes as soon
    BackendSpec(name="slow", kind="sim", profile="fast-local", model="fast-local", agent="text", options={"reasoning": THINK}),
]


def task(**changes):
    return dataclasses.replace(load_task("hello-file"), max_tokens=4096, **changes)


def app_for(race_task):
    return make_app(mode="race", task=race_task, specs=SPECS, record=None, emulator="thread", time_scale=0.25,
                    results_delay=60.0)


def banner_status(screen: RaceScreen) -> str:
    return screen.query_one(RaceBanner).text.rows[2].plain


async def test_the_banner_says_the_winner_while_the_other_lane_races_on() -> None:
    app = app_for(task(race_on=True))
    async with app.run_test(size=(140, 44)) as pilot:
        screen = app.screen
        assert isinstance(screen, RaceScreen)
        standings = screen.feed.standings
        await wait_for(pilot, lambda: "★ WINNER" in banner_status(screen), what="the win called")
        assert not standings.lanes["slow"].ended and not screen.over  # called before the other lane ends
        quick = next(s for s in standings.ranked() if s.name == "quick")
        done = figures.seconds(figures.done_s(quick, "thunderdome"))
        status = banner_status(screen)
        assert f"quick  {done}" in status and "1/2 lanes racing on for places" in status
        assert f"★ WINNER {done}" in [r.plain for r in screen.lanes["quick"].info.rows]
        assert "WINNER" in screen.lanes["quick"].header.render().plain
        await wait_for(pilot, lambda: screen.over, what="the race end")
        assert standings.lanes["slow"].status == "finished"  # it raced on and placed
        assert standings.winner == "quick"


async def test_the_other_lanes_stop_with_their_figures_when_the_win_is_called() -> None:
    app = app_for(task())
    async with app.run_test(size=(140, 44)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.over, what="the race end")
        await pilot.pause()
        standings = screen.feed.standings
        assert standings.winner == "quick" and standings.lanes["slow"].status == "stopped"
        slow = next(s for s in standings.ranked(standings.finished_t) if s.name == "slow")
        assert slow.tokens > 0 and slow.ttft_s is not None and slow.output_tps is not None
        view = screen.lanes["slow"]
        header = view.header.render().plain
        assert "STOPPED" in header and figures.rate(slow.output_tps) in header  # its figures, kept
        assert f"TTFT {figures.seconds(slow.ttft_s)}" in header
        (row,) = [r for r in view.info.rows if "race won by quick" in r.plain]
        assert row.style == STATUS_COLOR["stopped"] and STATUS_COLOR["stopped"] not in (
            STATUS_COLOR["error"], STATUS_COLOR["eliminated"])
        board = screen.query_one(Leaderboard)
        assert board.order() == ["quick", "slow"]
        slow_row = next(r for r in board.rows if " slow " in r.plain)
        assert not any(isinstance(span.style, Style) and span.style.strike for span in slow_row.spans)
        assert "■ FINISHED" in banner_status(screen) and "winner: quick" in banner_status(screen)
