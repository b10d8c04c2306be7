"""The Textual app: one factory for the CLI and the tests, and the race flow.

Invariant: ``make_app`` is the only way the app is built (``run_tui`` calls
it too), so what the tests drive is what people run. The app owns the flow
between screens (setup -> race -> results -> next race), the sources it
started and the state of the race on screen; screens own their widgets and
tell the app what happened only through their messages (``SetupScreen.
RaceRequested``, ``RaceScreen.RaceShown`` / ``RaceEnded`` / ``RerunRequested`` /
``PresenterToggled``, ``ResultsScreen.RerunRequested`` / ``NextRaceRequested`` /
``SetupRequested``, ``TrialsScreen.RerunRequested``),
handled here with ``@on``; the app never reads a screen's attributes, and a
message from a screen that is no longer on top (a second key press caught
before the screen changed) is ignored. Quitting stops every running source
(bounded wait) before the app exits, so no race thread, sandbox or emulator
is left behind.

Presenter mode is the app's state: it carries over to every race screen the
app starts and switches the app to the high-contrast theme. Trials
(``trials`` > 1, a ``TrialSeries``) run back to back, each on its own race
screen with its own seed, and end on the trials summary instead of a
results screen.

What the app is built from is ``app_config``; where exports, screenshots
and the closing word on recordings go is ``saved_files``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.timer import Timer

from thunderdome.core.errors import EXIT_FAILED, EXIT_OK
from thunderdome.core.metrics import Standings
from thunderdome.sources.base import Source, SourceFactory
from thunderdome.sources.factory import live_source_factory
from thunderdome.sources.fixed import BrokenSource
from thunderdome.core.specs import BackendSpec, TaskSpec
from thunderdome.tui import gc_policy
from thunderdome.tui.app_config import AppConfig, check_modes
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.saved_files import (
    complete_recording,
    export_files,
    export_json,
    export_stem,
    output_folder,
    recording_report,
)
from thunderdome.tui.screens.help import HelpScreen
from thunderdome.tui.screens.race import RaceScreen
from thunderdome.tui.screens.results import ResultsScreen
from thunderdome.tui.screens.setup import SetupScreen
from thunderdome.tui.screens.trials import TrialsScreen
from thunderdome.tui.themes import PRESENTER_THEME, THEME
from thunderdome.tui.trial_series import TrialSeries


class ThunderdomeApp(App[int]):
    """Thunderdome's TUI."""

    CSS_PATH = "thunderdome.tcss"
    TITLE = "Thunderdome"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
        Binding("s", "screenshot", "screenshot"),
        Binding("e", "export", "export"),
        Binding("question_mark", "help", "help"),
    ]

    def __init__(self, config: AppConfig) -> None:
        super().__init__()
        self.config = config
        self.source_factory = config.source_factory
        self.sources: list[Source] = []
        self.current_task: TaskSpec | None = config.task
        self.current_specs: list[BackendSpec] = list(config.specs)
        self.tasks_after: list[TaskSpec] = list(config.tasks_after)
        self.from_setup = False
        self.race_source: Source | None = None
        """The source of the race on screen (racing, or its results shown); None on setup."""
        self.standings: Standings | None = None
        """The race on screen's standings (live while it runs); what ``e`` exports."""
        self.last_export: list[str] = []
        self.last_screenshot: str | None = None
        self._reading_timer: Timer | None = None
        self.presenter = config.presenter
        """Presenter mode: every race screen starts in it, and the theme is high-contrast."""
        self.trials = TrialSeries(config.trials)
        """The trials of the race (``--trials N``); a single race when N is 1."""

    # -- flow ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.register_theme(THEME)
        self.register_theme(PRESENTER_THEME)
        self._apply_theme()
        mode = self.config.mode
        if mode == "setup":
            self.push_screen(SetupScreen(discover=self.config.discover))
        elif mode == "replay":
            self.start_replay()
        else:
            assert self.current_task is not None, "race mode needs a task"
            self.start_race(self.current_task, self.current_specs)

    def on_unmount(self) -> None:
        gc_policy.release_all()  # a race left mid-way gives the collector back too

    def _factory(self) -> SourceFactory:
        if self.source_factory is None:
            self.source_factory = live_source_factory()
        return self.source_factory

    def _show(self, screen: RaceScreen, source: Any) -> None:
        self.sources.append(source)
        self.race_source, self.standings = source, None
        if len(self.screen_stack) > 1 and not (self.from_setup and len(self.screen_stack) == 2):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def _apply_theme(self) -> None:
        self.theme = PRESENTER_THEME.name if self.presenter else THEME.name

    def start_race(self, task: TaskSpec, specs: list[BackendSpec], *, from_setup: bool = False) -> None:
        """Start a live race (or the factory's source) on a new race screen;
        with trials, the next trial (its factory call gets ``seed_offset``)."""
        self.from_setup = self.from_setup or from_setup
        self.current_task, self.current_specs = task, list(specs)
        source = self.trials.source(self._factory(), task, specs)
        screen = RaceScreen(
            source,
            task=task,
            specs=specs,
            clock=self.config.clock,
            results_delay=self.config.results_delay,
            presenter=self.presenter,
            trial=self.trials.label(),
        )
        self._show(screen, source)

    def start_replay(self) -> None:
        path = self.config.replay_path
        assert path is not None, "replay mode needs replay_path"
        source: Source
        if self.source_factory is not None:
            source = self.source_factory(self.current_task, self.current_specs)  # type: ignore[arg-type]
        else:
            from thunderdome.sources.replay import replay_source

            try:
                source = replay_source(path, self.config.speed)
            except Exception as exc:  # shown on the race screen, never a traceback
                source = BrokenSource(str(exc) or type(exc).__name__)
        screen = RaceScreen(
            source,
            replay=True,
            speed=self.config.speed,
            clock=self.config.clock,
            results_delay=self.config.results_delay,
            presenter=self.presenter,
        )
        self._show(screen, source)
        if self._reading_timer is None:
            self._reading_timer = self.set_interval(1.0, self._say_reading, name="reading")

    def _say_reading(self) -> None:
        """A replay held up reading its file says how far it has read (one short toast a second)."""
        source = self.race_source
        controls = source.controls if source is not None else None
        progress = controls.read_progress() if controls is not None else None
        if progress is not None and isinstance(self.screen, RaceScreen):
            self.notify(f"reading the recording: {progress:.0%}", timeout=0.9)

    def rerun(self) -> None:
        """Run the current race again (a replay restarts from its start)."""
        if self.config.mode == "replay":
            self.start_replay()
        elif self.current_task is not None:
            self.start_race(self.current_task, self.current_specs)

    # -- what the screens tell ----------------------------------------------------------

    @on(SetupScreen.RaceRequested)
    def _race_requested(self, message: SetupScreen.RaceRequested) -> None:
        if message.screen is self.screen:
            self.start_race(message.task, message.specs, from_setup=True)

    @on(RaceScreen.RaceShown)
    def _race_shown(self, message: RaceScreen.RaceShown) -> None:
        if message.screen is self.screen:
            self.standings = message.standings

    @on(RaceScreen.RaceEnded)
    def _race_ended(self, message: RaceScreen.RaceEnded) -> None:
        """Show the results of the race on screen."""
        while isinstance(self.screen, HelpScreen):
            self.pop_screen()
        if self.screen is not message.screen:
            return
        replay = self.config.mode == "replay"
        if replay:
            self._stop_later(self.race_source)  # a replay lingers at its end until stopped
        self.standings = message.feed.standings
        if self.trials.running and not replay:
            self._trial_ended(message)
            return
        next_task = self.tasks_after[0] if self.tasks_after and not replay else None
        results = ResultsScreen(
            message.feed,
            message.lane_colors,
            recording=self.race_source.recording if self.race_source is not None else None,
            next_task=next_task,
            can_go_back=self.from_setup,
            next_delay=self.config.next_delay,
        )
        self.switch_screen(results)

    def _trial_ended(self, message: RaceScreen.RaceEnded) -> None:
        """Keep the trial's results; start the next trial, or show the summary after the last."""
        task = self.current_task
        assert task is not None, "trials race one task"
        if not self.trials.finished(message.feed.standings.results()):
            self.start_race(task, self.current_specs)
            return
        summary = self.trials.summary
        assert summary is not None
        kind = message.feed.standings.kind or task.kind
        self.switch_screen(TrialsScreen(summary, message.lane_colors, task=task.name, kind=kind))

    @on(TrialsScreen.RerunRequested)
    def _trials_again(self, message: TrialsScreen.RerunRequested) -> None:
        if message.screen is self.screen and self.current_task is not None:
            self.trials.restart()
            self.start_race(self.current_task, self.current_specs)

    @on(RaceScreen.PresenterToggled)
    def _presenter_toggled(self, message: RaceScreen.PresenterToggled) -> None:
        if message.screen is self.screen:
            self.presenter = message.on
            self._apply_theme()

    @on(RaceScreen.RerunRequested)
    def _rerun_mid_race(self, message: RaceScreen.RerunRequested) -> None:
        if message.screen is self.screen:
            self._stop_later(self.race_source)
            self.rerun()

    @on(ResultsScreen.RerunRequested)
    def _rerun_after_results(self, message: ResultsScreen.RerunRequested) -> None:
        if message.screen is self.screen:
            self.rerun()

    @on(ResultsScreen.NextRaceRequested)
    def _next_race_requested(self, message: ResultsScreen.NextRaceRequested) -> None:
        if message.screen is self.screen and self.tasks_after:
            task = self.tasks_after.pop(0)
            self.start_race(task, self.current_specs)

    @on(ResultsScreen.SetupRequested)
    def _setup_requested(self, message: ResultsScreen.SetupRequested) -> None:
        if message.screen is self.screen and self.from_setup and len(self.screen_stack) > 2:
            self.pop_screen()
            self.race_source, self.standings = None, None

    def _stop_later(self, source: Source) -> None:
        async def stop() -> None:
            await asyncio.to_thread(source.stop, 10.0)

        self.run_worker(stop(), group="stop-sources", exit_on_error=False)

    # -- keys ---------------------------------------------------------------------------

    async def action_quit(self) -> None:
        running = [s for s in self.sources if not s.done.is_set()]
        if running:
            self.notify("stopping the race…", timeout=3)
            await asyncio.gather(*(asyncio.to_thread(s.stop, 5.0) for s in running), return_exceptions=True)
        self.exit(EXIT_OK)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def recording(self) -> str | None:
        """Where the race on screen (live, replayed or finished) is recorded;
        None when it is not, or when the recording is incomplete: nothing goes
        next to a file that failed."""
        return complete_recording(self.race_source.recording if self.race_source is not None else None)

    def output_dir(self) -> Path:
        """Next to the recording if there is one, else the configured folder or cwd."""
        return output_folder(self.config.output_dir, self.recording())

    def action_screenshot(self) -> None:
        folder = self.output_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = self.save_screenshot(path=str(folder))
        except OSError as exc:
            self.notify(one_line(f"screenshot failed: {exc}"), severity="error", markup=False)
            return
        self.last_screenshot = path
        if isinstance(self.screen, ResultsScreen):
            self.screen.note_screenshot(path)
        self.notify(one_line(path), title="screenshot saved", timeout=6, markup=False)

    def action_export(self) -> None:
        standings = self.standings
        if standings is None or not standings.lanes:
            self.notify("nothing to export yet", severity="warning")
            return
        try:
            if isinstance(self.screen, TrialsScreen) and self.trials.summary is not None:
                paths = [export_json(self.trials.export(), self.output_dir(), f"{self._export_stem()}-trials")]
            else:
                paths = export_files(standings.results(), self.output_dir(), self._export_stem())
        except OSError as exc:
            self.notify(one_line(f"export failed: {exc}"), severity="error", markup=False)
            return
        self.last_export = paths
        if isinstance(self.screen, ResultsScreen):
            self.screen.note_export(paths)
        self.notify("\n".join(map(one_line, paths)), title="results exported", timeout=8, markup=False)

    def _export_stem(self) -> str:
        return export_stem(self.recording(), self.current_task.name if self.current_task else None)


def make_app(
    *,
    mode: str,
    task: TaskSpec | None = None,
    specs: list[BackendSpec] | None = None,
    source_factory: SourceFactory | None = None,
    recording_path: str | Path | None = None,
    replay_path: str | Path | None = None,
    speed: float = 1.0,
    tasks_after: list[TaskSpec] | None = None,
    **kw: Any,
) -> ThunderdomeApp:
    """Build the app. ``mode``: ``setup`` (pick a task and backends), ``race``
    (straight into ``task`` on ``specs``, then ``tasks_after``), ``replay``
    (``replay_path`` at ``speed``). ``source_factory(task, specs)`` replaces the
    live race (tests). Extra keywords: ``record`` (True / path / None),
    ``time_scale``, ``max_tokens``, ``seed`` for live races; ``clock``,
    ``results_delay``, ``output_dir``, ``discover``, ``next_delay``,
    ``presenter``, ``trials`` for the app (see ``AppConfig``)."""
    check_modes(mode, task=task, specs=specs, replay_path=replay_path, trials=kw.get("trials", 1), tasks_after=tasks_after)
    record = kw.pop("record", True)
    if recording_path is not None:
        record = str(recording_path)
    run_kwargs = {k: kw.pop(k) for k in ("time_scale", "max_tokens", "seed", "emulator", "race_process") if k in kw}
    if source_factory is None and mode != "replay":
        source_factory = live_source_factory(record=record, **run_kwargs)
    config = AppConfig(
        mode=mode,
        task=task,
        specs=list(specs or []),
        tasks_after=list(tasks_after or []),
        source_factory=source_factory,
        replay_path=str(replay_path) if replay_path is not None else None,
        speed=speed,
        **kw,
    )
    return ThunderdomeApp(config)


def run_tui(**kwargs: Any) -> int:
    """Run the app in the terminal; return its exit code. Afterwards, say
    where the races were recorded, or that a recording is incomplete (then
    the exit code is ``EXIT_FAILED``); the terminal is back to normal by then."""
    import sys

    app = make_app(**kwargs)
    result = app.run()
    code = int(result or EXIT_OK) if app.return_code in (None, 0) else int(app.return_code or EXIT_FAILED)
    if kwargs.get("mode") == "replay":
        return code
    lines, failed = recording_report(s.recording for s in app.sources)
    for line in lines:
        print(line, file=sys.stderr)
    return code or (EXIT_FAILED if failed else EXIT_OK)
