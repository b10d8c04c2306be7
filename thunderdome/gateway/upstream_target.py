"""Where a lane's requests go: its backend's base URL, headers, model and directive.

Invariant: an agent's path joins the lane's base URL as the backend serves
it: a ``/v1/…`` path on a base that already ends in ``/v1`` is not doubled,
and Ollama's native ``/api/…`` goes to the server's root.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from thunderdome.core.specs import Timeouts


@dataclass(frozen=True)
class Upstream:
    """Where a lane's requests go and what they carry there."""

    base_url: str
    """The backend's base URL (``…/v1`` for OpenAI-style kinds)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Protocol headers and the real key (``x-api-key`` / ``authorization``)."""
    model: str = ""
    """The lane's model: it replaces whatever model the agent names."""
    directive: dict[str, Any] | None = None
    """Sim lanes: the backend's emulator directive (None for real backends)."""
    timeouts: Timeouts = field(default_factory=Timeouts)

    @classmethod
    def of(cls, backend: Any) -> "Upstream":
        """The target of a race client (``backends.http.StreamingBackend``)."""
        headers = {**backend.protocol_headers(), **backend.extra_headers}
        return cls(backend.base_url, headers, backend.model, backend.directive, backend.spec.timeouts)

    def url(self, path: str, query: str) -> str:
        """``path`` (as the agent sent it) on this backend: an agent's ``/v1/…``
        on a base that already ends in ``/v1`` is not doubled."""
        base, path = _joined(self.base_url.rstrip("/"), path)
        return f"{base}{path}" + (f"?{query}" if query else "")

    def target(self, path: str, query: str) -> str:
        """The request target (path and query) of ``url(path, query)``."""
        base, path = _joined(self._base_path, path)
        return (f"{base}{path}" or "/") + (f"?{query}" if query else "")

    @functools.cached_property
    def _base_path(self) -> str:
        return urlsplit(self.base_url).path.rstrip("/")


def _joined(base: str, path: str) -> tuple[str, str]:
    if base.endswith("/v1") and (path == "/v1" or path.startswith("/v1/")):
        path = path[3:]
    elif base.endswith("/v1") and path.startswith("/api/"):
        base = base[:-3]  # Ollama's native API lives at the server's root
    return base, path


__all__ = ["Upstream"]
