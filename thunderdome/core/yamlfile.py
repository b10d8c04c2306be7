"""YAML loading that remembers where each value came from.

Invariant: anything wrong with a config or task file becomes a ``ConfigError``
whose message is one line: ``FILE:LINE: problem``. Nothing here raises a
traceback at the user. Aliases (``&a`` / ``*a``, ``<<: *a``) work, but a
document that would expand to more than ``MAX_VALUES`` values (a "billion
laughs" bomb) is refused before anything is built from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from thunderdome.core.errors import UsageError
from thunderdome.core.readfile import MIB, FileRefused, read_limited


class ConfigError(UsageError):
    """A bad config or task file; ``str()`` is the one-line message."""


class LineDict(dict):
    """A mapping that knows its own line and each key's line (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A sequence that knows its own line and each item's line (1-based)."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


MAX_VALUES = 100_000
"""Most values (scalars, lists, mappings) a document may hold with every alias expanded."""


def _first_bomb(root: yaml.Node) -> yaml.Node | None:
    """The first node (children before parents) whose expansion holds more
    than MAX_VALUES values, or None. Shared nodes are sized once; a node
    inside its own expansion counts 0 here (the constructor refuses it)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes and not children_done:
            continue
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        if not children_done:
            sizes[id(node)] = 0  # in progress
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        size = 1 + sum(sizes[id(child)] for child in children)
        if size > MAX_VALUES:
            return node
        sizes[id(node)] = size
    return None


class _Loader(yaml.SafeLoader):
    def construct_document(self, node: yaml.Node) -> Any:
        bomb = _first_bomb(node)
        if bomb is not None:
            raise ConfigError(
                f"{bomb.start_mark.line + 1}: aliases expand to more than {MAX_VALUES} values (a YAML bomb?)"
            )
        return super().construct_document(node)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise ConfigError(f"{key_node.start_mark.line + 1}: unsupported mapping key")
        key = str(key)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; errors become ``ConfigError("source:line: ...")``."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except ConfigError as exc:  # raised as "LINE: problem"
        raise ConfigError(f"{source}:{exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if mark is not None and exc.context_mark is not None and mark.line >= len(text.splitlines()):
            mark = exc.context_mark  # "unexpected end of file": point at what was left open
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{source}:{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise ConfigError(f"{source}:1: invalid YAML: {first}") from None
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"{source}:1: invalid YAML: {exc}") from None


YAML_LIMIT = 4 * MIB
"""The largest task or backends file we read (setup files included)."""


def read_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file; unreadable, special (FIFO, device) or
    oversized files are ConfigErrors too, raised before reading much."""
    try:
        data = read_limited(path, YAML_LIMIT, "a YAML file")
    except FileRefused as exc:
        raise ConfigError(str(exc)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}:1: not UTF-8 text") from None
    return parse_yaml(text, str(path))


def line_of(obj: Any, key: str | None = None) -> int:
    """Best-known line for ``obj`` (or its ``key``); 1 if unknown."""
    if isinstance(obj, LineDict):
        return obj.line_of(key) if key else obj.line
    return getattr(obj, "line", 1) or 1
