"""Pictures of the app, compared with approved SVGs (pytest-textual-snapshot).

Deterministic by construction: the app is fed a fixed, scripted event list all
at once (no live timing) and its clock is frozen, so the race time, the
first-token highlight and every figure are the same on every run. Update the
pictures with ``pytest tests/test_tui_snapshots.py --snapshot-update`` and look
at them before committing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from thunderdome.sources.fixed import ListSource
from thunderdome.specs import BackendSpec, TaskSpec
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen

sys.path.insert(0, str(Path(__file__).parent))
from _pilot import results_shown  # type: ignore[import-not-found]
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


def until(condition):
    async def run_before(pilot) -> None:
        deadline = time.monotonic() + 20
        while not condition(pilot.app):
            assert time.monotonic() < deadline, "the app never reached the state to photograph"
            await pilot.pause(0.05)
        await pilot.pause()

    return run_before


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
