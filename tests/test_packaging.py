"""The wheel ships every package and the built-in tasks; the core (every
module outside ``thunderdome/tui``) imports without Textual."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
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
        "thunderdome.sim.server", "thunderdome.sim.launch", "thunderdome.recording.record", "thunderdome.recording.replay",
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


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _imported_distributions() -> dict[str, set[str]]:
    """Third-party distributions that ``thunderdome/`` imports (lazy imports
    too), each with the files that import it."""
    provides = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in (ROOT / "thunderdome").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "thunderdome":
                    continue
                for dist in provides.get(top, [top]):
                    found.setdefault(dist.lower().replace("_", "-"), set()).add(str(path.relative_to(ROOT)))
    return found


def test_runtime_dependencies_are_exactly_what_the_package_imports():
    """Every third-party import is declared (or comes with a declared
    dependency, as anyio and httpcore2 come with httpx2), and every declared
    dependency is imported somewhere: none is kept out of habit."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = {_requirement_name(r) for r in config["project"]["dependencies"]}
    brought = {_requirement_name(r) for d in declared for r in importlib.metadata.requires(d) or [] if "extra ==" not in r}
    imported = _imported_distributions()
    undeclared = {d: sorted(files) for d, files in imported.items() if d not in declared | brought}
    assert not undeclared, f"imported but not a dependency: {undeclared}"
    unused = declared - set(imported)
    assert not unused, f"declared but never imported: {sorted(unused)}"
