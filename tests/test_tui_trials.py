"""Trials in the TUI: ``trials=N`` runs the race N times back to back, each
on its own race screen, then shows the trials summary — the same
``summarise_trials`` the headless run prints, recomputed here from the
trials' recordings, and the statement whether the winner is clear.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from thunderdome.core.metrics import Standings
from thunderdome.race.tasks import load_task
from thunderdome.recording.replay import load_recording
from thunderdome.sources.fixed import ListSource
from thunderdome.core.specs import BackendSpec, TaskSpec
from thunderdome.core.trials import summarise_trials
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen
from thunderdome.tui.screens.trials import TrialsScreen, figure_rows

sys.path.insert(0, str(Path(__file__).parent))
from _cells import screen_text  # type: ignore[import-not-found]  # noqa: E402
from _pilot import wait_for  # type: ignore[import-not-found]  # noqa: E402
from tui_scripted import long_race  # noqa: E402

LONG = TaskSpec(name="long-essay", title="essay", kind="long", user="-", max_tokens=1024)
SIM_SPECS = [
    BackendSpec(name="quick", kind="sim", profile="instant", model="instant"),
    BackendSpec(name="steady", kind="sim", profile="fast-local", model="fast-local"),
]


def scripted_trial(k: int, *, swap_last: bool = False, trials: int = 3) -> list:
    """Trial ``k`` of a scripted race: quick (fast-local pace) against steady
    (the 4090's pace), replies a little longer each trial; ``swap_last``: the
    paces swap in the last trial, so steady wins it."""
    quick, steady = "fast-local", "rtx4090-offload"
    if swap_last and k == trials - 1:
        quick, steady = steady, quick
    return long_race(lanes=(("quick", quick), ("steady", steady)), tokens=40 + 10 * k, max_tokens=100)


def trials_shown(app) -> bool:
    return isinstance(app.screen, TrialsScreen) and bool(app.screen.query("#trials-table"))


class Screens:
    """The race screens the app showed, in order (from ``RaceShown``)."""

    def __init__(self) -> None:
        self.races: list[RaceScreen] = []

    def __call__(self, message) -> None:
        if isinstance(message, RaceScreen.RaceShown) and message.screen not in self.races:
            self.races.append(message.screen)


def assert_summary_on_screen(app, summary: dict, kind: str) -> None:
    """Every lane's wins and median / min / max of each figure, and the
    clarity statement, are on the screen as ``numbers`` formats them."""
    text = screen_text(app)
    verdict = screen_text(app, app.screen.query_one("#trials-verdict").content_region)
    assert " ".join(verdict.split()) == summary["clarity"]["text"]
    rows = [" ".join(line.split()) for line in text.splitlines()]
    for lane in summary["lanes"]:
        assert any(row.startswith(f"{lane['name']} {lane['wins']}/{summary['trials']} ") for row in rows), lane["name"]
        for field, label, fmt in figure_rows(kind):
            # None: no trial gave the figure (an instant lane's whole reply in
            # one read has no rate): the screen shows the formatter's dash
            spread = lane[field] or {}
            expected = " ".join(fmt(spread.get(key)).strip() for key in ("median", "min", "max"))
            assert any(f"{label} {expected}" in row for row in rows), (lane["name"], label, expected)


async def test_real_sim_trials_back_to_back_then_the_summary_equals_the_headless_one(tmp_path):
    screens = Screens()
    app = make_app(
        mode="race",
        task=load_task("long-essay"),
        specs=SIM_SPECS,
        trials=3,
        record=str(tmp_path / "rec.jsonl"),
        time_scale=0.1,
        max_tokens=10,
        seed=5,
        race_process=False,
        results_delay=0.01,
    )
    async with app.run_test(size=(120, 36), message_hook=screens) as pilot:
        await wait_for(pilot, lambda: trials_shown(app), "the trials summary")
        await pilot.pause()
        assert [screen.trial for screen in screens.races] == ["1/3", "2/3", "3/3"]
        assert len({id(screen) for screen in screens.races}) == 3
        recordings = [tmp_path / name for name in ("rec.jsonl", "rec-2.jsonl", "rec-3.jsonl")]
        replayed = [Standings().apply_all(load_recording(path).events).results() for path in recordings]
        summary = app.screen.summary
        assert summary == summarise_trials(replayed)  # what the headless run computes from the same races
        assert summary["trials"] == 3 and {lane["name"] for lane in summary["lanes"]} == {"quick", "steady"}
        assert sum(lane["wins"] for lane in summary["lanes"]) == 3
        assert_summary_on_screen(app, summary, "long")
        await pilot.press("q")


async def test_a_clear_winner_e_exports_the_trials_and_r_runs_them_again_with_each_trials_seed(tmp_path):
    calls: list[int] = []

    def factory(task, specs, *, seed_offset: int = 0):
        calls.append(seed_offset)
        return ListSource(scripted_trial(seed_offset))

    screens = Screens()
    app = make_app(mode="race", task=LONG, specs=SIM_SPECS, trials=3, source_factory=factory, results_delay=0.01,
                   output_dir=str(tmp_path))
    async with app.run_test(size=(100, 30), message_hook=screens) as pilot:
        await wait_for(pilot, lambda: trials_shown(app), "the trials summary")
        await pilot.pause()
        summary = app.screen.summary
        expected = summarise_trials([Standings().apply_all(scripted_trial(k)).results() for k in range(3)])
        assert summary == expected
        clarity = summary["clarity"]
        assert clarity["clear"] and clarity["leader"] == "quick" and clarity["runner_up"] == "steady"
        assert clarity["text"].startswith("clear: quick's worst trial")
        assert_summary_on_screen(app, summary, "long")
        assert calls == [0, 1, 2]
        await pilot.press("e")
        await wait_for(pilot, lambda: bool(app.last_export), "the export")
        (exported,) = app.last_export
        data = json.loads(Path(exported).read_text(encoding="utf-8"))
        assert exported.endswith("-trials.json") and data["summary"] == summary  # as --trials --json writes it
        assert [race["winner"] for race in data["races"]] == ["quick"] * 3
        first_summary = app.screen
        await pilot.press("r")
        await wait_for(pilot, lambda: trials_shown(app) and app.screen is not first_summary, "the second run of trials")
        assert calls == [0, 1, 2, 0, 1, 2]
        assert [screen.trial for screen in screens.races] == ["1/3", "2/3", "3/3"] * 2


async def test_overlapping_trials_are_not_a_clear_win():
    app = make_app(
        mode="race",
        task=LONG,
        specs=SIM_SPECS,
        trials=3,
        source_factory=lambda task, specs, seed_offset=0: ListSource(scripted_trial(seed_offset, swap_last=True)),
        results_delay=0.01,
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: trials_shown(app), "the trials summary")
        await pilot.pause()
        summary = app.screen.summary
        wins = {lane["name"]: lane["wins"] for lane in summary["lanes"]}
        assert wins == {"quick": 2, "steady": 1}
        assert not summary["clarity"]["clear"] and summary["clarity"]["text"].startswith("not clear:")
        assert app.screen.query_one("#trials-verdict").has_class("-unclear")
        assert_summary_on_screen(app, summary, "long")
