"""The setup screen: pick a task, tick backends, set the token cap, start.

Invariant: the screen only gathers choices; it starts nothing (it posts
``SetupScreen.RaceRequested`` and the app starts the race) and probes
nothing but 127.0.0.1 (through ``thunderdome.core.discover``). Bad input (a task
file that does not load, no backend ticked, a bad number) is shown as a
one-line message, never raised.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Input, Label, OptionList, SelectionList, Static
from textual.widgets.option_list import Option
from textual.widgets.selection_list import Selection

from thunderdome.core.specs import BackendSpec, TaskSpec
from thunderdome.tui.palette import DIM, LABEL
from thunderdome.tui.safe_text import one_line
from thunderdome.tui.widgets.footer import key_footer

DEMO_PROFILES = ("cloud", "dgx-spark", "rtx4090-offload")


def task_label(task: TaskSpec) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(one_line(task.name, 30).ljust(14), Style(bold=True))
    kind = task.win_rule.replace("_", " ") if task.kind == "thunderdome" else "long generation"
    text.append(kind.ljust(16), Style(color="#2ec4f0" if task.kind == "long" else "#ff9f1c"))
    text.append(one_line(task.title, 80), DIM)
    return text


def backend_label(spec: BackendSpec, origin: str) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(one_line(spec.name, 30).ljust(18), Style(bold=True))
    text.append(spec.kind.ljust(8), Style(color="#2ec4f0" if spec.kind == "sim" else "#ff9f1c"))
    if spec.kind == "sim":
        from thunderdome.sim.profiles import PROFILES

        profile = PROFILES.get(spec.profile or "")
        if spec.model and spec.model != spec.name:
            text.append(one_line(spec.model, 30) + "  ", Style(color="#c8c8c8"))
        if profile is not None:
            text.append(f"TTFT {profile.ttft:g} s · {profile.tps:g} tok/s", DIM)
    else:
        text.append(one_line(spec.model, 40) + "  ", Style(color="#c8c8c8"))
        text.append(one_line(f"{spec.url} ({origin})", 80), DIM)
    if spec.api_key_env and not spec.api_key():
        text.append(f"  ⚠ ${spec.api_key_env} not set", Style(color="#ffd23f"))
    return text


def sim_specs() -> list[BackendSpec]:
    from thunderdome.sim.profiles import PROFILES

    return [BackendSpec(name=name, kind="sim", profile=name, model=name) for name in PROFILES]


class SetupScreen(Screen):
    """Choose what to race."""

    @dataclasses.dataclass
    class RaceRequested(Message):
        """The user asked for ``task`` raced on ``specs`` (checked: the task
        loaded, at least one backend, no two named alike)."""

        screen: SetupScreen
        task: TaskSpec
        specs: list[BackendSpec]

    BINDINGS = [
        Binding("ctrl+s,f5", "start", "start race"),
        Binding("d", "rediscover", "discover"),
    ]

    def __init__(self, *, discover: bool = True, cwd: Path | None = None) -> None:
        super().__init__()
        self.discover_enabled = discover
        self.cwd = cwd
        self.tasks: list[TaskSpec] = []
        self.backends: list[BackendSpec] = []
        self.config_note = Text()

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="setup-title")
        with Horizontal(id="setup-main"):
            with Vertical(id="setup-tasks", classes="panel") as box:
                box.border_title = "1 · task"
                yield OptionList(id="task-list")
                yield Static("", id="task-detail")
                with Horizontal(id="task-file-row"):
                    yield Label("or a task file:", classes="field-label")
                    yield Input(placeholder="path/to/task.yaml", id="task-file", compact=True)
            with Vertical(id="setup-backends", classes="panel") as box:
                box.border_title = "2 · backends"
                yield SelectionList[int](id="backend-list")
                yield Static("", id="backend-note")
        with Horizontal(id="setup-bottom"):
            yield Label("3 · max tokens", classes="field-label")
            yield Input(placeholder="task default", id="max-tokens", type="integer", max_length=6)
            yield Button("Start race ▶", id="start", variant="primary")
            yield Static("", id="task-preview")
        yield key_footer()

    def _title(self) -> Text:
        text = Text(no_wrap=True)
        text.append(" ⚡ THUNDERDOME ", Style(color="#000000", bgcolor="#ff9f1c", bold=True))
        text.append("  set up a race: a task, some backends, go", Style(bold=True))
        return text

    def on_mount(self) -> None:
        from thunderdome.race.tasks import builtin_tasks

        try:
            self.tasks = builtin_tasks()
        except Exception as exc:  # a broken built-in task must not kill the screen
            self.tasks = []
            self.notify(one_line(f"built-in tasks: {exc}"), severity="error", markup=False)
        options = self.query_one("#task-list", OptionList)
        options.add_options([Option(task_label(t), id=t.name) for t in self.tasks])
        if self.tasks:
            names = [t.name for t in self.tasks]
            options.highlighted = names.index("sigkill") if "sigkill" in names else 0
        self._load_backends()
        if self.discover_enabled:
            self.action_rediscover()
        options.focus()

    # -- backends ---------------------------------------------------------------------------

    def _load_backends(self) -> None:
        from thunderdome.config import find_backends_file, load_backends
        from thunderdome.core.yamlfile import ConfigError

        from_file: list[BackendSpec] = []
        note = Text()
        path = find_backends_file(self.cwd)
        if path is not None:
            try:
                from_file = load_backends(path, require_keys=False)
                note.append(f"from {path}", DIM)
            except ConfigError as exc:
                note.append("✖ " + one_line(str(exc), 200), Style(color="#ff5555"))
        else:
            note.append("no thunderdome.yaml here or in ~/.config/thunderdome — built-in sims below", DIM)
        self.config_note = note
        selection = self.query_one("#backend-list", SelectionList)
        for spec in from_file:
            self._add_backend(spec, "file", selected=True)
        for spec in sim_specs():
            self._add_backend(spec, "sim", selected=not from_file and spec.name in DEMO_PROFILES)
        selection.refresh()
        self._show_note("")

    def _add_backend(self, spec: BackendSpec, origin: str, *, selected: bool) -> None:
        if any(b.kind == spec.kind and b.url == spec.url and b.model == spec.model and b.name == spec.name for b in self.backends):
            return
        self.backends.append(spec)
        self.query_one("#backend-list", SelectionList).add_option(
            Selection(backend_label(spec, origin), len(self.backends) - 1, selected)
        )

    def _show_note(self, extra: str) -> None:
        text = self.config_note.copy()
        if extra:
            text.append("\n" + extra, LABEL)
        self.query_one("#backend-note", Static).update(text)

    def action_rediscover(self) -> None:
        self._show_note("scanning local ports (127.0.0.1: 11434 1234 8080 9931 8000 30000 1337)…")
        self._discover()

    @work(exclusive=True, group="discover")
    async def _discover(self) -> None:
        from thunderdome.core.discover import discover

        found = await discover()
        for spec in found:
            self._add_backend(spec, "local", selected=False)
        self._show_note(f"found {len(found)} local model(s)" if found else "no local servers found on the default ports")

    # -- task preview -------------------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#task-list")
    def _task_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        task = self._task_by_name(event.option.id)
        if task is not None:
            self._preview(task)

    def _task_by_name(self, name: str | None) -> TaskSpec | None:
        return next((t for t in self.tasks if t.name == name), None)

    def _preview(self, task: TaskSpec) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{one_line(task.name, 40)}: ", Style(bold=True))
        text.append(f"max {task.max_tokens} tokens · {task.timeout:g} s limit", DIM)
        if task.kind == "thunderdome":
            text.append(f" · {task.max_turns} turn(s)", DIM)
        self.query_one("#task-preview", Static).update(text)
        detail = Text()
        detail.append(one_line(task.title, 200) + "\n", Style(bold=True))
        prompt = " ".join(task.user.split())
        detail.append(one_line(prompt, 400), Style(color="#a8a8a8", italic=True))
        self.query_one("#task-detail", Static).update(detail)

    # -- start ----------------------------------------------------------------------------------

    def chosen_task(self) -> TaskSpec | None:
        """The task to race, or None (a message was shown)."""
        path = self.query_one("#task-file", Input).value.strip()
        if path:
            from thunderdome.race.tasks import load_task
            from thunderdome.core.yamlfile import ConfigError

            try:
                return load_task(path)
            except (ConfigError, OSError) as exc:
                self.notify(one_line(str(exc), 300), title="task file", severity="error", markup=False)
                return None
        options = self.query_one("#task-list", OptionList)
        if options.highlighted is None:
            self.notify("pick a task", severity="warning")
            return None
        return self._task_by_name(options.get_option_at_index(options.highlighted).id)

    def chosen_backends(self) -> list[BackendSpec] | None:
        picked = [self.backends[i] for i in self.query_one("#backend-list", SelectionList).selected]
        if not picked:
            self.notify("tick at least one backend (space)", severity="warning")
            return None
        names = [spec.name for spec in picked]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            self.notify(one_line(f"two backends are named {dupes[0]!r}: untick one"), severity="error", markup=False)
            return None
        return picked

    def action_start(self) -> None:
        task = self.chosen_task()
        specs = self.chosen_backends() if task is not None else None
        if task is None or specs is None:
            return
        raw = self.query_one("#max-tokens", Input).value.strip()
        if raw:
            try:
                cap = int(raw)
            except ValueError:
                cap = 0
            if cap < 1:
                self.notify("max tokens must be a whole number ≥ 1", severity="error")
                return
            task = dataclasses.replace(task, max_tokens=cap)
        self.post_message(self.RaceRequested(self, task, specs))

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_start()
