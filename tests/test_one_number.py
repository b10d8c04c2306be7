"""One fact, one number: each figure reads the same on every screen, pair by pair.

The races are scripted so that the old discrepancies would show: a request
sent 20 ms after the start barrier (e2e 5.12 s, finish on the race clock
5.14 s), a lane that starts 8 ms late and passes at 1.016 s (its clock
would say 1.01 s where ★ WINNER says 1.02 s), and a clock that moves between
frames (a lane header drawn one frame after the leaderboard would show
another tok/s). Each test asserts the screens, the headless report and the
export show the identical string for the same standings.
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

from rich.console import Console
from textual.widgets import DataTable

from thunderdome.core import events as ev
from thunderdome.core import figures
from thunderdome.output.export import export_results
from thunderdome.core.metrics import LaneStats, Standings
from thunderdome.output.report import summary
from thunderdome.sources.fixed import ListSource
from thunderdome.core.specs import BackendSpec, TaskSpec
from thunderdome.tui import numbers
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen
from thunderdome.tui.widgets.banner import RaceBanner
from thunderdome.tui.widgets.leaderboard import Leaderboard

sys.path.insert(0, str(Path(__file__).parent))
from _pilot import results_shown, wait_for  # type: ignore[import-not-found]  # noqa: E402
from tui_scripted import long_race  # type: ignore[import-not-found]  # noqa: E402

SPECS = [BackendSpec(name="cloud", kind="sim", profile="cloud", model="cloud")]
LONG = TaskSpec(name="long-essay", title="essay", kind="long", user="-", max_tokens=1024)
FIRST = TaskSpec(name="hello-file", title="hello", kind="thunderdome", win_rule="first_correct", user="-", max_tokens=128)


def lanes(*names: str) -> tuple[dict, ...]:
    return tuple({"name": n, "kind": "sim", "model": n} for n in names)


def long_events() -> list[ev.Event]:
    """cloud: request at 0.02 s, 878 tokens to 5.1412 s (e2e 5.1212 s); spark slower."""
    out: list[ev.Event] = [ev.RaceStarted(t=0.0, task="long-essay", kind="long", lanes=lanes("cloud", "spark"), max_tokens=1024)]
    for name, ttft, tps in (("cloud", 0.9, 208.0), ("spark", 1.39, 42.9)):
        out += [ev.LaneStarted(t=0.001, lane=name), ev.RequestSent(t=0.02, lane=name)]
        stamps = [0.02 + ttft + k / tps for k in range(878)]
        out += [ev.TokenDelta(t=t, lane=name, text=" w") for t in stamps]
        out += [ev.StreamEnded(t=stamps[-1] + 0.0001, lane=name, finish_reason="stop"),
                ev.Usage(t=stamps[-1] + 0.0002, lane=name, output_tokens=878),
                ev.LaneFinished(t=stamps[-1] + 0.0003, lane=name, reason="stop")]
    out.sort(key=lambda e: e.t)
    cloud_done = max(e.t for e in out if isinstance(e, ev.TokenDelta) and e.lane == "cloud")
    out.insert(next(i for i, e in enumerate(out) if e.t > cloud_done + 0.0003), ev.WinnerDecided(t=cloud_done + 0.0003, winner="cloud"))
    return out + [ev.RaceFinished(t=out[-1].t + 0.001, winner="cloud")]


def first_correct_events(*, finished: bool = True) -> list[ev.Event]:
    """quick starts 8 ms late and passes at 1.016 s; slow is stopped."""
    out: list[ev.Event] = [ev.RaceStarted(t=0.0, task="hello-file", kind="thunderdome", win_rule="first_correct",
                                          lanes=lanes("quick", "slow"), isolation="bwrap", max_tokens=128)]
    out += [ev.LaneStarted(t=0.008, lane="quick", skew=0.008), ev.LaneStarted(t=0.001, lane="slow", skew=0.001),
            ev.RequestSent(t=0.009, lane="quick"), ev.RequestSent(t=0.002, lane="slow")]
    out += [ev.TokenDelta(t=0.30 + k * 0.01, lane="quick", text=" x") for k in range(20)]
    out += [ev.TokenDelta(t=0.05 + k * 0.02, lane="slow", text=" think", channel="reasoning") for k in range(48)]
    out += [ev.CommandExtracted(t=0.50, lane="quick", command="echo hi > greeting.txt"),
            ev.ExecFinished(t=1.01, lane="quick", exit_code=0, duration=0.5),
            ev.Verdict(t=1.016, lane="quick", passed=True, detail="all checks passed"),
            ev.LaneFinished(t=1.0168, lane="quick", reason="solved on turn 1"),
            ev.WinnerDecided(t=1.0169, winner="quick")]
    if finished:
        out += [ev.LaneStopped(t=1.017, lane="slow", reason="race won by quick"), ev.RaceFinished(t=1.02, winner="quick")]
    return sorted(out, key=lambda e: e.t)


def app_for(events: list[ev.Event], task: TaskSpec, *, live: bool = False, clock=lambda: 1000.0, results_delay: float = 60.0):
    return make_app(mode="race", task=task, specs=SPECS, source_factory=lambda t, s: ListSource(events, live=live),
                    clock=clock, results_delay=results_delay)


def stats_of(standings: Standings, name: str) -> LaneStats:
    return next(s for s in standings.ranked(standings.finished_t) if s.name == name)


def headless_text(standings: Standings) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(summary(standings, width=200))
    return console.export_text()


def row_cells(text: str, lane: str) -> list[str]:
    """The cells of ``lane``'s row in a text table (cells split on 2+ spaces or │)."""
    line = next(line for line in text.splitlines() if re.search(rf"\s{re.escape(lane)}\s", line))
    return [c for c in re.split(r"\s{2,}|│", line.strip()) if c]


def md_cells(md: str, lane: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith("| ") and f" {lane} " in line)
    return [c.strip() for c in line.strip("|").split("|")]


# -- the winner line and the tables ---------------------------------------------------------------


async def test_the_winner_line_says_the_done_time_every_table_shows() -> None:
    events = long_events()
    truth = Standings().apply_all(events)
    cloud = stats_of(truth, "cloud")
    done = figures.seconds(figures.done_s(cloud, "long"))
    assert done == "5.14 s" and figures.seconds(cloud.e2e_s) == "5.12 s"  # two facts, each named
    line = f"finished first in {done}"

    app = app_for(events, LONG, results_delay=0.01)
    async with app.run_test(size=(140, 44)) as pilot:
        await wait_for(pilot, lambda: results_shown(app) and app.screen.query_one(DataTable).row_count == 2, what="results")
        card = app.screen.query_one("#winner-text").render()
        assert line in str(card)
        table = app.screen.query_one(DataTable)
        row = [str(cell).strip() for cell in table.get_row_at(0)]
        columns = [str(c.label) for c in table.columns.values()]
        assert row[1] == "cloud" and row[columns.index("done")] == done and row[columns.index("e2e")] == "5.12 s"

    report = headless_text(truth)
    assert f"winner: cloud — {line}" in report
    cells = row_cells(report, "cloud")
    assert "5.14" in cells and "5.12" in cells  # done s and e2e s, as the results screen has them

    md = export_results(truth.results(), "md")
    assert f"{line} at {figures.rate(cloud.output_tps)}" in md
    head = md_cells(md, "lane")
    assert md_cells(md, "cloud")[head.index("finish s")] == "5.14"


# -- a lane's clock, its ★ WINNER and the leaderboard ---------------------------------------------


async def test_the_winning_lane_its_clock_and_the_leaderboard_say_one_time() -> None:
    events = first_correct_events()
    truth = Standings().apply_all(events)
    done = figures.seconds(figures.done_s(stats_of(truth, "quick"), "thunderdome"))
    assert done == "1.02 s"  # the passing verdict, on the race clock (the lane started 8 ms late)

    app = app_for(events, FIRST)
    async with app.run_test(size=(140, 44)) as pilot:
        screen = app.screen
        assert isinstance(screen, RaceScreen)
        await wait_for(pilot, lambda: screen.over and "quick" in screen.lanes, what="race end")
        await pilot.pause()
        view = screen.lanes["quick"]
        header = view.header.render().plain
        assert header.rstrip().endswith(done)  # the lane's clock
        assert f"★ WINNER {done}" in [r.plain for r in view.info.rows]
        assert board_cells(screen)["quick"][-1] == done
        slow = screen.lanes["slow"].header.render().plain
        assert slow.rstrip().endswith(figures.seconds(1.017))  # a stopped lane's clock: when it was stopped

    assert f"completed the task in {done}" in headless_text(truth)
    md = export_results(truth.results(), "md")
    assert f"completed the task in {done}" in md
    assert md_cells(md, "quick")[md_cells(md, "lane").index("completion s")] == figures.seconds_digits(1.016)


# -- the leaderboard and the lane headers: one reading a frame ------------------------------------


def header_rate(view) -> str:
    match = re.search(r"(\S+) tok/s", view.header.rows[1].plain)
    assert match, view.header.rows[1].plain
    return match.group(1)


BOARD = (2, 0, 1, 7, 6, 6, 7)
"""The leaderboard's columns (# lane icon TTFT tok/s tokens done), one cell apart; 0: the lane's, the rest."""


def board_cells(screen: RaceScreen) -> dict[str, list[str]]:
    """Each lane's leaderboard cells, cut at the board's fixed column widths."""
    out = {}
    for row in screen.query_one(Leaderboard).rows[1:]:
        plain = row.plain
        if not plain.strip():
            continue
        widths = [w or len(plain) - sum(BOARD) - (len(BOARD) - 1) for w in BOARD]
        cells, at = [], 0
        for w in widths:
            cells.append(plain[at:at + w].strip())
            at += w + 1
        out[cells[1]] = cells
    return out


def board_rates(screen: RaceScreen) -> dict[str, str]:
    return {name: cells[4] for name, cells in board_cells(screen).items()}


async def test_the_leaderboard_and_every_lane_header_show_the_same_rate_at_the_same_moment() -> None:
    events = long_race(until=2.0)  # three lanes streaming: their rates fall as the clock runs on
    ticks = itertools.count()
    app = app_for(events, LONG, live=True, clock=lambda: 1000.0 + next(ticks) * 0.004)
    async with app.run_test(size=(140, 44)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.lanes) == 3 and screen.feed.pending == 0, what="lanes")
        seen: set[tuple[str, ...]] = set()
        for _ in range(8):  # frames of both parities
            await pilot.pause(0.06)
            board = board_rates(screen)
            headers = {name: header_rate(view) for name, view in screen.lanes.items()}
            assert board == headers
            seen.add(tuple(headers.values()))
        assert len(seen) > 1  # the rates did move between frames: the equality is not a frozen picture


# -- headless, export and the TUI for the same standings ------------------------------------------


async def test_headless_export_and_results_screen_show_identical_figures() -> None:
    events = long_events()
    truth = Standings().apply_all(events)
    report = headless_text(truth)
    md = export_results(truth.results(), "md")
    head = md_cells(md, "lane")
    app = app_for(events, LONG, results_delay=0.01)
    async with app.run_test(size=(160, 44)) as pilot:
        await wait_for(pilot, lambda: results_shown(app) and app.screen.query_one(DataTable).row_count == 2, what="results")
        table = app.screen.query_one(DataTable)
        columns = [str(c.label) for c in table.columns.values()]
        for i, s in enumerate(truth.ranked(truth.finished_t)):
            row = [str(cell).strip() for cell in table.get_row_at(i)]
            assert row[1] == s.name
            wanted = {
                "TTFT": figures.seconds(s.ttft_s), "e2e": figures.seconds(s.e2e_s),
                "tok/s": figures.rate_digits(s.output_tps), "done": figures.seconds(figures.done_s(s, "long")),
            }
            assert {c: row[columns.index(c)] for c in wanted} == wanted
            texts = row_cells(report, s.name)
            mine = md_cells(md, s.name)
            for tui, md_head in (("TTFT", "TTFT s"), ("e2e", "e2e s"), ("tok/s", "tok/s"), ("done", "finish s")):
                digits = wanted[tui].removesuffix(" s")
                assert digits in texts, (tui, texts)
                assert mine[head.index(md_head)] == digits, (tui, mine)
    assert numbers.seconds(5.1412).strip() == figures.seconds(5.1412)  # the TUI pads the same text


async def test_the_banner_calls_the_winner_while_a_lane_still_runs() -> None:
    events = first_correct_events(finished=False)  # the win is called; slow is still reasoning
    app = app_for(events, FIRST, live=True)
    async with app.run_test(size=(140, 44)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: "slow" in screen.lanes and screen.feed.pending == 0, what="events")
        await pilot.pause(0.1)
        status = screen.query_one(RaceBanner).text.rows[2].plain
        assert "★ WINNER" in status and "quick" in status and "1.02 s" in status
        assert "1/2 lanes racing on for places" in status and "RACING" not in status
        assert not screen.over and not screen.feed.standings.lanes["slow"].ended
        assert "WINNER" in screen.lanes["quick"].header.render().plain


def test_seconds_read_to_the_millisecond_under_a_second() -> None:
    """A TTFT under a second keeps its milliseconds on every screen; longer
    times keep their width; a value that rounds up to the next band takes its format."""
    shown = {v: figures.seconds_digits(v) for v in (0.0004, 0.2534, 0.9994, 0.9996, 5.144, 9.996, 99.96, 150.4)}
    assert shown == {0.0004: "0.000", 0.2534: "0.253", 0.9994: "0.999", 0.9996: "1.00", 5.144: "5.14",
                     9.996: "10.0", 99.96: "100", 150.4: "150"}
    assert figures.seconds(0.2534) == "0.253 s" and figures.seconds(None) == "—"
