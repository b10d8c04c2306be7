"""Pictures of the app, compared with approved SVGs (pytest-textual-snapshot).

Deterministic by construction: the app is fed a fixed, scripted event list all
at once (no live timing) and its clock is frozen, so the race time, the
first-token highlight and every figure are the same on every run. Update the
pictures with ``pytest tests/test_tui_snapshots.py --snapshot-update`` and look
at them before committing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from thunderdome.sources.fixed import ListSource
from thunderdome.core.specs import BackendSpec, TaskSpec
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen

sys.path.insert(0, str(Path(__file__).parent))
from _pilot import results_shown, until  # type: ignore[import-not-found]
from tui_scripted import long_race, sigkill_race  # noqa: E402

SPECS = [BackendSpec(name="cloud", kind="sim", profile="cloud", model="cloud")]
TASKS = {  # fixed here, so a change to the built-in tasks cannot move a picture
    "long-essay": TaskSpec(name="long-essay", title="essay", kind="long", user="-", max_tokens=1024),
    "sigkill": TaskSpec(name="sigkill", title="sigkill", kind="thunderdome", win_rule="last_standing", user="-",
                        max_turns=2, max_tokens=256),
}


def scripted_app(events, *, live: bool, task: str = "long-essay"):
    return make_app(
        mode="race",
        task=TASKS[task],
        specs=SPECS,
        source_factory=lambda t, s: ListSource(events, live=live),
        clock=lambda: 1000.0,
        results_delay=0.01,
    )


def race_ready(lanes: int):
    return lambda app: isinstance(app.screen, RaceScreen) and app.screen.feed.standings.events_seen > 0 and len(
        app.screen.lanes
    ) == lanes and app.screen.feed.pending == 0




class TestLongRace:
    def test_mid_race_wide(self, snap_compare):
        app = scripted_app(long_race(until=12.3), live=True)
        assert snap_compare(app, terminal_size=(120, 36), run_before=until(race_ready(3)))

    def test_mid_race_80x24(self, snap_compare):
        app = scripted_app(long_race(until=12.3), live=True)
        assert snap_compare(app, terminal_size=(80, 24), run_before=until(race_ready(3)))

    def test_results(self, snap_compare):
        app = scripted_app(long_race(), live=False)
        assert snap_compare(app, terminal_size=(120, 36), run_before=until(results_shown))


class TestThunderdome:
    def test_mid_race(self, snap_compare):
        app = scripted_app(sigkill_race(until=1.0355), live=True, task="sigkill")
        assert snap_compare(app, terminal_size=(120, 36), run_before=until(race_ready(3)))

    def test_results(self, snap_compare):
        app = scripted_app(sigkill_race(), live=False, task="sigkill")
        assert snap_compare(app, terminal_size=(120, 36), run_before=until(results_shown))


class TestErrors:
    def test_error_lane_and_hostile_text(self, snap_compare):
        events = long_race(until=0.95, error_lane="rtx4090", inject="[bold]not bold[/] \x1b[31mnot red")
        app = scripted_app(events, live=True)
        assert snap_compare(app, terminal_size=(100, 40), run_before=until(race_ready(3)))


EIGHT = tuple((f"lane-{i}", p) for i, p in enumerate(
    ["cloud", "dgx-spark", "rtx4090-offload", "fast-local", "instant", "cloud", "dgx-spark", "fast-local"]))


def on_help(condition):
    """Wait for ``condition``, then open the help over it."""
    async def run_before(pilot) -> None:
        await until(condition)(pilot)
        await pilot.press("question_mark")
        await until(lambda app: type(app.screen).__name__ == "HelpScreen")(pilot)

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
class TestScreenSizes:
    """Every screen at the smallest supported terminal and a big one: the
    leaderboard and every lane header together, all keys in the footer."""

    def test_race_3_lanes(self, snap_compare, size):
        app = scripted_app(long_race(until=12.3), live=True)
        assert snap_compare(app, terminal_size=size, run_before=until(race_ready(3)))

    def test_race_8_lanes(self, snap_compare, size):
        app = scripted_app(long_race(until=12.3, lanes=EIGHT), live=True)
        assert snap_compare(app, terminal_size=size, run_before=until(race_ready(8)))

    def test_results(self, snap_compare, size):
        app = scripted_app(long_race(), live=False)
        assert snap_compare(app, terminal_size=size, run_before=until(results_shown))

    def test_results_8_lanes(self, snap_compare, size):
        app = scripted_app(long_race(lanes=EIGHT), live=False)
        assert snap_compare(app, terminal_size=size, run_before=until(results_shown))

    def test_help(self, snap_compare, size):
        app = scripted_app(long_race(until=12.3), live=True)
        assert snap_compare(app, terminal_size=size, run_before=on_help(race_ready(3)))

    def test_setup(self, snap_compare, size, monkeypatch, tmp_path):
        monkeypatch.chdir(tmp_path)  # no backends file: the built-in sims only
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
        app = make_app(mode="setup", discover=False)
        ready = lambda app: type(app.screen).__name__ == "SetupScreen" and bool(app.screen.tasks)  # noqa: E731
        assert snap_compare(app, terminal_size=size, run_before=until(ready))
