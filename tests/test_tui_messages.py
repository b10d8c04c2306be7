"""Screens and the app talk through messages: the real app driven with Pilot,
every screen message caught with ``run_test(message_hook=...)``, in order.

The app keeps the state of the race on screen from those messages (what an
export writes, where it goes), ignores a request from a screen that is no
longer on top, and never reads a screen's attributes (the guard at the end).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from textual.message import Message

from thunderdome.core.metrics import Standings
from thunderdome.sources.base import RecordingStatus
from thunderdome.sources.fixed import ListSource
from thunderdome.core.specs import BackendSpec, TaskSpec
from thunderdome.tui.app import make_app
from thunderdome.tui.screens.race import RaceScreen
from thunderdome.tui.screens.results import ResultsScreen
from thunderdome.tui.screens.setup import SetupScreen

sys.path.insert(0, str(Path(__file__).parent))
from _pilot import results_shown, wait_for  # type: ignore[import-not-found]
from tui_scripted import long_race, sigkill_race  # noqa: E402

TUI = Path(__file__).resolve().parent.parent / "thunderdome" / "tui"
SPECS = [BackendSpec(name="cloud", kind="sim", profile="cloud", model="cloud")]
LONG = TaskSpec(name="long-essay", title="essay", kind="long", user="-", max_tokens=1024)
SIGKILL = TaskSpec(name="sigkill", title="sigkill", kind="thunderdome", win_rule="last_standing", user="-", max_tokens=256)
SCREEN_MESSAGES = (
    SetupScreen.RaceRequested,
    RaceScreen.RaceShown,
    RaceScreen.RaceEnded,
    RaceScreen.RerunRequested,
    ResultsScreen.RerunRequested,
    ResultsScreen.NextRaceRequested,
    ResultsScreen.SetupRequested,
)


class Heard:
    """The screen messages the app saw, once each (the hook sees a bubbling
    message at every node it passes), in the order they arrived."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        if isinstance(message, SCREEN_MESSAGES) and not any(m is message for m in self.messages):
            self.messages.append(message)

    def names(self) -> list[str]:
        return [type(m).__qualname__ for m in self.messages]

    def last(self, kind: type[Message]) -> Message:
        return next(m for m in reversed(self.messages) if isinstance(m, kind))






async def test_setup_race_results_rerun_and_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no backends file here: the demo sims are ticked
    events = sigkill_race()
    truth = Standings().apply_all(events)
    made: list[ListSource] = []

    def factory(task, specs):
        path = str(tmp_path / "rec" / f"race-{len(made) + 1}.jsonl")
        made.append(ListSource(events, recording=RecordingStatus(path, events=len(events), last_t=events[-1].t)))
        return made[-1]

    heard = Heard()
    app = make_app(mode="setup", discover=False, source_factory=factory, results_delay=0.01)
    async with app.run_test(size=(120, 36), message_hook=heard) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), "setup")
        setup = app.screen
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: results_shown(app), "first results")
        first_results = app.screen
        assert heard.names() == ["SetupScreen.RaceRequested", "RaceScreen.RaceShown", "RaceScreen.RaceEnded"]
        requested = heard.messages[0]
        assert requested.screen is setup and requested.task.name == "sigkill"
        assert [s.name for s in requested.specs] == ["cloud", "dgx-spark", "rtx4090-offload"]
        shown, ended = heard.messages[1], heard.messages[2]
        assert shown.screen is ended.screen and ended.feed.standings is shown.standings
        assert ended.feed.standings.winner == truth.winner
        assert set(ended.lane_colors) == set(truth.lanes)

        # the app exports what the messages gave it, next to the race's recording
        await pilot.press("e")
        await wait_for(pilot, lambda: len(app.last_export) == 2, "export")
        exported = json.loads(Path(app.last_export[1]).read_text())
        assert exported["winner"] == truth.winner
        assert Path(app.last_export[1]) == tmp_path / "rec" / "race-1.json"

        await pilot.press("r")
        await wait_for(pilot, lambda: results_shown(app) and app.screen is not first_results, "rerun results")
        assert heard.names()[3:] == ["ResultsScreen.RerunRequested", "RaceScreen.RaceShown", "RaceScreen.RaceEnded"]
        assert heard.messages[3].screen is first_results
        assert heard.messages[4].screen is not shown.screen and len(made) == 2

        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), "back to setup")
        assert heard.names()[6:] == ["ResultsScreen.SetupRequested"]
        assert app.screen is setup
        # on the setup screen there is no race: nothing to export
        before = list(app.last_export)
        await pilot.press("e")
        await pilot.pause()
        assert app.standings is None and app.last_export == before


async def test_race_rerun_mid_race_then_next_race():
    scripts = {"sigkill": sigkill_race(), "long-essay": long_race()}
    made: list[ListSource] = []

    def factory(task, specs):
        # the first race is held open mid-way so that r can interrupt it
        made.append(ListSource(sigkill_race(until=0.5), live=True) if not made else ListSource(scripts[task.name]))
        return made[-1]

    heard = Heard()
    app = make_app(
        mode="race", task=SIGKILL, specs=SPECS, tasks_after=[LONG], source_factory=factory,
        results_delay=0.01, next_delay=None,
    )
    async with app.run_test(size=(120, 36), message_hook=heard) as pilot:
        first = app.screen
        await wait_for(pilot, lambda: heard.names() == ["RaceScreen.RaceShown"], "race shown")
        await wait_for(pilot, lambda: first.feed.standings.events_seen > 0, "first events")
        await pilot.press("r")
        await wait_for(pilot, lambda: results_shown(app), "results of the rerun")
        assert heard.names() == [
            "RaceScreen.RaceShown", "RaceScreen.RerunRequested", "RaceScreen.RaceShown", "RaceScreen.RaceEnded",
        ]
        assert heard.messages[1].screen is first
        assert made[0].done.is_set()  # the interrupted race's source was stopped
        await wait_for(pilot, lambda: app.standings is not None and app.standings.task == "sigkill", "standings")

        await pilot.press("n")
        await wait_for(pilot, lambda: results_shown(app) and app.standings.task == "long-essay", "next race results")
        assert heard.names()[4:] == ["ResultsScreen.NextRaceRequested", "RaceScreen.RaceShown", "RaceScreen.RaceEnded"]
        ended = heard.last(RaceScreen.RaceEnded)
        assert ended.feed.standings.task == "long-essay" and app.standings is ended.feed.standings
        assert app.tasks_after == []
        assert len(made) == 3


async def test_a_request_from_a_screen_no_longer_on_top_is_ignored():
    made: list[ListSource] = []

    def factory(task, specs):
        made.append(ListSource(sigkill_race()))
        return made[-1]

    app = make_app(mode="race", task=SIGKILL, specs=SPECS, source_factory=factory, results_delay=0.01)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: results_shown(app), "results")
        old = app.screen
        await pilot.press("r")
        await wait_for(pilot, lambda: results_shown(app) and app.screen is not old, "rerun results")
        assert len(made) == 2
        # a second r caught by the old results screen before it left: no third race
        app.post_message(ResultsScreen.RerunRequested(old))
        await pilot.pause(0.2)
        assert len(made) == 2 and app.screen is not old


def test_the_app_never_reaches_into_its_screens():
    """No screen calls the app past its messages, and the app reads no
    screen's attributes. The hits left are on ``self.source``: the race
    screen's replay controls, whose source protocol is being reworked."""
    pattern = re.compile(r"getattr\(self\.app\b|getattr\(self\.screen\b|type: ignore\[attr-defined\]")
    hits = [
        f"{path.relative_to(TUI)}: {line.strip()}"
        for path in sorted(TUI.rglob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if pattern.search(line)
    ]
    assert all(hit.startswith("screens/race.py: ") and "self.source." in hit for hit in hits), "\n".join(hits)
