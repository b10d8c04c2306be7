"""Task files: the built-in set loads and is well-formed; a bad task file is
one ConfigError line naming the file and the line of the problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from thunderdome.race.engine import render_prompt
from thunderdome.race.extract import extract_command
from thunderdome.race.tasks import CHECK_KINDS, builtin_tasks, load_task, load_task_file
from thunderdome.core.yamlfile import ConfigError

GOOD = """\
name: t1
title: A test task
kind: thunderdome
win_rule: first_correct
user: |
  Make a.txt
setup_files:
  in/data.txt: |
    1
checks:
  - kind: file_equals
    path: a.txt
    value: "x"
  - kind: command
    command: test -f a.txt
max_turns: 3
max_tokens: 100
timeout: 30
exec_timeout: 2.5
reference: |
  ```bash
  echo x > a.txt
  ```
wrong_answer: "```bash\\necho y > a.txt\\n```"
"""


def write(tmp_path: Path, text: str, name: str = "task.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --- the built-in set ---------------------------------------------------------------


def test_every_builtin_task_loads() -> None:
    tasks = builtin_tasks()
    names = [t.name for t in tasks]
    assert len(names) == len(set(names))
    assert names[0] == "sigkill"
    by_name = {t.name: t for t in tasks}
    for name in names:
        assert load_task(name) == by_name[name]
        assert Path(by_name[name].source).is_file()


def test_builtin_set_has_the_required_shapes() -> None:
    tasks = {t.name: t for t in builtin_tasks()}
    sig = tasks["sigkill"]
    assert (sig.kind, sig.win_rule) == ("thunderdome", "last_standing")
    assert sig.max_tokens <= 128
    assert "{pid}" in sig.user and "{opponents}" in sig.user
    first = [t for t in tasks.values() if t.win_rule == "first_correct"]
    assert len(first) >= 6
    assert any(t.max_turns >= 3 for t in first)
    long = {t.name: t for t in tasks.values() if t.kind == "long"}
    assert {"long-essay", "long-code"} <= set(long)
    assert long["long-essay"].max_tokens == 1024
    assert long["long-code"].max_tokens == 2048


@pytest.mark.parametrize("task", [t for t in builtin_tasks() if t.kind == "thunderdome"], ids=lambda t: t.name)
def test_thunderdome_tasks_have_extractable_answers(task) -> None:
    fields = {"pid": 2, "opponents": "3 4", "workdir": "/work", "lane": "x", "task": task.name}
    ref = extract_command(render_prompt(task.reference, fields))
    wrong = extract_command(render_prompt(task.wrong_answer, fields))
    assert ref and wrong and ref != wrong
    if task.win_rule == "first_correct":
        assert task.checks and all(c.kind in CHECK_KINDS for c in task.checks)
    else:
        assert ref == "kill -9 3 4"


def test_load_by_path_and_by_name(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    task = load_task(str(path))
    assert task.name == "t1" and task.source == str(path)
    assert task.max_turns == 3 and task.exec_timeout == 2.5 and task.timeout == 30.0
    assert task.setup_files == {"in/data.txt": "1\n"}
    assert [c.kind for c in task.checks] == ["file_equals", "command"]
    assert task.checks[0].path == "a.txt" and task.checks[0].value == "x"
    assert load_task(path) == task


def test_defaults_for_a_minimal_long_task(tmp_path: Path) -> None:
    task = load_task_file(write(tmp_path, "name: essay\nkind: long\nuser: Write.\n"))
    assert (task.title, task.max_turns, task.max_tokens, task.timeout, task.exec_timeout) == ("essay", 1, 1024, 120.0, 10.0)
    assert task.win_rule == "" and task.checks == () and task.reference == ""
    assert task.expected_tokens == 0  # not said: projections fall back to max_tokens
    assert load_task("long-essay").expected_tokens == 878  # the public race's length


def test_unknown_builtin_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        load_task("no-such-task")
    assert "unknown task" in str(err.value) and "sigkill" in str(err.value)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_task("/nonexistent/dir/task.yaml")


# --- bad files: one line, file:line -------------------------------------------------


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


BAD = {
    "malformed yaml": (_replace(GOOD, "max_turns: 3", "max_turns: [3"), 17, "invalid YAML"),
    "not a mapping": ("- a\n- b\n", 1, "must be a mapping"),
    "empty file": ("", 1, "must be a mapping"),
    "unknown kind": (_replace(GOOD, "kind: thunderdome", "kind: sprint"), 3, "unknown kind 'sprint'"),
    "unknown field": (_replace(GOOD, "max_turns: 3", "max_turns: 3\nturns: 4"), 17, "unknown field 'turns'"),
    "missing user": (_replace(GOOD, "user: |\n  Make a.txt\n", ""), 1, "missing 'user'"),
    "missing name": (_replace(GOOD, "name: t1\n", ""), 1, "missing 'name'"),
    "missing kind": (_replace(GOOD, "kind: thunderdome\n", ""), 1, "missing 'kind'"),
    "missing win_rule": (_replace(GOOD, "win_rule: first_correct\n", ""), 1, "missing 'win_rule'"),
    "bad win_rule": (_replace(GOOD, "win_rule: first_correct", "win_rule: fastest"), 4, "unknown win_rule"),
    "unknown check kind": (_replace(GOOD, "kind: file_equals", "kind: file_is"), 11, "unknown check kind 'file_is'"),
    "check missing value": (_replace(GOOD, '    value: "x"\n', ""), 11, "check file_equals is missing 'value'"),
    "check missing kind": (_replace(GOOD, "  - kind: command\n    command:", "  - command:"), 14, "check is missing 'kind'"),
    "check extra field": (_replace(GOOD, "    command: test -f a.txt", "    command: test -f a.txt\n    path: a"), 16, "takes no 'path'"),
    "check not a mapping": (_replace(GOOD, "  - kind: command\n    command: test -f a.txt", "  - test -f a.txt"), 14, "each check must be a mapping"),
    "check path escapes": (_replace(GOOD, "path: a.txt", "path: ../a.txt"), 12, "relative to the work dir"),
    "checks not a list": (_replace(GOOD, GOOD[GOOD.index("checks:"):GOOD.index("max_turns")], "checks: 3\n"), 10, "'checks' must be a list"),
    "no checks for first_correct": (
        _replace(GOOD, GOOD[GOOD.index("checks:"):GOOD.index("max_turns")], ""), 1, "needs at least one check"),
    "max_turns as text": (_replace(GOOD, "max_turns: 3", 'max_turns: "3"'), 16, "'max_turns' must be a whole number"),
    "max_turns zero": (_replace(GOOD, "max_turns: 3", "max_turns: 0"), 16, "between 1 and"),
    "negative timeout": (_replace(GOOD, "timeout: 30", "timeout: -1"), 18, "'timeout' must be a number of seconds"),
    "bool max_tokens": (_replace(GOOD, "max_tokens: 100", "max_tokens: true"), 17, "'max_tokens' must be a whole number"),
    "user not text": (_replace(GOOD, "user: |\n  Make a.txt", "user: [a, b]"), 5, "'user' must be text"),
    "setup path escapes": (_replace(GOOD, "in/data.txt:", "../data.txt:"), 8, "inside the work dir"),
    "setup absolute path": (_replace(GOOD, "in/data.txt:", "/etc/passwd:"), 8, "inside the work dir"),
    "setup content a number": (_replace(GOOD, "in/data.txt: |\n    1", "in/data.txt: 1"), 8, "must be text"),
    "bad name": (_replace(GOOD, "name: t1", "name: two words"), 1, "task name 'two words'"),
    "missing reference": (_replace(GOOD, GOOD[GOOD.index("reference:"):GOOD.index("wrong_answer")], ""), 1, "missing 'reference'"),
    "long with checks": (_replace(GOOD, "kind: thunderdome\nwin_rule: first_correct\n", "kind: long\n"), 6, "'setup_files' is only for thunderdome tasks"),
    "last_standing with checks": (_replace(GOOD, "win_rule: first_correct", "win_rule: last_standing"), 10, "does not apply to last_standing"),
    "duplicate key": (_replace(GOOD, "max_turns: 3", "max_turns: 3\nmax_turns: 4"), 17, "duplicate key"),
    "expected_tokens over the cap": (
        _replace(GOOD, "max_tokens: 100", "max_tokens: 100\nexpected_tokens: 101"), 18, "'expected_tokens' must be between 1 and 100"),
    "unknown agent": (_replace(GOOD, "max_turns: 3", "max_turns: 3\nagent: mcp"), 17, "unknown agent 'mcp' (use one of: tools, text)"),
    "agent not text": (_replace(GOOD, "max_turns: 3", "max_turns: 3\nagent: [tools]"), 17, "'agent' must be text"),
    "long with agent": (
        "name: l\nkind: long\nuser: write\nagent: text\n", 4, "'agent' is only for thunderdome tasks"),
    "expected_tokens as text": (
        _replace(GOOD, "max_tokens: 100", "max_tokens: 100\nexpected_tokens: lots"), 18, "'expected_tokens' must be a whole number"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_task_file_is_one_line_with_file_and_line(tmp_path: Path, case: str) -> None:
    text, line, fragment = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_task(str(path))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message, message


def test_good_fixture_is_good(tmp_path: Path) -> None:
    """Guards the table above: every bad case differs from a valid file."""
    assert load_task(str(write(tmp_path, GOOD))).name == "t1"


# --- agent: tools | text, and who decides ----------------------------------------------


def test_agent_field_loads_and_defaults_to_unsaid(tmp_path: Path) -> None:
    assert load_task(str(write(tmp_path, GOOD))).agent == ""
    text = _replace(GOOD, "max_turns: 3", "max_turns: 3\nagent: text")
    assert load_task(str(write(tmp_path, text, "text.yaml"))).agent == "text"


@pytest.mark.parametrize(
    ("backend", "task", "mode"),
    [
        (None, "", "tools"),  # neither says: tools
        (None, "text", "text"),  # the task decides for a backend that does not say
        (None, "tools", "tools"),
        ("text", "tools", "text"),  # the backend's own agent wins
        ("tools", "text", "tools"),
        ("text", "", "text"),
    ],
)
def test_a_backends_agent_wins_over_the_tasks(backend: str | None, task: str, mode: str) -> None:
    from thunderdome.race.tools_mode import mode_for
    from thunderdome.core.specs import BackendSpec, TaskSpec

    spec = BackendSpec(name="a", kind="sim", profile="instant", agent=backend)
    spec_task = TaskSpec(name="t", title="t", kind="thunderdome", win_rule="first_correct", user="u", agent=task)
    assert mode_for(spec, spec_task).name == mode


def test_backends_file_agent_is_unsaid_unless_written(tmp_path: Path) -> None:
    from thunderdome.config import load_backends

    path = tmp_path / "b.yaml"
    path.write_text("backends:\n  - {name: a, kind: sim, profile: instant}\n  - {name: b, kind: sim, profile: instant, agent: text}\n")
    a, b = load_backends(path)
    assert (a.agent, b.agent) == (None, "text")
