"""The command sandbox: model-written shell commands run here, isolated.

Invariant: nothing a command does escapes its sandbox's limits unnoticed:
every run ends with its whole process tree dead and an ``ExecResult`` saying
what happened and which limits were really enforced; the isolation level in
force (``bwrap`` > ``unshare`` > ``rlimits``) is detected by trying it, and
any level below ``bwrap`` carries a loud ``warning``.
"""

from __future__ import annotations

from thunderdome.sandbox.arena import Arena, ArenaError
from thunderdome.sandbox.isolation import ENV_VAR, LEVELS, Isolation, detect_isolation
from thunderdome.sandbox.limits import SandboxLimits
from thunderdome.sandbox.runner import ExecResult, Sandbox

__all__ = [
    "Arena",
    "ArenaError",
    "ENV_VAR",
    "ExecResult",
    "Isolation",
    "LEVELS",
    "Sandbox",
    "SandboxLimits",
    "detect_isolation",
]
