"""Agent presets: how each real coding agent is started against its gateway.

Invariant: pure data and string building, no I/O. A preset turns a ``Launch``
(the prompt, the gateway's base URL as the agent must see it, the throwaway
key, the lane's model) into the argv, the environment and the config files
(paths relative to the agent's throwaway HOME) that make the agent talk only
to that URL with that key. The real key is never an input here. ``command``
is the template for any other agent: its ``{fields}`` are filled shell-quoted.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Callable

AGENT_KEY = "sk-thunderdome-throwaway"
"""The only key an agent ever holds; the gateway drops it and adds the real one."""
TEMPLATE_FIELDS = ("prompt", "base_url", "api_key", "model", "workdir", "home")
"""What a ``command`` template may name (``{prompt}``, ...); each is shell-quoted."""
_FIELD = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Launch:
    """What an agent is started with."""

    prompt: str
    base_url: str
    """The gateway as the agent reaches it, e.g. ``http://127.0.0.1:4010`` (no ``/v1``)."""
    model: str
    workdir: str
    home: str
    api_key: str = AGENT_KEY
    command: str = ""
    """Custom agents only: the command template."""


@dataclass(frozen=True)
class Preset:
    """One agent program."""

    name: str
    binary: str
    """The executable's name (looked up on the agents' bin dir, then PATH)."""
    package: str
    """The npm package and the version the tests pin."""
    protocol: str
    """The wire protocol it speaks (what a sim lane's emulator is asked in)."""
    argv: Callable[[Launch], list[str]]
    env: Callable[[Launch], dict[str, str]] = lambda launch: {}
    files: Callable[[Launch], dict[str, str]] = lambda launch: {}
    sends: str = ""
    """What it sends through the gateway (the README's table)."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def install_hint(self) -> str:
        return f"npm install -g {self.package}" if self.package else "put it on PATH"


def _claude_argv(launch: Launch) -> list[str]:
    return ["claude", "-p", launch.prompt, "--model", launch.model, "--dangerously-skip-permissions",
            "--allowedTools", "Bash", "--output-format", "text", "--no-session-persistence"]


def _claude_env(launch: Launch) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": launch.base_url,
        "ANTHROPIC_API_KEY": launch.api_key,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": launch.model,  # side requests name the lane's model too
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }


def _codex_argv(launch: Launch) -> list[str]:
    return ["codex", "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
            "--model", launch.model, launch.prompt]


def _codex_files(launch: Launch) -> dict[str, str]:
    config = "\n".join([
        f"model = {json.dumps(launch.model)}",
        'model_provider = "thunderdome"',
        "",
        "[model_providers.thunderdome]",
        'name = "thunderdome gateway"',
        f"base_url = {json.dumps(launch.base_url + '/v1')}",
        'wire_api = "responses"',
        'env_key = "THUNDERDOME_AGENT_KEY"',
        "",
    ])
    return {".codex/config.toml": config}


def _codex_env(launch: Launch) -> dict[str, str]:
    return {"CODEX_HOME": f"{launch.home}/.codex", "THUNDERDOME_AGENT_KEY": launch.api_key}


OPENCODE_MODELS = ".config/opencode/models.json"
"""OpenCode's model catalogue, empty: the gateway's provider names its one model
itself, and parsing the catalogue built into the binary (models.dev's, every
provider's) took 1.5-2.5 s of CPU before the first request."""


def _opencode_argv(launch: Launch) -> list[str]:
    # --title: the session is named by the prompt, not by a title request to the model
    return ["opencode", "run", "--model", f"thunderdome/{launch.model}", "--title", "thunderdome", launch.prompt]


def _opencode_files(launch: Launch) -> dict[str, str]:
    config = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "enabled_providers": ["thunderdome"],
        "permission": {"bash": "allow", "edit": "allow"},
        "provider": {
            "thunderdome": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Thunderdome gateway",
                "options": {"baseURL": launch.base_url + "/v1", "apiKey": launch.api_key},
                "models": {launch.model: {"name": launch.model, "tool_call": True}},
            }
        },
    }
    return {".config/opencode/opencode.json": json.dumps(config, indent=2) + "\n", OPENCODE_MODELS: "{}\n"}


def _opencode_env(launch: Launch) -> dict[str, str]:
    # None of these is the agent's own work: update checks, fetching models.dev, default
    # plugins, sharing, LSP downloads and Claude Code file lookups (offline, a fetch
    # waits for its timeout before the first request: models.dev alone ~8 s).
    offline = ("AUTOUPDATE", "MODELS_FETCH", "DEFAULT_PLUGINS", "SHARE", "LSP_DOWNLOAD", "CLAUDE_CODE", "EXTERNAL_SKILLS")
    return {"XDG_CONFIG_HOME": f"{launch.home}/.config", "OPENCODE_MODELS_PATH": f"{launch.home}/{OPENCODE_MODELS}",
            **{f"OPENCODE_DISABLE_{name}": "1" for name in offline}}


def _command_argv(launch: Launch) -> list[str]:
    values = {name: shlex.quote(getattr(launch, name)) for name in TEMPLATE_FIELDS}
    return ["bash", "-c", render_template(launch.command, values)]


def render_template(template: str, values: dict[str, str]) -> str:
    """``{field}`` of ``TEMPLATE_FIELDS`` filled; anything else in braces left as written."""
    return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _command_env(launch: Launch) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": launch.base_url + "/v1",
        "OPENAI_API_KEY": launch.api_key,
        "ANTHROPIC_BASE_URL": launch.base_url,
        "ANTHROPIC_API_KEY": launch.api_key,
        "OLLAMA_HOST": launch.base_url,
    }


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("claude-code", "claude", "@anthropic-ai/claude-code@2.1.332", "anthropic", _claude_argv, _claude_env,
               sends="POST /v1/messages?beta=true (streamed)"),
        Preset("codex", "codex", "@openai/codex@0.171.0", "responses", _codex_argv, _codex_env, _codex_files,
               sends="POST /v1/responses (streamed)"),
        Preset("opencode", "opencode", "opencode-ai@1.18.33", "openai", _opencode_argv, _opencode_env, _opencode_files,
               sends="POST /v1/chat/completions (streamed)"),
        Preset("command", "bash", "", "openai", _command_argv, _command_env,
               sends="whatever the command sends: OPENAI_BASE_URL, ANTHROPIC_BASE_URL and OLLAMA_HOST name the gateway"),
    )
}
"""Every agent a backend entry's ``program`` may name."""


__all__ = ["AGENT_KEY", "Launch", "PRESETS", "Preset", "TEMPLATE_FIELDS", "render_template"]
