"""Plain dataclasses describing backends and tasks, shared by config, race and UI.

Invariant: a spec never holds a secret. API keys live only in the environment;
``BackendSpec.api_key_env`` names the variable and ``api_key()`` reads it at the
moment a request is built. ``public_dict()`` is what recordings and exports see
(its URL without credentials). A spec, once made, tells ``thunderdome.core.redact``
its key variable and URL credentials, so they are redacted wherever text leaves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from thunderdome.core.redact import remember_backend, scrub_urls

BACKEND_KINDS = ("openai", "ollama", "anthropic", "responses", "sim")
AGENT_MODES = ("tools", "text")
"""How a lane's model acts in a Thunderdome task: a backend's ``agent``
option or a task's ``agent`` field (``race.tools_mode.mode_for`` decides)."""
PRICE_KEYS = ("input_per_mtok", "output_per_mtok")
"""What a backend's ``price`` may name: dollars per million tokens."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``first_token``: from request sent to the first token;
    ``idle``: longest silence between bytes once streaming; ``total``: whole turn."""

    connect: float = 10.0
    first_token: float = 60.0
    idle: float = 30.0
    total: float = 600.0


@dataclass(frozen=True)
class BackendSpec:
    """One lane's backend, as written in a backends YAML file."""

    name: str
    """Lane label, unique within a race."""
    kind: str
    """``openai`` | ``ollama`` | ``anthropic`` | ``sim``."""
    url: str = ""
    """Base URL. For ``openai``: up to and including ``/v1``."""
    model: str = ""
    """Model name sent to the server; for ``sim``: the profile name by default."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (never the key)."""
    profile: str | None = None
    """``sim`` only: the timing profile (``cloud``, ``dgx-spark``, ...)."""
    protocol: str = "openai"
    """``sim`` only: which wire protocol to speak to the emulator."""
    agent: str | None = None
    """How the lane acts in a Thunderdome task (``AGENT_MODES``): ``tools`` (a
    native ``bash`` tool call) or ``text`` (a command in a shell code block);
    None: not said, the task's ``agent`` decides (else ``tools``)."""
    program: str | None = None
    """A real agent program runs this lane (``agents.presets.PRESETS``:
    ``claude-code``, ``codex``, ``opencode``, or ``command`` with ``command``),
    talking to this backend through the race's metering gateway; None: the
    race's own turn loop asks the backend (``agent`` says how)."""
    command: str = ""
    """``program: command`` only: the agent's command template (``{prompt}``,
    ``{base_url}``, ``{api_key}``, ``{model}``, ``{workdir}``, ``{home}``)."""
    price: dict[str, float] | None = None
    """Optional ``input_per_mtok`` / ``output_per_mtok`` (``PRICE_KEYS``), dollars
    per million tokens; a lane's cost is its input and output tokens x these."""
    timeouts: Timeouts = field(default_factory=Timeouts)
    options: dict[str, Any] = field(default_factory=dict)
    """Extra request options (temperature, ...); for ``sim``, those named in
    ``sim.options.SIM_OPTIONS`` (``fault``, ``seed``, ``wrong_rate``, ...) go to
    the emulator instead, and real backends refuse the sim-only ones."""

    def __post_init__(self) -> None:
        remember_backend(self)  # its key variable and URL credentials: redacted wherever text leaves

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled (in a race's child process): known to that process's redactor too."""
        self.__dict__.update(state)
        remember_backend(self)

    def api_key(self) -> str | None:
        """Read the key from the environment, at use time only."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env)

    @property
    def wire_kind(self) -> str:
        """The protocol client to use (``sim`` lanes speak ``protocol``)."""
        return self.protocol if self.kind == "sim" else self.kind

    def public_dict(self) -> dict[str, Any]:
        """What may be written to recordings and exports: no secrets."""
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "model": self.model or self.profile or "",
            "url": scrub_urls(self.url),  # no userinfo, no key-like query parameter
        }
        if self.kind == "sim":
            data["profile"] = self.profile
            data["protocol"] = self.protocol
            if "time_scale" in self.options:  # this lane's own, over the race's --time-scale
                data["time_scale"] = float(self.options["time_scale"])
        if self.program:
            data["program"] = self.program
        if self.api_key_env:
            data["api_key_env"] = self.api_key_env  # the variable's name only
        if self.price:
            data["price"] = dict(self.price)
        return data


@dataclass(frozen=True)
class Check:
    """One checker step of a ``first_correct`` task (see race/tasks.py)."""

    kind: str
    """``file_equals`` | ``file_contains`` | ``stdout_equals`` | ``stdout_contains``
    | ``command`` (a shell check run in the work dir, passes on exit 0)."""
    path: str = ""
    value: str = ""
    command: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """A race task, as written in ``tasks/*.yaml``."""

    name: str
    title: str
    kind: str
    """``thunderdome`` | ``long``."""
    user: str
    """User prompt template (``{pids}``-style fields are filled by the engine)."""
    system: str = ""
    win_rule: str = ""
    """``first_correct`` | ``last_standing`` (thunderdome only)."""
    max_turns: int = 1
    max_tokens: int = 1024
    expected_tokens: int = 0
    """How long a reply is expected to be (0: not said): what a running lane's
    finish is projected from until a lane of the race has finished."""
    timeout: float = 120.0
    """Seconds for the whole race."""
    exec_timeout: float = 10.0
    """Seconds for one command in the sandbox."""
    race_on: bool = False
    """Thunderdome: once the winner is called, the other lanes race on for
    places (each until it passes, runs out of turns or of time) instead of
    being stopped. Long races always race on."""
    setup_files: dict[str, str] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    reference: str = ""
    """The reference answer: what a perfect model would reply. Sim backends
    reply with it; a test proves it solves the task."""
    wrong_answer: str = ""
    """A plausible wrong answer, used by sim lanes that are set to fail."""
    agent: str = ""
    """How lanes act (``AGENT_MODES``) when their backend does not say; "": tools."""
    source: str = ""
    """File the task came from (for error messages)."""
