"""Fuzzed backends files never produce anything but a one-line ConfigError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thunderdome.config import load_backends
from thunderdome.core.yamlfile import MAX_VALUES, ConfigError, parse_yaml

VALID = (
    "backends:\n"
    "  - name: a\n"
    "    kind: openai\n"
    "    url: http://127.0.0.1:9/v1\n"
    "    model: m\n"
    "    timeouts: {idle: 5}\n"
    "  - name: b\n"
    "    kind: sim\n"
    "    profile: cloud\n"
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["name", "kind", "url", "model", "profile", "options", "timeouts", "api_key_env", "price", "x"]), children, max_size=6),
    ),
    max_leaves=20,
)


def _load_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "b.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_backends(path)
        except ConfigError as exc:
            message = str(exc)
            assert message and "\n" not in message
            assert message.startswith(str(path))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text_is_a_config_error_or_loads(text):
    _load_text(text)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.integers(1, 40), st.text(max_size=8))
def test_mutated_valid_file(start, length, junk):
    _load_text(VALID[:start] + junk + VALID[start + length:])


@settings(max_examples=300, deadline=None)
@given(st.lists(values, max_size=4))
def test_structured_garbage(entries):
    import yaml

    _load_text(yaml.safe_dump({"backends": entries}))


def _tenfold(levels: int) -> str:
    """``l0`` holds 10 strings, each ``l{i}`` holds ``l{i-1}`` 10 times (by alias)."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_yaml_bombs_are_refused_at_their_line():
    # 10**10 strings when expanded; l4 (line 5, 111 111 values) is the first past the limit
    with pytest.raises(ConfigError) as info:
        parse_yaml(_tenfold(9), "bomb.yaml")
    assert str(info.value) == f"bomb.yaml:5: aliases expand to more than {MAX_VALUES} values (a YAML bomb?)"


def test_aliases_within_the_limit_load():
    assert parse_yaml(_tenfold(3), "ok.yaml")["l3"][9][9][9] == ["x"] * 10
