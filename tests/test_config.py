"""Backends YAML: valid files load; every bad file is one line with file:line,
sim options included (checked when the file loads, as the emulator checks them)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from thunderdome.config import demo_backends, find_backends_file, load_backends
from thunderdome.sim import directives
from thunderdome.sim.options import SIM_OPTIONS
from thunderdome.core.yamlfile import ConfigError

ROOT = Path(__file__).resolve().parent.parent


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
    assert hosted.price == {"input_per_mtok": 0.10, "output_per_mtok": 0.50} == hosted.public_dict()["price"]


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
        ("backends:\n  - name: a\n    kind: openai\n    url: http://x\n    model: m\n    options:\n      seed: 1\n      reply: hi\n", 8, "'reply' is for sim backends only"),
        ("backends:\n  - name: a\n    kind: ollama\n    url: http://x\n    model: m\n    options: {tokens: 5}\n", 6, "'tokens' is for sim backends only"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    options:\n      fault: drop_middle\n", 6, "option 'fault': unknown fault 'drop_middle'"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    options:\n      temperature: 0\n      wrong_rate: 2\n", 7, "option 'wrong_rate': out of range"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    options: {timings: yes please}\n", 5, "option 'timings': must be true or false"),
        ("backends:\n  - name: [a\n", 2, "invalid YAML"),
        ("backends: {}\n", 1, "non-empty list"),
        ("just a string\n", 1, "expected a 'backends:' list"),
        ("backends:\n  - 42\n", 2, "must be a mapping"),
        ("backends:\n  - name: a\n    name: b\n    kind: sim\n", 3, "duplicate key 'name'"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    price:\n      input_per_mtok: 1\n      per_call: 2\n", 7, "unknown price 'per_call'"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    price:\n      output_per_mtok: -0.5\n", 6, "price output_per_mtok must be a number of dollars >= 0"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    price:\n      output_per_mtok: true\n", 6, "price output_per_mtok must be"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    price:\n      output_per_mtok: .inf\n", 6, "price output_per_mtok must be"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    price: 0.5\n", 5, "price must map input_per_mtok and/or output_per_mtok"),
        ("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    price: {}\n", 5, "price must map"),
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


def test_aliases_and_merge_keys_work(tmp_path):
    path = write(
        tmp_path,
        """
        shared: &shared {kind: sim, protocol: ollama}
        backends:
          - {name: a, profile: cloud, <<: *shared}
          - {name: b, profile: dgx-spark, <<: *shared}
        """,
    )
    assert [(s.name, s.protocol) for s in load_backends(path)] == [("a", "ollama"), ("b", "ollama")]


def test_every_sim_option_is_a_directive_field():
    fields = set(directives.Directives.__dataclass_fields__) - {"quirks"}  # quirks come from 'fault'
    assert set(SIM_OPTIONS) == fields


@pytest.mark.parametrize(
    "key, value",
    [
        ("fault", "drop_mid"), ("fault", "drop_mid,trickle"), ("fault", ["keepalive"]), ("fault", "nope"),
        ("fault", "drop_mid,cut"), ("fault", 3), ("fault_at", 2), ("fault_at", -1), ("fault_at", 1.5),
        ("wrong_rate", 0.5), ("wrong_rate", 1.5), ("wrong_rate", True), ("seed", 7), ("seed", "7"),
        ("time_scale", 0), ("time_scale", 5000), ("stall_s", 0.5), ("stall_s", -2), ("tokens", 40),
        ("tokens", 2_000_000), ("reply", "hi"), ("reply", 5), ("reasoning", ["a"]), ("wrong_reply", "x"),
        ("reasoning_field", "reasoning"), ("reasoning_field", "thoughts"), ("timings", True), ("timings", 1),
    ],
)
def test_the_file_accepts_a_sim_option_exactly_when_the_emulator_does(tmp_path, key, value):
    path = write(tmp_path, f"backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    options: {{{key}: {json.dumps(value)}}}\n")
    try:
        directives.parse({directives.FIELD: {key: value}}, {})
        emulator_accepts = True
    except ValueError:
        emulator_accepts = False
    try:
        load_backends(path)
        file_accepts = True
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}:5: option {key!r}: "), exc
        file_accepts = False
    assert file_accepts == emulator_accepts


def test_loading_a_sim_backends_file_imports_neither_httpx_nor_the_server(tmp_path):
    path = write(tmp_path, "backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    options: {fault: drop_mid, seed: 2}\n")
    code = (
        "import sys\n"
        "from thunderdome.config import load_backends\n"
        f"assert load_backends({str(path)!r})[0].options['fault'] == 'drop_mid'\n"
        "print(sorted(m for m in ('httpx', 'httpx2', 'thunderdome.sim.server', 'thunderdome.sim.launch') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_an_unknown_sim_fault_is_exit_2_at_load_through_the_cli(tmp_path):
    path = write(tmp_path, "backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    options:\n      seed: 1\n      fault: drop_middle\n")
    result = subprocess.run(
        [sys.executable, "-m", "thunderdome", "race", "--backends", str(path), "--task", "long-essay", "--headless"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert f"{path}:7: option 'fault': unknown fault 'drop_middle'" in line
