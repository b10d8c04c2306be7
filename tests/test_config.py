"""Backends YAML: valid files load; every bad file is one line with file:line."""

from __future__ import annotations

import textwrap

import pytest

from thunderdome.config import demo_backends, find_backends_file, load_backends
from thunderdome.yamlfile import ConfigError


def write(tmp_path, text, name="backends.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_design_example_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("HOSTED_API_KEY", "sk-test-not-a-real-key")
    path = write(
        tmp_path,
        """
        backends:
          - name: spark                 # lane label
            kind: ollama
            url: http://spark.local:11434
            model: gpt-oss:120b
          - name: hosted
            kind: openai
            url: https://api.example.com/v1
            model: gpt-oss-120b
            api_key_env: HOSTED_API_KEY
            price: {input_per_mtok: 0.10, output_per_mtok: 0.50}
          - name: sim-4090
            kind: sim
            profile: rtx4090-offload
        """,
    )
    specs = load_backends(path)
    assert [s.name for s in specs] == ["spark", "hosted", "sim-4090"]
    hosted = specs[1]
    assert hosted.api_key() == "sk-test-not-a-real-key"
    assert "sk-test" not in repr(hosted.public_dict())
    assert hosted.public_dict()["api_key_env"] == "HOSTED_API_KEY"
    assert specs[2].model == "rtx4090-offload" and specs[2].wire_kind == "openai"


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("backends:\n  - name: a\n    kind: grpc\n    url: http://x\n    model: m\n", 3, "unknown kind 'grpc'"),
        ("backends:\n  - kind: openai\n    url: http://x\n    model: m\n", 2, "missing 'name'"),
        ("backends:\n  - name: a\n    kind: openai\n    model: m\n", 2, "missing 'url'"),
        ("backends:\n  - name: a\n    kind: openai\n    url: http://x\n", 2, "missing 'model'"),
        ("backends:\n  - name: a\n    kind: openai\n    url: ftp://x\n    model: m\n", 4, "http://"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: warp9\n", 4, "unknown sim profile 'warp9'"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    colour: red\n", 5, "unknown field 'colour'"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n  - name: a\n    kind: sim\n    profile: cloud\n", 5, "duplicate backend name 'a'"),
        ("backends:\n  - name: a\n    kind: openai\n    url: http://x\n    model: m\n    api_key_env: NOT_SET_ANYWHERE_42\n", 6, "NOT_SET_ANYWHERE_42 is not set"),
        ("backends:\n  - name: a\n    kind: openai\n    url: http://x\n    model: m\n    api_key_env: sk-abc.def\n", 6, "variable name"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    timeouts: {idle: -1}\n", 5, "positive number"),
        ("backends:\n  - name: a\n    kind: openai\n    url: http://x\n    model: m\n    options: {fault: drop_mid}\n", 6, "sim backends only"),
        ("backends:\n  - name: [a\n", 2, "invalid YAML"),
        ("backends: {}\n", 1, "non-empty list"),
        ("just a string\n", 1, "expected a 'backends:' list"),
        ("backends:\n  - 42\n", 2, "must be a mapping"),
        ("backends:\n  - name: a\n    name: b\n    kind: sim\n", 3, "duplicate key 'name'"),
    ],
)
def test_bad_files_name_file_line_and_problem(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_backends(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}:"), message
    assert fragment in message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_backends(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_backends(tmp_path)


def test_binary_file(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_backends(path)


def test_missing_key_allowed_when_only_listing(tmp_path):
    path = write(tmp_path, "backends:\n  - name: a\n    kind: openai\n    url: http://x\n    model: m\n    api_key_env: NOT_SET_ANYWHERE_42\n")
    assert load_backends(path, require_keys=False)[0].api_key() is None


def test_find_backends_file_prefers_current_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert find_backends_file(tmp_path) is None
    (tmp_path / "cfg" / "thunderdome").mkdir(parents=True)
    home_file = tmp_path / "cfg" / "thunderdome" / "backends.yaml"
    home_file.write_text("backends: []\n")
    assert find_backends_file(tmp_path) == home_file
    local = tmp_path / "thunderdome.yaml"
    local.write_text("backends: []\n")
    assert find_backends_file(tmp_path) == local


def test_demo_backends_are_the_public_three():
    specs = demo_backends()
    assert [s.profile for s in specs] == ["cloud", "dgx-spark", "rtx4090-offload"]
    assert all(s.kind == "sim" for s in specs)
