"""The command-line contract: help, exit codes, one-line errors, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from thunderdome.cli import main


def run_cli(*args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "thunderdome", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_help_lists_every_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("demo", "race", "replay", "tasks", "backends", "sim", "sandbox", "export"):
        assert command in result.stdout


def test_help_does_not_import_textual_or_httpx():
    code = (
        "import sys, contextlib, io\n"
        "from thunderdome.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('textual', 'httpx', 'httpx2', 'rich') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["race", "--task", "sigkill"], "--backends"),
        (["replay", "x.jsonl", "--speed", "0"], "must be > 0"),
        (["demo", "--max-tokens", "many"], "not an integer"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_usage_is_one_line_exit_2(args, fragment, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert err.count("\n") == 1


def test_bad_backends_file_is_exit_2_with_file_line(tmp_path, capsys):
    path = tmp_path / "b.yaml"
    path.write_text("backends:\n  - name: a\n    kind: nope\n")
    assert main(["race", "--backends", str(path), "--task", "long-essay", "--headless"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3:" in err and "unknown kind" in err
    assert err.count("\n") == 1


def test_missing_backends_file_is_exit_2(tmp_path, capsys):
    assert main(["race", "--backends", str(tmp_path / "none.yaml"), "--task", "long-essay", "--headless"]) == 2
    assert "file not found" in capsys.readouterr().err


def test_json_into_missing_folder_is_exit_2(tmp_path, capsys):
    code = main(["demo", "--task", "long-essay", "--headless", "--json", str(tmp_path / "no" / "out.json")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_headless_race_writes_the_json_contract(tmp_path):
    backends = tmp_path / "backends.yaml"
    backends.write_text(
        "backends:\n"
        "  - {name: quick, kind: sim, profile: instant}\n"
        "  - {name: steady, kind: sim, profile: fast-local, protocol: ollama}\n"
        "  - {name: broken, kind: sim, profile: instant, protocol: anthropic, options: {fault: http_500}}\n"
    )
    out = tmp_path / "out.json"
    result = run_cli(
        "race", "--backends", str(backends), "--task", "long-essay", "--headless",
        "--max-tokens", "40", "--time-scale", "0.2", "--json", str(out), "--no-record",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    data = json.loads(out.read_text())
    assert set(data) >= {"race", "lanes", "winner"}
    lanes = {lane["name"]: lane for lane in data["lanes"]}
    assert lanes["quick"]["status"] == "winner"
    assert lanes["steady"]["status"] == "finished"
    assert lanes["broken"]["status"] == "error" and "500" in lanes["broken"]["error"]
    assert lanes["quick"]["tokens"] == 40 and lanes["quick"]["tokens_source"] == "usage"
    assert lanes["steady"]["tokens_source"] == "server"
    assert [lane["rank"] for lane in data["lanes"]] == [1, 2, 3]


def test_json_to_stdout_keeps_stdout_clean(tmp_path):
    result = run_cli(
        "demo", "--task", "long-essay", "--headless", "--json", "-", "--max-tokens", "20",
        "--time-scale", "0.05", "--no-record",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [lane["name"] for lane in data["lanes"]] == ["cloud", "dgx-spark", "rtx4090-offload"]
