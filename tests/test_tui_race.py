"""The race through the real app: live sim races over loopback HTTP, keys,
errors, hostile text, narrow terminals, replays. Waits on conditions, never
on fixed sleeps (the pauses below only yield to the app between checks)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from thunderdome.core.metrics import Standings
from thunderdome.race.tasks import load_task
from thunderdome.recording.replay import load_recording
from thunderdome.sources.fixed import ListSource
from thunderdome.core.specs import BackendSpec
from thunderdome.tui import numbers
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.help import HelpScreen
from thunderdome.tui.screens.race import RaceScreen
from thunderdome.tui.widgets.lane import LaneView
from thunderdome.tui.widgets.leaderboard import Leaderboard
from thunderdome.tui.widgets.next_race import NextRaceNote
from thunderdome.tui.widgets.winner_card import WinnerCard

sys.path.insert(0, str(Path(__file__).parent))
from _pilot import results_shown, wait_for  # type: ignore[import-not-found]
from tui_scripted import long_race, sigkill_race  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"






def sim(name: str, profile: str, **options) -> BackendSpec:
    return BackendSpec(name=name, kind="sim", profile=profile, model=profile, options=dict(options))


def short_essay(tokens: int = 60):
    return dataclasses.replace(load_task("long-essay"), max_tokens=tokens, timeout=60)


def header_text(view: LaneView) -> str:
    return view.header.render().plain


# -- a live race ---------------------------------------------------------------------------


async def test_live_race_lanes_marker_leaderboard_results_and_keys(tmp_path):
    recording = tmp_path / "race.jsonl"
    specs = [sim("quick", "fast-local"), sim("instant", "instant"), sim("thinker", "thinker")]
    app = make_app(
        mode="race", task=short_essay(), specs=specs, recording_path=recording,
        output_dir=str(tmp_path / "out"), results_delay=1.0, emulator="thread",
    )
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, RaceScreen)
        await wait_for(pilot, lambda: len(screen.query(LaneView)) == 3, what="lanes")
        assert [v.lane_name for v in screen.query(LaneView)] == ["quick", "instant", "thinker"]
        await wait_for(pilot, lambda: screen.over, what="race end")
        await pilot.pause()
        # what the race screen shows at the end, before the results replace it
        shown = {v.lane_name: header_text(v) for v in screen.query(LaneView)}
        order = screen.query_one(Leaderboard).order()
        await wait_for(pilot, lambda: results_shown(app), what="results")

        # an independent reducer over the recording gives the same figures
        rec = load_recording(recording)
        truth = Standings().apply_all(rec.events)
        ranked = truth.ranked(truth.finished_t)
        assert order == [s.name for s in ranked]
        for s in ranked:
            assert s.ttft_s is not None
            assert f"◆ TTFT {numbers.seconds(s.ttft_s).strip()}" in shown[s.name]
        assert "thinker" in shown and "FINISHED" in shown["thinker"] or "WINNER" in shown["thinker"]
        results = app.screen
        winner_text = results.query_one("#winner-text").render()
        assert truth.winner and truth.winner in str(winner_text)
        assert str(recording) in results.query_one("#recording-note").render().plain

        # keys: screenshot, export, help, quit
        await pilot.press("s")
        await wait_for(pilot, lambda: app.last_screenshot is not None, what="screenshot")
        shot = Path(app.last_screenshot)
        assert shot.exists() and shot.suffix == ".svg" and shot.parent == tmp_path / "out"
        assert "<svg" in shot.read_text()[:200]
        await pilot.press("e")
        await wait_for(pilot, lambda: len(app.last_export) == 2, what="export")
        md, js = (Path(p) for p in app.last_export)
        assert md.suffix == ".md" and js.suffix == ".json"
        assert json.loads(js.read_text())["winner"] == truth.winner
        assert truth.winner in md.read_text()
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.press("escape")
        await wait_for(pilot, lambda: results_shown(app), what="help closed")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="quit")
    assert app.return_code == 0
    assert all(source.done.is_set() for source in app.sources)


async def test_erroring_lane_shows_its_reason_while_others_finish(tmp_path):
    specs = [sim("good", "instant"), sim("broken", "instant", fault="http_500"), sim("also-good", "fast-local")]
    app = make_app(mode="race", task=short_essay(40), specs=specs, record=None, results_delay=1.0, emulator="thread")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.over, what="race end")
        await pilot.pause()
        broken = screen.lanes["broken"]
        assert broken.has_class("-error")
        info = broken.info.render().plain
        assert "500" in info
        assert screen.lanes["good"].has_class("-finished") or screen.lanes["good"].has_class("-winner")
        standings = screen.feed.standings
        assert standings.lanes["also-good"].status in ("finished", "winner")
        await wait_for(pilot, lambda: results_shown(app), what="results")
        note = app.screen.query_one("#recording-note").render().plain
        assert "broken" in note and "500" in note


async def test_rerun_starts_the_same_race_again():
    events = long_race(until=2.0)
    made = []

    def factory(task, specs):
        made.append(ListSource(events, live=True))
        return made[-1]

    app = make_app(mode="race", task=short_essay(), specs=[sim("cloud", "cloud")], source_factory=factory)
    async with app.run_test(size=(100, 30)) as pilot:
        first = app.screen
        await wait_for(pilot, lambda: len(first.lanes) == 3, what="lanes")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.screen is not first and isinstance(app.screen, RaceScreen), what="rerun")
        assert len(made) == 2


# -- hostile text ------------------------------------------------------------------------------


async def test_markup_and_escape_sequences_are_shown_literally():
    evil = "[bold red]BOOM[/] [/] \x1b[2J\x1b[31mred\x1b]0;title\x07"
    events = long_race(
        until=1.0, inject=evil, lanes=(("[b]evil[/b]", "cloud"), ("dgx-spark", "dgx-spark"))
    )
    app = make_app(mode="race", task=short_essay(), specs=[sim("x", "cloud")],
                   source_factory=lambda t, s: ListSource(events, live=True), clock=lambda: 50.0)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: "[b]evil[/b]" in screen.lanes, what="lanes")
        await pilot.pause()
        view = screen.lanes["[b]evil[/b]"]
        assert "[bold red]BOOM[/] [/] ␛[2J␛[31mred␛]0;title␇" in view.stream.plain
        painted = "".join(view.stream.render_line(y).text for y in range(view.stream.size.height))
        assert "\x1b" not in painted and "[bold red]BOOM[/] [/] ␛[2J" in painted
        assert "[b]evil[/b]" in header_text(view)
        board = app.screen.query_one(Leaderboard)
        from rich.console import Console

        console = Console(width=80, record=True, color_system=None)
        console.print(board.render())
        assert "[b]evil[/b]" in console.export_text()
        svg = app.export_screenshot().replace("&#160;", " ")
        assert "[bold red]BOOM[/]" in svg and "[b]evil[/b]" in svg


# -- narrow terminals and wide grids -------------------------------------------------------------


def _overlap(a, b) -> bool:
    return a.x < b.right and b.x < a.right and a.y < b.bottom and b.y < a.bottom


@pytest.mark.parametrize("which", ["long", "sigkill"])
async def test_80x24_stacks_without_overlap(which):
    full = long_race() if which == "long" else sigkill_race()
    mid = long_race(until=8.0) if which == "long" else sigkill_race(until=0.95)
    stage = {"n": 0}

    def factory(task, specs):
        stage["n"] += 1
        return ListSource(mid if stage["n"] == 1 else full, live=stage["n"] == 1)

    app = make_app(mode="race", task=short_essay(), specs=[sim("x", "cloud")], source_factory=factory,
                   clock=lambda: 10.0, results_delay=0.01)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.lanes) == 3, what="lanes")
        await pilot.pause()
        assert screen.has_class("-narrow")
        top = [screen.query_one("#banner"), screen.query_one("#body"), screen.query_one("Footer")]
        for i, a in enumerate(top):
            for b in top[i + 1:]:
                assert not _overlap(a.region, b.region), (a, b)
        lanes = list(screen.query(LaneView))
        for i, a in enumerate(lanes):
            assert a.virtual_region.height >= 4
            for b in lanes[i + 1:]:
                assert not _overlap(a.virtual_region, b.virtual_region)
        body = screen.query_one("#body")
        body.scroll_end(animate=False)
        await pilot.pause()
        assert lanes[-1].region.height > 0  # the last lane can be scrolled into view
        await pilot.press("r")  # the full race: on to the results at 80x24
        await wait_for(pilot, lambda: results_shown(app), what="results")
        await pilot.pause()
        assert app.screen.query_one(WinnerCard).region.height > 0


async def test_wide_screen_puts_many_lanes_in_a_grid():
    names = tuple((f"lane-{i}", p) for i, p in enumerate(["cloud", "dgx-spark", "fast-local", "instant"] * 2))
    events = long_race(until=3.0, lanes=names)
    app = make_app(mode="race", task=short_essay(), specs=[sim("x", "cloud")],
                   source_factory=lambda t, s: ListSource(events, live=True), clock=lambda: 3.0)
    async with app.run_test(size=(240, 60)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.lanes) == 8, what="8 lanes")
        await pilot.pause()
        lanes = list(screen.query(LaneView))
        assert len({v.region.x for v in lanes}) >= 3  # side by side
        for i, a in enumerate(lanes):
            for b in lanes[i + 1:]:
                assert not _overlap(a.region, b.region)


# -- the demo flow, setup, replay --------------------------------------------------------------


@pytest.mark.parametrize("auto", [False, True])
async def test_demo_runs_the_next_task_after_the_results(auto):
    scripts = {"sigkill": sigkill_race(), "long-essay": long_race()}
    app = make_app(
        mode="race", task=load_task("sigkill"), specs=[sim("cloud", "cloud")], tasks_after=[load_task("long-essay")],
        source_factory=lambda t, s: ListSource(scripts[t.name]), results_delay=0.01, next_delay=3.0 if auto else None,
    )
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: results_shown(app), what="first results")
        assert app.screen.standings.task == "sigkill"
        note = app.screen.query_one("#next-race").render()
        assert "long-essay" in str(note) and (("starts in" in str(note)) == auto)
        if not auto:
            await pilot.press("n")
        await wait_for(
            pilot, lambda: results_shown(app) and app.screen.standings.task == "long-essay",
            what="second results",
        )
        assert app.screen.next_task is None


async def test_escape_holds_the_demo_countdown_until_n():
    scripts = {"sigkill": sigkill_race(), "long-essay": long_race()}
    app = make_app(
        mode="race", task=load_task("sigkill"), specs=[sim("cloud", "cloud")], tasks_after=[load_task("long-essay")],
        source_factory=lambda t, s: ListSource(scripts[t.name]), results_delay=0.01, next_delay=30.0,
    )
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: results_shown(app), what="first results")
        note = app.screen.query_one(NextRaceNote)
        assert note.counting and "starts in" in str(note.render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: not note.counting, what="the countdown held")
        assert "press n" in str(note.render()) and app.screen.standings.task == "sigkill"
        await pilot.press("n")
        await wait_for(
            pilot, lambda: results_shown(app) and app.screen.standings.task == "long-essay",
            what="second results",
        )


async def test_setup_starts_the_chosen_race_and_comes_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no backends file here: the demo sims are ticked
    started = []

    def factory(task, specs):
        started.append((task, specs))
        return ListSource(sigkill_race())

    app = make_app(mode="setup", discover=False, source_factory=factory, results_delay=0.01)
    async with app.run_test(size=(120, 36)) as pilot:
        from thunderdome.tui.screens.setup import SetupScreen

        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup")
        setup = app.screen
        setup.query_one("#task-file").value = str(tmp_path / "missing.yaml")
        setup.action_start()
        await pilot.pause()
        assert not started  # a task file that does not load is a message, not a race
        setup.query_one("#task-file").value = ""
        setup.query_one("#max-tokens").value = "99"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: bool(started), what="race start")
        task, specs = started[0]
        assert task.name == "sigkill" and task.max_tokens == 99
        assert [s.name for s in specs] == ["cloud", "dgx-spark", "rtx4090-offload"]
        await wait_for(pilot, lambda: results_shown(app), what="results")
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="back to setup")


async def test_replay_plays_a_recording_with_controls():
    path = FIXTURES / "thunderdome-sim.jsonl"
    truth = Standings().apply_all(load_recording(path).events)
    app = make_app(mode="replay", replay_path=path, speed=1.0, results_delay=0.2)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        assert isinstance(screen, RaceScreen) and screen.replay
        await wait_for(pilot, lambda: screen.feed.started is not None, what="replay start")
        await pilot.press("space")
        assert screen.source.paused and screen.feed.time.paused
        seen = screen.feed.standings.events_seen
        await pilot.press("full_stop")
        await wait_for(pilot, lambda: screen.feed.standings.events_seen > seen, what="one step")
        await pilot.press("plus", "plus")
        assert screen.speed == 4.0 and screen.source.speed == 4.0
        await pilot.press("space")
        assert not screen.source.paused
        await wait_for(pilot, lambda: results_shown(app), what="results")
        assert app.screen.standings.winner == truth.winner
        assert [s.name for s in app.screen.standings.ranked(truth.finished_t)] == [
            s.name for s in truth.ranked(truth.finished_t)
        ]
        await pilot.press("r")  # replay again from the start
        await wait_for(pilot, lambda: isinstance(app.screen, RaceScreen), what="restart")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="quit")
    assert all(source.done.is_set() for source in app.sources)


async def test_replay_of_a_cut_recording_says_so():
    app = make_app(mode="replay", replay_path=FIXTURES / "long-cut.jsonl", speed=16.0)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.failed is not None, what="cut detected")
        assert "cut short" in screen.failed
        assert isinstance(app.screen, RaceScreen)


# -- reasoning, warnings ---------------------------------------------------------------------------


async def test_reasoning_is_dim_italic_and_collapses_with_t():
    events = long_race(until=1.1, reasoning=12, lanes=(("thinker", "cloud"),))
    app = make_app(mode="race", task=short_essay(), specs=[sim("thinker", "cloud")],
                   source_factory=lambda t, s: ListSource(events, live=True), clock=lambda: 5.0)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: "thinker" in screen.lanes and screen.lanes["thinker"].stream.reasoning_chars > 0,
                       what="reasoning")
        await pilot.pause()
        stream = screen.lanes["thinker"].stream
        reasoning = "".join(e.text for e in events if getattr(e, "channel", "") == "reasoning")
        answer = "".join(e.text for e in events if getattr(e, "channel", "") == "answer")
        assert stream.plain.startswith(reasoning.strip().split(" ")[0])
        first_row = stream._render_row(0)
        assert all(seg.style is not None and seg.style.italic for seg in first_row if seg.text.strip())
        await pilot.press("t")
        await wait_for(pilot, lambda: not stream.show_reasoning, what="collapse")
        await pilot.pause()
        assert reasoning.split()[0] not in stream.plain.split()[:1]
        assert stream.plain.replace("\n", " ").split() == answer.replace("\n", " ").split()
        assert "reasoning hidden" in stream.render_line(0).text
        await pilot.press("t")
        await wait_for(pilot, lambda: stream.show_reasoning, what="expand")


async def test_weak_sandbox_and_warning_notices_are_shown():
    from dataclasses import replace

    from thunderdome.core import events as ev

    events = [replace(e, isolation="rlimits") if isinstance(e, ev.RaceStarted) else e for e in sigkill_race(until=0.5)]
    events.insert(1, ev.Notice(t=0.0, message="bubblewrap is not installed: using rlimits only", level="warning"))
    app = make_app(mode="race", task=load_task("sigkill"), specs=[sim("cloud", "cloud")],
                   source_factory=lambda t, s: ListSource(events, live=True), clock=lambda: 0.5)
    async with app.run_test(size=(160, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.feed.started is not None, what="start")
        await pilot.pause()
        banner = screen.query_one("BannerText").render().plain
        assert "bubblewrap is not installed" in banner
        assert "⚠" in banner


async def test_an_unreadable_recording_is_a_message_not_a_crash(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("this is not a recording\n")
    app = make_app(mode="replay", replay_path=bad)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.failed is not None, what="failure shown")
        assert "bad.jsonl" in screen.failed
        banner = screen.query_one("BannerText").render().plain
        assert "bad.jsonl" in banner
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="quit")
    assert app.return_code == 0


@pytest.mark.parametrize("key", ["0", "r"])
async def test_restarting_a_replay_is_not_reported_as_cut_short(key):
    app = make_app(mode="replay", replay_path=FIXTURES / "thunderdome-sim.jsonl", speed=1.0, results_delay=0.2)
    async with app.run_test(size=(120, 36)) as pilot:
        first = app.screen
        await wait_for(pilot, lambda: first.feed.started is not None, what="replay start")
        await pilot.press(key)
        await wait_for(pilot, lambda: isinstance(app.screen, RaceScreen) and app.screen is not first, what="restart")
        await wait_for(pilot, lambda: first.source.done.is_set(), what="old replay stopped")
        await pilot.pause(0.3)
        assert first.failed is None
        assert not [n for n in app._notifications if "cut short" in n.message]
