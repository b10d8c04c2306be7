"""Pictures of presenter mode and of the trials summary (pytest-textual-snapshot).

Deterministic as ``test_tui_snapshots.py`` is: scripted events handed over at
once, a frozen clock, and the picture taken once no first-token flash is lit.
Update with ``pytest tests/test_tui_presenter_snapshots.py --snapshot-update``
and look at the pictures before committing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from thunderdome.sources.fixed import ListSource
from thunderdome.core.specs import BackendSpec, TaskSpec
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen
from thunderdome.tui.screens.trials import TrialsScreen
from thunderdome.tui.widgets.presenter import PresenterLane

sys.path.insert(0, str(Path(__file__).parent))
from _pilot import until  # type: ignore[import-not-found]  # noqa: E402
from tui_scripted import long_race, sigkill_race  # noqa: E402

SPECS = [BackendSpec(name="cloud", kind="sim", profile="cloud", model="cloud")]
LONG = TaskSpec(name="long-essay", title="essay", kind="long", user="-", max_tokens=1024)
SIGKILL = TaskSpec(name="sigkill", title="sigkill", kind="thunderdome", win_rule="last_standing", user="-",
                   max_turns=2, max_tokens=256)


def presenting(app) -> bool:
    screen = app.screen
    lanes = list(screen.query(PresenterLane)) if isinstance(screen, RaceScreen) else []
    return bool(lanes) and screen.feed.pending == 0 and len(lanes) == len(screen.lanes) == 3 and all(
        lane.snapshot is not None and not lane.flashing for lane in lanes  # a fresh first token's flash has ended
    )


def presenter_app(events, task: TaskSpec = LONG):
    return make_app(mode="race", task=task, specs=SPECS, source_factory=lambda t, s: ListSource(events, live=True),
                    clock=lambda: 1000.0, results_delay=3600, presenter=True)


class TestPresenter:
    def test_mid_race_80x24(self, snap_compare):
        assert snap_compare(presenter_app(long_race(until=12.3)), terminal_size=(80, 24), run_before=until(presenting))

    def test_mid_race_160x48(self, snap_compare):
        assert snap_compare(presenter_app(long_race(until=12.3)), terminal_size=(160, 48), run_before=until(presenting))

    def test_thunderdome_finish_160x48(self, snap_compare):
        app = presenter_app(sigkill_race(), SIGKILL)
        assert snap_compare(app, terminal_size=(160, 48), run_before=until(presenting))


def trial(k: int) -> list:
    """Trial ``k``: quick at a local GPU's pace against steady at the 4090's; replies grow each trial."""
    return long_race(lanes=(("quick", "fast-local"), ("steady", "rtx4090-offload")), tokens=40 + 10 * k, max_tokens=100)


class TestTrials:
    def test_summary(self, snap_compare):
        app = make_app(mode="race", task=LONG, specs=SPECS, trials=3, results_delay=0.01, clock=lambda: 1000.0,
                       source_factory=lambda t, s, seed_offset=0: ListSource(trial(seed_offset)))
        shown = until(lambda app: isinstance(app.screen, TrialsScreen) and bool(app.screen.query("#trials-table")))
        assert snap_compare(app, terminal_size=(100, 30), run_before=shown)
