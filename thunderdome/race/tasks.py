"""Race tasks: task YAML files -> ``TaskSpec``, and the built-in task set.

Invariant: a task that loads is runnable: every field has the right type and
range, every check names what it needs, setup file paths stay inside the work
dir. Anything wrong raises ``ConfigError("FILE:LINE: problem")`` (one line);
nothing here raises anything else at the user.

Task file format (one task per file; the built-in ones live in ``tasks/``)::

    name: csv-count                 # required; the name `--task` selects
    title: Count the northern orders  # one line for humans (default: name)
    kind: thunderdome               # required: thunderdome | long
    win_rule: first_correct         # thunderdome only, required there:
                                    #   first_correct | last_standing
    system: |                       # system prompt template (optional)
      You are a shell agent...
    user: |                         # required: user prompt template
      Print the number of rows of sales.csv whose region is north.
    setup_files:                    # files written into each lane's work dir
      sales.csv: |                  #   (relative paths; sub-folders allowed)
        region,product,amount
        north,widget,3
    checks:                         # first_correct only, at least one; ALL must pass
      - kind: stdout_equals         # the command's stdout, stripped, equals value
        value: "1"
    max_turns: 3                    # model replies per lane (agent loop), >= 1
    race_on: false                  # first_correct only: race on for places after the win
    agent: text                     # how lanes act: tools | text (default: tools)
    max_tokens: 256                 # output-token cap per reply
    timeout: 120                    # seconds for the whole race
    exec_timeout: 10                # seconds for one command in the sandbox
    reference: |                    # the reference answer: a full model reply.
      ```bash                       #   sim lanes reply with it; a test proves
      awk -F, '$1=="north"' sales.csv | wc -l   # it passes the checks
      ```
    wrong_answer: |                 # a plausible wrong reply (fails the checks);
      ```bash                       #   sim lanes send it with probability
      grep -c north sales.csv       #   `wrong_rate` (backend option)
      ```

Fields:

- ``name`` (str, required): letters, digits, ``.``, ``_``, ``-``.
- ``title`` (str): shown in the UI and results; defaults to ``name``.
- ``kind`` (required): ``thunderdome`` (the model must act: its reply holds a
  shell command that is run in a sandbox) or ``long`` (a long generation
  race: everyone writes one long answer; no commands are run).
- ``win_rule`` (thunderdome only, required there): ``first_correct`` (each
  lane has its own sandbox work dir; the first lane whose command passes
  every check wins; failed checks are fed back for another turn) or
  ``last_standing`` (one shared arena, a fighter process per lane; the last
  lane whose fighter is alive wins).
- ``system``, ``user`` (str; ``user`` required): prompt templates. Fields in
  braces are filled per lane: ``{lane}`` (the lane's name), ``{task}``;
  first_correct adds ``{workdir}`` (the work dir as the command sees it);
  last_standing adds ``{pid}`` (the lane's fighter PID), ``{opponents}`` (the
  other fighters' PIDs, space-separated) and ``{opponent_count}``. Unknown
  ``{names}`` are left as written, so shell braces such as ``awk '{print $1}'``
  are safe.
- ``setup_files`` (mapping of relative path -> text; first_correct only):
  written into every lane's work dir before the race starts.
- ``checks`` (list, first_correct only, at least one): every check must pass.
  Each is a mapping with ``kind`` and its fields:

  - ``file_equals`` (``path``, ``value``): the file's text equals ``value``;
    trailing newlines on either side do not matter.
  - ``file_contains`` (``path``, ``value``): the file's text contains ``value``.
  - ``stdout_equals`` (``value``): the command's stdout, stripped of leading
    and trailing whitespace, equals ``value`` (also stripped).
  - ``stdout_contains`` (``value``): the command's stdout contains ``value``.
  - ``command`` (``command``): a shell check run in the lane's sandbox after
    the model's command, in the same work dir; passes on exit code 0.

- ``max_turns`` (int >= 1, default 1): replies per lane. After a failed check
  the model is told what happened (exit code, output tail, failed check) and
  answers again, until it passes or runs out of turns (then: eliminated).
- ``race_on`` (true/false, default false; first_correct only): the winner is
  called the moment its command passes; then the other lanes are stopped
  ("race won by X", keeping their figures), unless ``race_on: true``: they
  race on for places until each passes, runs out of turns or of time.
  (last_standing ends when one fighter stands; long races always race on.)
- ``agent`` (thunderdome only): how the lanes act, ``tools`` (the model is
  offered one native ``bash`` tool and calls it) or ``text`` (it writes the
  command in a shell code block). A backend's own ``agent`` option wins over
  the task's (it knows whether its model can call tools); lanes whose
  backend says nothing act as the task says, and without either: ``tools``.
- ``max_tokens`` (int >= 1, default 1024): output cap sent with every request.
- ``expected_tokens`` (int, 1 to ``max_tokens``, optional): how long a reply
  is expected to be. A running lane's finish is projected from it until some
  lane has finished the race (then from their median length).
- ``timeout`` (seconds > 0, default 120): the whole race; a lane still
  working then is eliminated (out of time).
- ``exec_timeout`` (seconds > 0, default 10): one command in the sandbox.
- ``reference`` (str): what a perfect model would reply, rendered with the
  same fields as the prompt. Sim lanes reply with it. Required for
  thunderdome tasks; long tasks may leave it out (sim lanes then generate
  text of their profile's length).
- ``wrong_answer`` (str): a plausible wrong reply that fails the checks; sim
  lanes send it instead of ``reference`` with probability ``wrong_rate``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from thunderdome.core.specs import AGENT_MODES, Check, TaskSpec
from thunderdome.core.yamlfile import ConfigError, LineDict, LineList, line_of, parse_yaml, read_yaml

TASK_KINDS = ("thunderdome", "long")
WIN_RULES = ("first_correct", "last_standing")
CHECK_KINDS: dict[str, tuple[str, ...]] = {
    "file_equals": ("path", "value"),
    "file_contains": ("path", "value"),
    "stdout_equals": ("value",),
    "stdout_contains": ("value",),
    "command": ("command",),
}
"""Check kind -> the fields it requires (and the only ones it accepts)."""

_FIELDS = {
    "name", "title", "kind", "win_rule", "system", "user", "setup_files", "checks", "max_turns",
    "max_tokens", "expected_tokens", "timeout", "exec_timeout", "reference", "wrong_answer", "race_on", "agent",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
PROMPT_FIELDS = ("lane", "task", "workdir", "pid", "opponents", "opponent_count")
"""The ``{name}`` fields a prompt template may use (see ``render_prompt``)."""
_FIELD_USE = re.compile(r"\{(" + "|".join(PROMPT_FIELDS) + r")([!:.\[][^{}]*)\}")
MAX_NAME, MAX_PATH = 255, 1024
MIN_SECONDS = 0.1
"""Shorter timeouts cannot work: a sandbox alone takes ~10 ms to start."""
BUILTIN_PACKAGE = "thunderdome.builtin_tasks"


def _err(source: str, line: int, problem: str) -> ConfigError:
    return ConfigError(f"{source}:{line}: {problem}")


def _text(data: LineDict, key: str, source: str, *, required: bool = False, default: str = "") -> str:
    if key not in data or data[key] is None:
        if required:
            raise _err(source, data.line, f"task is missing '{key}'")
        return default
    value = data[key]
    if not isinstance(value, str):
        raise _err(source, data.line_of(key), f"'{key}' must be text, not {_type_name(value)}")
    return value


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _int(data: LineDict, key: str, source: str, default: int, lo: int, hi: int) -> int:
    if key not in data:
        return default
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise _err(source, data.line_of(key), f"'{key}' must be a whole number")
    if not lo <= value <= hi:
        raise _err(source, data.line_of(key), f"'{key}' must be between {lo} and {hi}, got {value}")
    return value


def _bool(data: LineDict, key: str, source: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise _err(source, data.line_of(key), f"'{key}' must be true or false, not {_type_name(value)}")
    return value


def _seconds(data: LineDict, key: str, source: str, default: float) -> float:
    if key not in data:
        return default
    value = data[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not MIN_SECONDS <= value <= 86400:
        raise _err(source, data.line_of(key), f"'{key}' must be a number of seconds from {MIN_SECONDS:g} to 86400")
    return float(value)


def _setup_files(data: LineDict, source: str) -> dict[str, str]:
    raw = data.get("setup_files")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _err(source, data.line_of("setup_files"), "'setup_files' must map file paths to their text")
    files: dict[str, str] = {}
    for name, text in raw.items():
        line = line_of(raw, name)
        path = _setup_path(name, source, line)
        if not isinstance(text, str):
            raise _err(source, line, f"setup file {name!r} must be text (quote numbers), not {_type_name(text)}")
        clash = next((other for other in files if other == path or path.startswith(other + "/") or other.startswith(path + "/")), None)
        if clash is not None:
            raise _err(source, line, f"setup file {name!r} collides with {clash!r} (one path cannot be both a file and a folder, or twice)")
        files[path] = text
    return files


def _setup_path(name: Any, source: str, line: int) -> str:
    """A setup file's path, normalised; refused unless it is a plain relative
    path a file system can hold."""
    if not isinstance(name, str):
        raise _err(source, line, f"setup file path must be text, not {_type_name(name)}")
    path = PurePosixPath(name)
    if not name.strip() or path.is_absolute() or ".." in path.parts or "\\" in name or str(path) == ".":
        raise _err(source, line, f"setup file path must be relative and inside the work dir: {name!r}")
    if "\0" in name or any(ord(c) < 32 for c in name):
        raise _err(source, line, f"setup file path holds a control character: {name!r}")
    if len(name.encode("utf-8")) > MAX_PATH or any(len(part.encode("utf-8")) > MAX_NAME for part in path.parts):
        raise _err(source, line, f"setup file path is too long (at most {MAX_NAME} bytes a name, {MAX_PATH} in all)")
    return str(path)


def _check_fields(data: LineDict, key: str, template: str, source: str) -> None:
    """Prompt fields are filled as plain ``{name}``: a known field with a
    format spec, conversion, attribute or index (``{lane:>3000000000}``) is
    refused, unknown ``{...}`` stay as written."""
    for match in _FIELD_USE.finditer(template):
        if match.group(2):
            raise _err(source, data.line_of(key), f"'{key}': write {{{match.group(1)}}}, not {match.group(0)} (prompt fields take no format spec)")


def _checks(data: LineDict, source: str) -> tuple[Check, ...]:
    raw = data.get("checks")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _err(source, data.line_of("checks"), "'checks' must be a list of checks")
    checks = []
    for index, entry in enumerate(raw):
        line = raw.line_of(index) if isinstance(raw, LineList) else data.line_of("checks")
        if not isinstance(entry, LineDict):
            raise _err(source, line, f"each check must be a mapping with a 'kind' ({', '.join(CHECK_KINDS)})")
        kind = entry.get("kind")
        if kind is None:
            raise _err(source, entry.line, f"check is missing 'kind' ({', '.join(CHECK_KINDS)})")
        if kind not in CHECK_KINDS:
            raise _err(source, entry.line_of("kind"), f"unknown check kind {kind!r} (use one of: {', '.join(CHECK_KINDS)})")
        needed = CHECK_KINDS[kind]
        extra = sorted(set(entry) - set(needed) - {"kind"})
        if extra:
            raise _err(source, entry.line_of(extra[0]), f"check {kind} takes no '{extra[0]}' (it takes: {', '.join(needed)})")
        values: dict[str, str] = {}
        for key in needed:
            if key not in entry or entry[key] is None:
                raise _err(source, entry.line, f"check {kind} is missing '{key}'")
            value = entry[key]
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise _err(source, entry.line_of(key), f"check {kind}: '{key}' must be text")
            values[key] = str(value)
        if "path" in values:
            path = PurePosixPath(values["path"])
            if not values["path"] or path.is_absolute() or ".." in path.parts:
                raise _err(source, entry.line_of("path"), f"check path must be relative to the work dir: {values['path']!r}")
        if kind == "command" and not values["command"].strip():
            raise _err(source, entry.line_of("command"), "check command must not be empty")
        checks.append(Check(kind=kind, **values))
    return tuple(checks)


def parse_task(data: Any, source: str, *, default_name: str = "") -> TaskSpec:
    """A parsed task YAML document -> TaskSpec (validated)."""
    if not isinstance(data, LineDict):
        raise _err(source, line_of(data), "a task file must be a mapping (name, kind, user, ...)")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise _err(source, data.line_of(unknown[0]), f"unknown field '{unknown[0]}' (known: {', '.join(sorted(_FIELDS))})")
    name = _text(data, "name", source, required=not default_name, default=default_name).strip()
    if not _NAME.match(name):
        raise _err(source, data.line_of("name"), f"task name {name!r} must be letters, digits, '.', '_' or '-'")
    kind = _text(data, "kind", source, required=True)
    if kind not in TASK_KINDS:
        raise _err(source, data.line_of("kind"), f"unknown kind {kind!r} (use one of: {', '.join(TASK_KINDS)})")
    user = _text(data, "user", source, required=True)
    if not user.strip():
        raise _err(source, data.line_of("user"), "'user' prompt must not be empty")
    system = _text(data, "system", source)
    _check_fields(data, "user", user, source)
    _check_fields(data, "system", system, source)
    timeout = _seconds(data, "timeout", source, 120.0)
    exec_timeout = _seconds(data, "exec_timeout", source, 10.0)
    if exec_timeout > timeout:
        raise _err(source, data.line_of("exec_timeout"), f"'exec_timeout' ({exec_timeout:g} s) is longer than the race's 'timeout' ({timeout:g} s)")
    win_rule = _text(data, "win_rule", source)
    setup_files = _setup_files(data, source)
    checks = _checks(data, source)
    reference = _text(data, "reference", source)
    race_on = _bool(data, "race_on", source)
    agent = _text(data, "agent", source)
    if agent and agent not in AGENT_MODES:
        raise _err(source, data.line_of("agent"), f"unknown agent {agent!r} (use one of: {', '.join(AGENT_MODES)})")
    if kind == "long":
        if "race_on" in data:
            raise _err(source, data.line_of("race_on"), "'race_on' is only for first_correct tasks (long races always race on for places)")
        for key in ("win_rule", "setup_files", "checks", "agent"):
            if data.get(key):
                raise _err(source, data.line_of(key), f"'{key}' is only for thunderdome tasks (this task is kind: long)")
    else:
        if not win_rule:
            raise _err(source, data.line, f"thunderdome task is missing 'win_rule' ({' or '.join(WIN_RULES)})")
        if win_rule not in WIN_RULES:
            raise _err(source, data.line_of("win_rule"), f"unknown win_rule {win_rule!r} (use one of: {', '.join(WIN_RULES)})")
        if win_rule == "first_correct" and not checks:
            raise _err(source, data.line_of("checks"), "a first_correct task needs at least one check under 'checks'")
        if win_rule == "last_standing" and "race_on" in data:
            raise _err(source, data.line_of("race_on"), "'race_on' does not apply to last_standing tasks (the race ends when one fighter stands)")
        if win_rule == "last_standing":
            for key in ("checks", "setup_files"):
                if data.get(key):
                    raise _err(source, data.line_of(key), f"'{key}' does not apply to last_standing tasks (the arena decides)")
        if not reference.strip():
            raise _err(source, data.line_of("reference"), "thunderdome task is missing 'reference' (the reference answer)")
    max_tokens = _int(data, "max_tokens", source, 1024, 1, 1_000_000)
    return TaskSpec(
        name=name,
        title=_text(data, "title", source, default=name).strip() or name,
        kind=kind,
        user=user,
        system=system,
        win_rule=win_rule,
        max_turns=_int(data, "max_turns", source, 1, 1, 50),
        max_tokens=max_tokens,
        expected_tokens=_int(data, "expected_tokens", source, 0, 1, max_tokens),
        timeout=timeout,
        exec_timeout=exec_timeout,
        race_on=race_on,
        setup_files=setup_files,
        checks=checks,
        reference=reference,
        wrong_answer=_text(data, "wrong_answer", source),
        agent=agent,
        source=source,
    )


def load_task_file(path: str | Path) -> TaskSpec:
    """Read and validate one task YAML file."""
    path = Path(path)
    return parse_task(read_yaml(path), str(path))


def _builtin_files() -> list[tuple[str, str]]:
    """(source name, text) of every shipped task YAML."""
    found: list[tuple[str, str]] = []
    try:
        root = resources.files(BUILTIN_PACKAGE)
        for entry in root.iterdir():
            if entry.name.endswith((".yaml", ".yml")) and entry.is_file():
                found.append((str(entry), entry.read_text(encoding="utf-8")))
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, TypeError):
        found = []
    if not found:  # running from a checkout: the repo's tasks/ folder
        folder = Path(__file__).resolve().parents[2] / "tasks"
        if folder.is_dir():
            for path in folder.iterdir():
                if path.suffix in (".yaml", ".yml") and path.is_file():
                    found.append((str(path), path.read_text(encoding="utf-8")))
    return found


def _order(task: TaskSpec) -> tuple:
    rule = {"last_standing": 0, "first_correct": 1}.get(task.win_rule, 2)
    return (0 if task.kind == "thunderdome" else 1, rule, task.name)


@functools.lru_cache(maxsize=1)
def _builtin() -> tuple[TaskSpec, ...]:
    tasks = [parse_task(parse_yaml(text, source), source) for source, text in _builtin_files()]
    names: dict[str, str] = {}
    for task in tasks:
        if task.name in names:
            raise ConfigError(f"{task.source}:1: duplicate built-in task name {task.name!r} (also in {names[task.name]})")
        names[task.name] = task.source
    return tuple(sorted(tasks, key=_order))


def builtin_tasks() -> list[TaskSpec]:
    """Every shipped task: sigkill first, then first_correct tasks, then long."""
    return list(_builtin())


def _looks_like_path(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) or "/" in value or "\\" in value or Path(value).is_file()


def load_task(name_or_path: str | Path) -> TaskSpec:
    """A built-in task by name, or a task YAML file by path."""
    value = str(name_or_path)
    if isinstance(name_or_path, Path) or _looks_like_path(value):
        return load_task_file(value)
    for task in _builtin():
        if task.name == value:
            return task
    known = ", ".join(task.name for task in _builtin())
    raise ConfigError(f"{value}: unknown task (built-in: {known}; or give a task YAML file)")


__all__ = [
    "CHECK_KINDS",
    "TASK_KINDS",
    "WIN_RULES",
    "builtin_tasks",
    "load_task",
    "load_task_file",
    "parse_task",
]
