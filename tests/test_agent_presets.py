"""Agent presets and the ``program`` field: pure, so tested as data.

What each preset starts, with what config, pointed where; how a backends
entry names an agent and is refused when it names one badly; the sample file
the README shows.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

from thunderdome.agents.binaries import mounts_for
from thunderdome.agents.lane import relayed_summary, shell_command
from thunderdome.agents.presets import AGENT_KEY, PRESETS, Launch
from thunderdome.config import load_backends
from thunderdome.core.events import ToolCallDone
from thunderdome.gateway import Relayed
from thunderdome.core.yamlfile import ConfigError

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = Launch(prompt="Write 'hi' > a.txt; $(rm -rf /) {model}", base_url="http://127.0.0.1:4010", model="cloud",
                workdir="/work", home="/home/sandbox")


def test_the_readme_shows_the_sample_file_and_the_sample_loads():
    sample = (ROOT / "examples" / "agents.yaml").read_text()
    assert f"```yaml\n{sample}```" in (ROOT / "README.md").read_text()
    specs = load_backends(ROOT / "examples" / "agents.yaml")
    assert [(s.program, s.protocol) for s in specs] == [
        ("claude-code", "anthropic"), ("codex", "responses"), ("opencode", "openai"), (None, "openai")]


@pytest.mark.parametrize(
    "entry, line, problem",
    [
        ("program: cline", 5, "unknown program 'cline' (use one of: claude-code, codex, opencode, command)"),
        ("program: command", 5, "program: command needs a 'command' template"),
        ("program: codex\n    command: codex exec {prompt}", 6, "'command' goes with program: command"),
    ],
)
def test_a_bad_program_is_one_line_naming_the_file_and_line(tmp_path, entry, line, problem):
    path = tmp_path / "b.yaml"
    path.write_text(f"backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    {entry}\n")
    with pytest.raises(ConfigError) as info:
        load_backends(path)
    assert str(info.value) == f"{path}:{line}: {problem}"


def test_a_sim_lane_keeps_the_protocol_it_names(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("backends:\n  - name: a\n    kind: sim\n    profile: cloud\n    program: opencode\n    protocol: ollama\n")
    assert load_backends(path)[0].protocol == "ollama"


def test_claude_code_is_pointed_at_its_gateway_with_the_throwaway_key():
    preset = PRESETS["claude-code"]
    argv, env = preset.argv(LAUNCH), preset.env(LAUNCH)
    assert argv[:3] == ["claude", "-p", LAUNCH.prompt] and argv[argv.index("--model") + 1] == "cloud"
    assert "--dangerously-skip-permissions" in argv
    assert env["ANTHROPIC_BASE_URL"] == LAUNCH.base_url and env["ANTHROPIC_API_KEY"] == AGENT_KEY
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"


def test_codex_gets_a_responses_provider_at_its_gateway():
    preset = PRESETS["codex"]
    files, env = preset.files(LAUNCH), preset.env(LAUNCH)
    config = tomllib.loads(files[".codex/config.toml"])
    provider = config["model_providers"][config["model_provider"]]
    assert provider["base_url"] == "http://127.0.0.1:4010/v1" and provider["wire_api"] == "responses"
    assert env[provider["env_key"]] == AGENT_KEY and env["CODEX_HOME"] == "/home/sandbox/.codex"
    assert config["model"] == "cloud" and preset.argv(LAUNCH)[:2] == ["codex", "exec"]


def test_opencode_gets_an_openai_compatible_provider_at_its_gateway():
    preset = PRESETS["opencode"]
    config = json.loads(preset.files(LAUNCH)[".config/opencode/opencode.json"])
    provider = config["provider"]["thunderdome"]
    assert provider["options"] == {"baseURL": "http://127.0.0.1:4010/v1", "apiKey": AGENT_KEY}
    assert list(provider["models"]) == ["cloud"]
    argv = preset.argv(LAUNCH)
    assert argv[:2] == ["opencode", "run"] and argv[argv.index("--model") + 1] == "thunderdome/cloud"
    assert config["enabled_providers"] == ["thunderdome"]


def test_opencode_starts_without_its_side_work():
    """No title request, no update check, and an empty model catalogue in its HOME
    (parsing the one built in cost seconds of CPU before the first request)."""
    preset = PRESETS["opencode"]
    argv, env, files = preset.argv(LAUNCH), preset.env(LAUNCH), preset.files(LAUNCH)
    assert argv[argv.index("--title") + 1] and argv[-1] == LAUNCH.prompt
    catalogue = env["OPENCODE_MODELS_PATH"]
    assert catalogue.startswith(LAUNCH.home + "/") and json.loads(files[catalogue[len(LAUNCH.home) + 1:]]) == {}
    assert env["OPENCODE_DISABLE_AUTOUPDATE"] == env["OPENCODE_DISABLE_MODELS_FETCH"] == "1"


def test_a_command_template_gets_every_field_shell_quoted_once():
    launch = Launch(**{**LAUNCH.__dict__, "command": "printf '%s|' {prompt} {model} {base_url} {api_key} {unknown}"})
    argv = PRESETS["command"].argv(launch)
    assert argv[:2] == ["bash", "-c"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert out == f"{LAUNCH.prompt}|cloud|{LAUNCH.base_url}|{AGENT_KEY}|{{unknown}}|"  # {model} in the prompt stays
    assert shlex.quote(LAUNCH.prompt) in argv[2]


def test_every_preset_says_how_to_install_it():
    for name in ("claude-code", "codex", "opencode"):
        assert re.fullmatch(r"npm install -g (@[\w-]+/)?[\w-]+@\d+\.\d+\.\d+", PRESETS[name].install_hint())


def _call(arguments: str) -> ToolCallDone:
    return ToolCallDone(t=1.0, lane="a", turn=1, call_id="c", name="bash", arguments=arguments)


def test_the_command_a_tool_call_asks_for():
    assert shell_command(_call('{"command": "ls -l"}')) == "ls -l"
    assert shell_command(_call('{"cmd": "echo hi > a.txt", "workdir": "/work"}')) == "echo hi > a.txt"
    assert shell_command(_call('{"command": ["bash", "-lc", "ls -l"]}')) == "bash -lc 'ls -l'"
    assert shell_command(_call('{"path": "a.txt"}')) is None
    assert shell_command(_call("{not json")) is None


def test_what_the_gateway_relayed_in_one_line():
    relayed = [Relayed("GET", "/v1/models"), Relayed("POST", "/v1/messages", turn=1), Relayed("POST", "/v1/messages", turn=2),
               Relayed("POST", "/v1/messages", chat=True)]
    assert relayed_summary(relayed) == ("1 x GET /v1/models, 2 x POST /v1/messages (streamed), "
                                        "1 x POST /v1/messages (not streamed)")
    assert relayed_summary([]) == "nothing"


def test_an_agent_installed_under_a_prefix_is_mounted_from_that_prefix(tmp_path):
    package = tmp_path / "lib" / "node_modules" / "agent" / "bin"
    package.mkdir(parents=True)
    (package / "agent.js").write_text("")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "agent").symlink_to(package / "agent.js")
    binds = mounts_for(str(tmp_path / "bin" / "agent"))
    assert [(b.host, b.inside, b.writable) for b in binds] == [(str(tmp_path), str(tmp_path), False)]
    assert mounts_for("/usr/bin/bash") == ()  # every sandbox sees /usr already
