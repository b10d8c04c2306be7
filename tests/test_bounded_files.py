"""Files from outside are read within bounds: a device, a FIFO or a huge
file is refused with one line (exit 2) instead of being read until memory
runs out or blocking forever; a task that cannot work is refused at load
with ``FILE:LINE``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from thunderdome.race.tasks import load_task_file
from thunderdome.core.readfile import FileRefused, read_limited
from thunderdome.core.yamlfile import ConfigError

BACKENDS = "backends:\n  - {name: a, kind: sim, profile: instant}\n"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # the timeout is a hang guard, not a timing assertion
    return subprocess.run([sys.executable, "-m", "thunderdome", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def specials(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.jsonl"
    with open(huge, "wb") as fh:  # sparse: 10 GB on paper, nothing on disk
        fh.truncate(10 * 1024**3)
    return {"zero": Path("/dev/zero"), "fifo": fifo, "huge": huge}


@pytest.mark.parametrize("which", ["zero", "fifo", "huge"])
@pytest.mark.parametrize("role", ["task", "backends", "replay"])
def test_special_or_huge_files_are_refused_in_one_line(specials, tmp_path, which, role):
    target = str(specials[which])
    backends = tmp_path / "b.yaml"
    backends.write_text(BACKENDS, encoding="utf-8")
    args = {
        "task": ["race", "--backends", str(backends), "--task", target, "--headless", "--no-record"],
        "backends": ["race", "--backends", target, "--task", "hello-file", "--headless", "--no-record"],
        "replay": ["replay", target, "--headless"],
    }[role]
    result = _cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and target in lines[0] and "Traceback" not in result.stderr
    expected = {"zero": "is a device", "fifo": "is a FIFO", "huge": "is 10.0 GiB"}[which]
    assert expected in lines[0]


def test_read_limited_stops_at_its_limit_even_when_the_size_lies(tmp_path):
    # /proc files say size 0 and still have content
    assert read_limited("/proc/self/status", 1 << 20, "a file").startswith(b"Name:")
    with pytest.raises(FileRefused, match="larger than"):
        read_limited("/proc/self/status", 10, "a file")


def _task(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(body, encoding="utf-8")
    return path


FIRST_CORRECT = """name: t
kind: thunderdome
win_rule: first_correct
user: {user}
checks: [{{kind: stdout_equals, value: "1"}}]
reference: "```bash\\necho 1\\n```"
"""


@pytest.mark.parametrize(
    ("setup", "line", "fragment"),
    [
        ('  a: "x"\n  a/b: "y"\n', 9, "'a/b' collides with 'a'"),
        ('  a/b: "y"\n  a: "x"\n', 9, "'a' collides with 'a/b'"),
        ('  a: "x"\n  ./a: "y"\n', 9, "collides"),
        ('  .: "x"\n', 8, "must be relative"),
        ('  "": "x"\n', 8, "must be relative"),
        ('  "a\\0b": "x"\n', 8, "control character"),
        (f'  {"n" * 300}: "x"\n', 8, "too long"),
    ],
    ids=["file-then-folder", "folder-then-file", "same-file-twice", "dot", "empty", "nul", "too-long"],
)
def test_bad_setup_file_names_are_refused_at_load(tmp_path, setup, line, fragment):
    path = _task(tmp_path, FIRST_CORRECT.format(user="hi") + "setup_files:\n" + setup)
    with pytest.raises(ConfigError) as info:
        load_task_file(path)
    assert str(info.value).startswith(f"{path}:{line}:") and fragment in str(info.value)


@pytest.mark.parametrize("field", ["{lane:>3000000000}", "{task!r}", "{pid.real}", "{opponents[0]}"])
def test_a_prompt_field_with_a_format_spec_is_refused(tmp_path, field):
    path = _task(tmp_path, FIRST_CORRECT.format(user=f"'you are {field}'"))
    with pytest.raises(ConfigError, match=rf"^{path}:4: 'user': write"):
        load_task_file(path)


def test_shell_braces_and_plain_fields_still_load(tmp_path):
    path = _task(tmp_path, FIRST_CORRECT.format(user="\"awk '{print $1}' for {lane} in {workdir} {unknown:>9}\""))
    assert "{print $1}" in load_task_file(path).user


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [("timeout: 0.001\n", "'timeout' must be a number of seconds from 0.1"),
     ("timeout: 5\nexec_timeout: 10\n", "longer than the race's 'timeout'"),
     ("timeout: .nan\n", "'timeout' must be")],
)
def test_timeouts_that_cannot_work_are_refused(tmp_path, extra, fragment):
    path = _task(tmp_path, FIRST_CORRECT.format(user="hi") + extra)
    with pytest.raises(ConfigError, match=fragment):
        load_task_file(path)


def test_render_prompt_fills_plain_fields_only():
    from thunderdome.race.engine import render_prompt

    values = {"lane": "a", "pid": 7}
    assert render_prompt("{lane} {pid} {lane:>3000000000} {pid.real} {x} awk '{print $1}' ${HOME}", values) == (
        "a 7 {lane:>3000000000} {pid.real} {x} awk '{print $1}' ${HOME}"
    )
