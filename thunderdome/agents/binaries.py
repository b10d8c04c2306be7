"""Where an agent's executable is, and what of the host it needs mounted in its sandbox.

Invariant: an agent is looked up in the agents' bin dir first (``AGENTS_ENV``,
else ``$THUNDERDOME_CACHE/agents``, where ``.ci/agents.sh`` installs the
pinned versions), then on PATH; the mounts make exactly the installation it
runs from visible, read-only and at the same path (an npm prefix holds the
``bin/`` link and the package it points into), and nothing under ``/usr``,
which every sandbox sees already.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from thunderdome.agents.presets import Preset
from thunderdome.sandbox.isolation import Bind

AGENTS_ENV = "THUNDERDOME_AGENTS"
"""A directory whose ``bin/`` holds the agents (an ``npm --prefix`` install)."""
CACHE_ENV = "THUNDERDOME_CACHE"
DEFAULT_CACHE = "/var/cache/thunderdome"
_SEEN = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/etc/")


def agents_dir() -> Path:
    """The agents' install prefix (its ``bin/`` is searched first)."""
    return Path(os.environ.get(AGENTS_ENV) or Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE) / "agents")


def find_agent(preset: Preset) -> str | None:
    """The absolute path of the preset's executable, None when it is nowhere."""
    candidate = agents_dir() / "bin" / preset.binary
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(preset.binary)
    return os.path.abspath(found) if found else None


def _prefix(path: str) -> str:
    """The install prefix of an executable in ``PREFIX/bin/``, else its directory."""
    parent = os.path.dirname(path)
    return os.path.dirname(parent) if os.path.basename(parent) == "bin" else parent


def mounts_for(binary: str) -> tuple[Bind, ...]:
    """Read-only mounts that make ``binary`` runnable inside the sandbox."""
    dirs: list[str] = []
    for path in (binary, os.path.realpath(binary)):
        prefix = _prefix(path)
        if not (prefix + "/").startswith(_SEEN) and not any((prefix + "/").startswith(d + "/") for d in dirs):
            dirs.append(prefix)
    return tuple(Bind(d, d) for d in dirs)


__all__ = ["AGENTS_ENV", "agents_dir", "find_agent", "mounts_for"]
