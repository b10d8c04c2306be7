"""The wheel ships every package and the built-in tasks; the core (every
module outside ``thunderdome/tui``) imports without Textual."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

UI_PACKAGE = "thunderdome.tui"


def core_modules() -> list[str]:
    """Every module under thunderdome/ but the TUI's, by walking the files (so
    a new module is covered the day it lands); ``__main__`` modules run the
    program when imported, and their code is in the modules they call."""
    names = []
    for path in sorted((ROOT / "thunderdome").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != UI_PACKAGE and not name.startswith(UI_PACKAGE + "."):
            names.append(name)
    return names


def test_every_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "thunderdome").rglob("__init__.py")
    }
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"


def test_builtin_tasks_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["package-dir"]["thunderdome.builtin_tasks"] == "tasks"
    assert list((ROOT / "tasks").glob("*.yaml"))


def test_every_core_module_imports_without_textual():
    modules = core_modules()
    for expected in (
        "thunderdome.backends.openai", "thunderdome.backends.anthropic", "thunderdome.backends.ollama",
        "thunderdome.race.agent", "thunderdome.race.arena", "thunderdome.sandbox.runner",
        "thunderdome.sim.server", "thunderdome.sim.launch", "thunderdome.record", "thunderdome.replay",
    ):
        assert expected in modules  # the walk found the core
    code = (
        "import importlib, json, sys\n"
        "culprit = None\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    importlib.import_module(name)\n"
        "    if culprit is None and 'textual' in sys.modules:\n"
        "        culprit = name\n"
        "print(json.dumps(culprit))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(modules)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) is None, f"importing {json.loads(result.stdout)} loaded textual"
