"""One exception tree and one exit-code map (``thunderdome.core.errors``).

Every exception class the package defines joins the tree, the tree drawn in
``errors``' docstring is the real one, and the exit codes the real command
line returns come from the map: 2 for bad usage or bad config, 1 for a race
that cannot run.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import thunderdome
from thunderdome.core import errors
from thunderdome.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, ThunderdomeError, UsageError, exit_code


def _classes_in(namespace: dict, module: str):
    for value in namespace.values():
        if isinstance(value, type) and value.__module__ == module:
            yield value
            yield from _classes_in(vars(value), module)


def package_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in a thunderdome module (nested ones too)."""
    found = []
    for info in pkgutil.walk_packages(thunderdome.__path__, "thunderdome."):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # running it is its import
            continue
        module = importlib.import_module(info.name)
        found += [cls for cls in _classes_in(vars(module), info.name) if issubclass(cls, BaseException)]
    return found


def drawn_tree() -> dict[str, str]:
    """{class name: parent name} as drawn in errors.py's docstring."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^(\s*(?:[│ ]*(?:├── |└── ))?)([A-Z][A-Za-z]+)\s{2,}", line)
        if not match:
            continue
        column, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= column:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((column, name))
    return parents


def test_every_exception_class_in_the_package_derives_from_thunderdome_error():
    classes = package_exceptions()
    names = {cls.__name__ for cls in classes}
    assert {"ConfigError", "RecordingError", "RaceSetupError", "BackendError", "ArenaError"} <= names
    assert [cls.__qualname__ for cls in classes if not issubclass(cls, ThunderdomeError)] == []


def test_the_tree_drawn_in_the_docstring_is_the_real_one():
    parents = drawn_tree()
    for cls in package_exceptions():
        if cls is ThunderdomeError:
            continue
        base = next(b for b in cls.__bases__ if issubclass(b, ThunderdomeError))
        assert parents.get(cls.__name__) == base.__name__, f"{cls.__qualname__} drawn under the wrong parent"


def test_exit_code_is_two_exactly_for_usage_errors():
    for cls in package_exceptions():
        exc = cls.__new__(cls)  # the code is the class's: no need to build a message
        assert exit_code(exc) == (EXIT_USAGE if issubclass(cls, UsageError) else EXIT_FAILED), cls.__qualname__
    assert exit_code(KeyboardInterrupt()) == EXIT_INTERRUPTED
    assert exit_code(ValueError("a bug")) == EXIT_FAILED


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "thunderdome", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def assert_one_line(result: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in result.stderr


SIM_BACKENDS = "backends:\n  - name: a\n    kind: sim\n    profile: cloud\n"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["race", "--task", "sigkill"], "--backends"),  # argparse
        (["race", "--backends", "sim.yaml", "--task", "long-essay", "--trials", "0"], "must be >= 1"),  # TUI trials run (test_cli_big.py)
        (["race", "--backends", "sim.yaml", "--task", "no-such-task", "--headless"], "unknown task"),
        (["sandbox"], "no command given"),  # the sandbox command's own handler
    ],
)
def test_usage_error_exits_2(tmp_path, args, fragment):
    (tmp_path / "sim.yaml").write_text(SIM_BACKENDS)
    assert_one_line(run_cli(*args, cwd=tmp_path), EXIT_USAGE, fragment)


def test_bad_backends_file_exits_2(tmp_path):
    (tmp_path / "bad.yaml").write_text("backends:\n  - name: a\n    kind: sim\n    profile: no-such-profile\n")
    result = run_cli("race", "--backends", "bad.yaml", "--task", "long-essay", "--headless", cwd=tmp_path)
    assert_one_line(result, EXIT_USAGE, "bad.yaml:4: unknown sim profile")


@pytest.mark.parametrize("command", [["replay", "--headless"], ["export"]])
def test_bad_recording_exits_2(tmp_path, command):
    (tmp_path / "bad.jsonl").write_text('{"format": "thunderdome-recording", "version": 2}\n{not json\n')
    result = run_cli(command[0], "bad.jsonl", *command[1:], cwd=tmp_path)
    assert_one_line(result, EXIT_USAGE, "bad.jsonl:2: corrupt line")


def test_race_that_cannot_run_exits_1(tmp_path):
    """The CA file named by SSL_CERT_FILE is missing: no client for the
    remote backend can be built, so the race never starts (no network used)."""
    (tmp_path / "remote.yaml").write_text(
        "backends:\n  - name: remote\n    kind: openai\n    url: https://api.example.invalid/v1\n    model: m\n"
    )
    result = run_cli(
        "race", "--backends", "remote.yaml", "--task", "long-essay", "--headless", "--no-record",
        cwd=tmp_path, env={"SSL_CERT_FILE": str(tmp_path / "missing-ca.pem")},
    )
    assert_one_line(result, EXIT_FAILED, "race could not run: backend 'remote'")
