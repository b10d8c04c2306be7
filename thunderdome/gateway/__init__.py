"""The metering gateway between a real agent program and its lane's backend.

Invariant: what the agent sends and receives passes through unchanged but for
the key, the model and (sim lanes) the emulator directive; what it costs in
time is measured from the upstream bytes as they arrive (``server.py``).
"""

from __future__ import annotations

from thunderdome.gateway.routes import CHAT_PATHS, chat_route
from thunderdome.gateway.server import AGENT_KEYS, Gateway, Relayed
from thunderdome.gateway.upstream_target import Upstream

__all__ = ["AGENT_KEYS", "CHAT_PATHS", "Gateway", "Relayed", "Upstream", "chat_route"]
