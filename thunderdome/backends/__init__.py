"""Backend clients: one streaming protocol adapter per wire protocol.

Invariant: importing this package does not import httpx2; the clients (which
do) load on first use, so ``thunderdome --help`` and the core stay light.
``make_backend`` is the one place a ``BackendSpec`` becomes a client; sim
lanes get the client of their wire protocol pointed at the emulator, with
their sim options (``sim.options.SIM_OPTIONS``) sent as the emulator
directive (never to a real server).
"""

from __future__ import annotations

from typing import Any

from thunderdome.backends.base import Backend, BackendError, ChatRequest, Clock
from thunderdome.sim.options import SIM_OPTIONS
from thunderdome.core.specs import BackendSpec

_CLASSES = {
    "openai": ("thunderdome.backends.openai", "OpenAIBackend"),
    "ollama": ("thunderdome.backends.ollama", "OllamaBackend"),
    "anthropic": ("thunderdome.backends.anthropic", "AnthropicBackend"),
    "responses": ("thunderdome.backends.responses", "ResponsesBackend"),
}


def _client_class(kind: str) -> Any:
    import importlib

    try:
        module, name = _CLASSES[kind]
    except KeyError:
        raise ValueError(f"no client for protocol {kind!r} (use openai, ollama, anthropic or responses)") from None
    return getattr(importlib.import_module(module), name)


def make_backend(
    spec: BackendSpec,
    *,
    sim_url: str | None = None,
    sim_directive: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Backend:
    """The client for ``spec``. Sim lanes need ``sim_url`` (the emulator's
    ``http://127.0.0.1:PORT``); ``sim_directive`` goes over the spec's sim
    options. ``headers``: extra request headers (e.g. ``x-thunderdome-tag``)."""
    if spec.kind != "sim":
        return _client_class(spec.kind)(spec, headers=headers)
    base = (sim_url or spec.url).rstrip("/")
    if not base:
        raise ValueError(f"sim backend {spec.name!r} needs the emulator's url")
    protocol = spec.wire_kind
    if protocol in ("openai", "responses") and not base.endswith("/v1"):
        base += "/v1"
    directive = {k: v for k, v in spec.options.items() if k in SIM_OPTIONS}
    directive.update(sim_directive or {})
    options = {k: v for k, v in spec.options.items() if k not in SIM_OPTIONS}
    return _client_class(protocol)(
        spec,
        base_url=base,
        model=spec.model or spec.profile or "",
        options=options,
        directive=directive,
        headers=headers,
    )


def __getattr__(name: str) -> Any:
    """Lazy re-exports of the client classes (they import httpx2)."""
    for kind, (_, cls_name) in _CLASSES.items():
        if name == cls_name:
            return _client_class(kind)
    raise AttributeError(f"module 'thunderdome.backends' has no attribute {name!r}")


__all__ = [
    "Backend",
    "BackendError",
    "ChatRequest",
    "Clock",
    "make_backend",
    "OpenAIBackend",
    "OllamaBackend",
    "AnthropicBackend",
    "ResponsesBackend",
]
