"""The README's emulator sample works as written (issue #11.17).

The backends file and the commands are read out of README.md ("Try it on the
emulator first"), not copied here: ``thunderdome sim serve`` is started as
the README says (on a free port instead of 8765, so parallel runs cannot
collide), then each race command runs through the real CLI in a subprocess
over loopback, and each race has a winner."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
CLI = ".venv/bin/thunderdome"
README_PORT = "8765"


def sample() -> tuple[str, list[str]]:
    """The section's backends file and its command lines (comments dropped)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Try it on the emulator first"):]
    yaml = re.search(r"```yaml\n(.*?)```", section, re.S)
    bash = re.search(r"```bash\n(.*?)```", section, re.S)
    assert yaml and bash and yaml.start() < bash.start()
    lines = [line.split("#", 1)[0].strip() for line in bash.group(1).splitlines()]
    return yaml.group(1), [line for line in lines if line]


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def argv(line: str) -> list[str]:
    words = shlex.split(line)
    assert words[0] == CLI, line
    return [sys.executable, "-m", "thunderdome", *words[1:]]


def test_the_readme_emulator_sample_runs_as_written(tmp_path: Path) -> None:
    backends, commands = sample()
    serve, *races, stop = commands
    assert serve.endswith("&") and "sim serve" in serve and stop == "kill %1"
    assert f"127.0.0.1:{README_PORT}" in backends and f"--port {README_PORT}" in serve
    port = free_port()
    (tmp_path / "backends.yaml").write_text(backends.replace(README_PORT, port), encoding="utf-8")
    env = {**os.environ, "THUNDERDOME_RECORDINGS": str(tmp_path / "recordings"), "COLUMNS": "120"}
    server = subprocess.Popen(argv(serve.rstrip("&").replace(README_PORT, port)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == f"listening on http://127.0.0.1:{port}"
        assert len(races) == 2
        for line in races:
            result = subprocess.run(argv(line), capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            assert re.search(r"🏆 winner: \S+", result.stdout), (line, result.stdout, result.stderr)
            assert "error" not in result.stdout.lower(), result.stdout  # no lane failed (no 404, no cut)
        results = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
        assert results["winner"] and {lane["status"] for lane in results["lanes"]} <= {"winner", "finished"}
        assert {lane["tokens"] for lane in results["lanes"]} == {100}
    finally:
        server.terminate()
        server.wait(timeout=10)
