"""No import cycles: the import graph, read from the source with ``ast``.

Two graphs, both built without importing anything:

- every module of the package, with the imports that run when it is imported
  (module and class bodies, ``try``/``if`` included; ``if TYPE_CHECKING:``
  excluded): a cycle there makes the import order matter; and the same with
  the ``TYPE_CHECKING`` imports, which must not close a cycle either (two
  modules that each need the other to be read);
- the layers the folders name (core, engine, recordings, sources, consumers,
  command line), with every import, deferred ones (inside functions)
  included: a cycle there means two layers lean on each other, as the race
  and the replay once did (``replay.py`` -> ``race/source.py`` -> ``record``).

On the second graph, two rules that tell the story: imports only go down
the layers (core first, the command line last), and the consumers are peers
(no consumer but the command line reaches into the TUI, and the TUI uses
neither the headless reporter nor its report).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "thunderdome"

LAYERS = {
    "core": ("core", ""),
    "engine": ("backends", "sim", "sandbox", "race", "config", "gateway", "agents"),
    "recordings": ("recording",),
    "sources": ("sources",),
    "consumers": ("tui", "output"),
    "command line": ("cli", "commands", "__main__"),
}
"""Each layer by the first name under ``thunderdome`` ("" is the package's
own ``__init__``). ``config`` checks backends against the emulator's
profiles, so it sits with the engine; the recorder sits below the sources
(a source hands it events)."""


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(body: list[ast.stmt], deferred: bool, typing: bool = False) -> list[ast.Import | ast.ImportFrom]:
    """The import statements in ``body``; in function bodies too if
    ``deferred``; under ``if TYPE_CHECKING:`` too if ``typing``."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node) and not typing:
            found.extend(_import_nodes(node.orelse, deferred, typing))
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or deferred:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                for child in getattr(node, field, []):
                    inner = child.body if isinstance(child, (ast.ExceptHandler, ast.match_case)) else [child]
                    found.extend(_import_nodes(inner, deferred, typing))
    return found


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The package module ``name`` refers to (its nearest enclosing module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(*, deferred: bool, typing: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules it imports (``typing``: the imports
    for type checkers only as well)."""
    modules = module_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8")).body, deferred, typing):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                # ``from pkg import mod`` imports the module ``pkg.mod``
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                found = _target(target, modules)
                if found is not None and found != name:
                    graph[name].add(found)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as a path (first node repeated at its end), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def layer_of(module: str) -> str:
    first = module.split(".")[1] if "." in module else ""
    for layer, names in LAYERS.items():
        if first in names:
            return layer
    raise AssertionError(f"{module} belongs to no layer: add {first!r} to LAYERS")


def test_the_graph_reader_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
    tree = ast.parse(
        "import x\nif TYPE_CHECKING:\n    import y\ntry:\n    import z\nexcept ImportError:\n    import w\n"
        "def f():\n    import v\n"
    )

    def names(deferred: bool) -> list[str]:
        return sorted(alias.name for node in _import_nodes(tree.body, deferred) for alias in node.names)

    assert names(False) == ["w", "x", "z"]
    assert names(True) == ["v", "w", "x", "z"]
    assert sorted(a.name for node in _import_nodes(tree.body, False, typing=True) for a in node.names) == ["w", "x", "y", "z"]


def test_the_graph_reads_the_real_package():
    graph = import_graph(deferred=True)
    assert "thunderdome.sources.recorded_race" in graph["thunderdome.output.headless"]
    assert "thunderdome.race.runner" in graph["thunderdome.sources.recorded_race"]
    assert "thunderdome.sources.base" in graph["thunderdome.sources.replay"]


def test_no_module_imports_itself_back_at_import_time():
    cycle = find_cycle(import_graph(deferred=False))
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_no_two_modules_lean_on_each_other_even_for_types():
    """A type-only import back (``if TYPE_CHECKING:``) is still two modules
    that each need the other to be read: name what is needed in a Protocol."""
    cycle = find_cycle(import_graph(deferred=False, typing=True))
    assert not cycle, "import cycle (type checking included): " + " -> ".join(cycle)


def test_no_two_layers_import_each_other_even_lazily():
    graph = import_graph(deferred=True)
    layers: dict[str, set[str]] = {layer: set() for layer in LAYERS}
    why: dict[tuple[str, str], str] = {}
    for module, imported in graph.items():
        for target in imported:
            a, b = layer_of(module), layer_of(target)
            if a != b:
                layers[a].add(b)
                why.setdefault((a, b), f"{module} imports {target}")
    cycle = find_cycle(layers)
    assert not cycle, "layer cycle: " + "; ".join(why[(x, y)] for x, y in zip(cycle, cycle[1:]))


def test_replay_and_record_import_no_race_and_no_source():
    graph = import_graph(deferred=True)
    for module in ("thunderdome.recording.replay", "thunderdome.recording.record"):
        assert not {m for m in graph[module] if layer_of(m) in ("engine", "sources", "consumers")}, graph[module]


def test_imports_only_go_down_the_layers():
    """The layers in ``LAYERS`` order, core first: a module imports its own
    layer or one before it, never one after (core knows no engine, sources
    no consumer, a consumer no command line)."""
    order = {layer: i for i, layer in enumerate(LAYERS)}
    graph = import_graph(deferred=True)
    upward = [
        f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
        for module, imported in sorted(graph.items())
        for target in sorted(imported)
        if order[layer_of(target)] > order[layer_of(module)]
    ]
    assert not upward, "\n".join(upward)


def test_the_tui_is_a_peer_no_other_consumer_reads():
    """The consumers are peers on the event stream: only the command line
    starts the TUI, and the TUI shows the race without the headless
    reporter's code (it writes exports through ``export``, as the CLI does)."""
    graph = import_graph(deferred=True)
    into_tui = sorted(
        f"{module} imports {target}"
        for module, imported in graph.items()
        if not module.startswith("thunderdome.tui") and layer_of(module) != "command line"
        for target in imported
        if target.startswith("thunderdome.tui")
    )
    assert not into_tui, into_tui
    tui_reads = {target for module, imported in graph.items() if module.startswith("thunderdome.tui") for target in imported}
    assert not tui_reads & {"thunderdome.output.headless", "thunderdome.output.report"}, sorted(tui_reads)
