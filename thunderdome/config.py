"""Backends configuration: YAML file -> ``BackendSpec`` list.

Invariant: a malformed file, an unknown kind, a missing field, a bad sim
option (checked against the emulator's own list, ``sim/options.py``) or a
missing API key variable raises ``ConfigError`` with one line naming file,
line and problem, when the file loads, not mid-race. Keys are never read
into a spec: only the variable's name is kept.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from thunderdome.agents.presets import PRESETS
from thunderdome.sim.options import SIM_OPTIONS, OptionError, parse_options
from thunderdome.sim.profiles import PROFILES
from thunderdome.core.specs import AGENT_MODES, BACKEND_KINDS, PRICE_KEYS, BackendSpec, Timeouts
from thunderdome.core.yamlfile import ConfigError, LineDict, LineList, line_of, read_yaml

SIM_PROFILES_DEMO = ("cloud", "dgx-spark", "rtx4090-offload")
"""The three lanes of the public experiment."""

SIM_PROTOCOLS = ("openai", "ollama", "anthropic", "responses")
"""The wire protocols a sim lane may speak (the emulator serves all four)."""

BACKENDS_FILENAMES = ("thunderdome.yaml", "backends.yaml")

_BACKEND_FIELDS = {
    "name", "kind", "url", "model", "api_key_env", "profile", "protocol", "agent",
    "program", "command", "price", "timeouts", "options",
}


def demo_backends(protocols: tuple[str, ...] = ("openai", "ollama", "openai")) -> list[BackendSpec]:
    """The public experiment's three sim lanes. Different wire protocols per
    lane so the demo exercises more than one client. Text mode: the public
    sigkill race was a command in a code block, and its figure is calibrated so."""
    return [
        BackendSpec(name=profile, kind="sim", profile=profile, model=profile, protocol=proto, agent="text")
        for profile, proto in zip(SIM_PROFILES_DEMO, protocols)
    ]


def find_backends_file(cwd: Path | None = None) -> Path | None:
    """The backends file in the current folder, else ~/.config/thunderdome/."""
    cwd = cwd or Path.cwd()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "thunderdome"
    for folder in (cwd, config_home):
        for name in BACKENDS_FILENAMES:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def load_backends(path: str | Path, *, require_keys: bool = True) -> list[BackendSpec]:
    """Load and validate a backends file. ``require_keys``: a lane whose
    ``api_key_env`` variable is unset is an error (the race would only fail
    later with HTTP 401)."""
    source = str(path)
    data = read_yaml(path)
    if isinstance(data, LineDict) and "backends" in data:
        entries = data["backends"]
        where = data.line_of("backends")
    elif isinstance(data, list):
        entries, where = data, 1
    else:
        raise ConfigError(f"{source}:{line_of(data)}: expected a 'backends:' list")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}:{where}: 'backends' must be a non-empty list")
    specs: list[BackendSpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        line = entries.line_of(index) if isinstance(entries, LineList) else line_of(entry)
        spec = parse_backend(entry, source, require_keys=require_keys, line=line)
        if spec.name in seen:
            raise ConfigError(
                f"{source}:{line}: duplicate backend name {spec.name!r} (first at line {seen[spec.name]})"
            )
        seen[spec.name] = line
        specs.append(spec)
    return specs


def _str_field(entry: LineDict, key: str, source: str, *, required: bool = False) -> str:
    value = entry.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{source}:{entry.line}: backend is missing '{key}'")
        return ""
    if isinstance(value, (dict, list)):
        raise ConfigError(f"{source}:{entry.line_of(key)}: '{key}' must be a string")
    return str(value)


def parse_backend(entry: Any, source: str, *, require_keys: bool = True, line: int | None = None) -> BackendSpec:
    """One backends-list entry -> BackendSpec."""
    if not isinstance(entry, LineDict):
        raise ConfigError(f"{source}:{line or line_of(entry)}: each backend must be a mapping (name, kind, ...)")
    unknown = sorted(set(entry) - _BACKEND_FIELDS)
    if unknown:
        raise ConfigError(
            f"{source}:{entry.line_of(unknown[0])}: unknown field '{unknown[0]}' "
            f"(known: {', '.join(sorted(_BACKEND_FIELDS))})"
        )
    name = _str_field(entry, "name", source, required=True).strip()
    if not name:
        raise ConfigError(f"{source}:{entry.line_of('name')}: 'name' must not be empty")
    kind = _str_field(entry, "kind", source, required=True)
    if kind not in BACKEND_KINDS:
        raise ConfigError(
            f"{source}:{entry.line_of('kind')}: unknown kind {kind!r} (use one of: {', '.join(BACKEND_KINDS)})"
        )
    url = _str_field(entry, "url", source)
    model = _str_field(entry, "model", source)
    profile = _str_field(entry, "profile", source) or None
    program, command = _program(entry, source)
    protocol = _str_field(entry, "protocol", source) or (PRESETS[program].protocol if program else "openai")
    if kind == "sim":
        profile = profile or model or None
        if not profile:
            raise ConfigError(f"{source}:{entry.line}: sim backend {name!r} needs a 'profile'")
        if profile not in PROFILES:
            raise ConfigError(
                f"{source}:{entry.line_of('profile')}: unknown sim profile {profile!r} "
                f"(known: {', '.join(PROFILES)})"
            )
        if protocol not in SIM_PROTOCOLS:
            raise ConfigError(f"{source}:{entry.line_of('protocol')}: protocol must be {', '.join(SIM_PROTOCOLS)}")
        model = model or profile
    else:
        if not url:
            raise ConfigError(f"{source}:{entry.line}: backend {name!r} ({kind}) is missing 'url'")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{source}:{entry.line_of('url')}: url must start with http:// or https://")
        problem = _url_problem(url)
        if problem:
            raise ConfigError(f"{source}:{entry.line_of('url')}: bad url {url!r}: {problem}")
        if not model:
            raise ConfigError(f"{source}:{entry.line}: backend {name!r} is missing 'model'")
    agent = _str_field(entry, "agent", source) or None
    if agent is not None and agent not in AGENT_MODES:
        raise ConfigError(f"{source}:{entry.line_of('agent')}: agent must be {' or '.join(AGENT_MODES)}, not {agent!r}")
    if "api_key" in entry:  # pragma: no cover - caught as unknown field above
        raise ConfigError(f"{source}:{entry.line_of('api_key')}: put keys in the environment (api_key_env)")
    api_key_env = _str_field(entry, "api_key_env", source) or None
    if api_key_env is not None:
        if not api_key_env.replace("_", "").isalnum():
            raise ConfigError(
                f"{source}:{entry.line_of('api_key_env')}: api_key_env must be a variable name, not a key"
            )
        if require_keys and not os.environ.get(api_key_env):
            raise ConfigError(
                f"{source}:{entry.line_of('api_key_env')}: environment variable {api_key_env} is not set "
                f"(backend {name!r})"
            )
    price = _price(entry, source)
    timeouts = Timeouts()
    raw_timeouts = entry.get("timeouts")
    if raw_timeouts is not None:
        if not isinstance(raw_timeouts, dict):
            raise ConfigError(f"{source}:{entry.line_of('timeouts')}: timeouts must be a mapping")
        values: dict[str, float] = {}
        for key, value in raw_timeouts.items():
            if key not in ("connect", "first_token", "idle", "total"):
                raise ConfigError(f"{source}:{line_of(raw_timeouts, key)}: unknown timeout {key!r}")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{source}:{line_of(raw_timeouts, key)}: timeout {key} must be a positive number")
            values[key] = float(value)
        timeouts = Timeouts(**values)
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{source}:{entry.line_of('options')}: options must be a mapping")
    _check_sim_options(options, kind, source)
    return BackendSpec(
        name=name,
        kind=kind,
        url=url,
        model=model,
        api_key_env=api_key_env,
        profile=profile,
        protocol=protocol,
        agent=agent,
        program=program,
        command=command,
        price=price,
        timeouts=timeouts,
        options=dict(options),
    )


def _program(entry: LineDict, source: str) -> tuple[str | None, str]:
    """``program`` (an agent preset) and ``command`` (its template, for ``program: command``)."""
    program = _str_field(entry, "program", source) or None
    command = _str_field(entry, "command", source)
    if program is not None and program not in PRESETS:
        raise ConfigError(
            f"{source}:{entry.line_of('program')}: unknown program {program!r} (use one of: {', '.join(PRESETS)})"
        )
    if program == "command" and not command.strip():
        raise ConfigError(f"{source}:{entry.line_of('program')}: program: command needs a 'command' template")
    if command and program != "command":
        raise ConfigError(f"{source}:{entry.line_of('command')}: 'command' goes with program: command")
    return program, command


def _price(entry: LineDict, source: str) -> dict[str, float] | None:
    """``price``: a mapping of ``PRICE_KEYS`` to dollars per million tokens (>= 0)."""
    price = entry.get("price")
    if price is None:
        return None
    if not isinstance(price, dict) or not price:
        raise ConfigError(f"{source}:{entry.line_of('price')}: price must map {' and/or '.join(PRICE_KEYS)} to dollars")
    for key, value in price.items():
        if key not in PRICE_KEYS:
            raise ConfigError(f"{source}:{line_of(price, key)}: unknown price {key!r} (known: {', '.join(PRICE_KEYS)})")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf:
            raise ConfigError(f"{source}:{line_of(price, key)}: price {key} must be a number of dollars >= 0")
    return {str(k): float(v) for k, v in price.items()}


def _check_sim_options(options: dict[str, Any], kind: str, source: str) -> None:
    """Sim options are checked here, as the emulator would check them; on a
    real backend, the sim-only ones are refused (they would reach its server)."""
    if kind == "sim":
        try:
            parse_options({key: value for key, value in options.items() if key in SIM_OPTIONS})
        except OptionError as exc:
            raise ConfigError(f"{source}:{line_of(options, exc.key)}: option {exc.key!r}: {exc.problem}") from None
        return
    sim_only = [key for key in options if key in SIM_OPTIONS and SIM_OPTIONS[key].sim_only]
    if sim_only:
        raise ConfigError(f"{source}:{line_of(options, sim_only[0])}: option {sim_only[0]!r} is for sim backends only")


def _url_problem(url: str) -> str | None:
    """Why ``url`` cannot be used, or None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return str(exc)
    if not parts.hostname:
        return "no host"
    if port is not None and not 0 < port < 65536:
        return f"port {port} out of range"
    return None


__all__ = [
    "ConfigError",
    "demo_backends",
    "find_backends_file",
    "load_backends",
    "parse_backend",
]
