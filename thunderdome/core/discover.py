"""Find LLM servers running on this machine, on their default ports.

Invariant: discovery only ever talks to 127.0.0.1 (the host is fixed, never
taken from input or the environment: proxies are ignored), sends only GETs to
``/api/tags`` or ``/v1/models`` with a short timeout, and never raises: a port
with nothing on it, a refused connection or a reply that is not a model list
simply yields no backend.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import httpx2

from thunderdome.core.specs import BackendSpec

HOST = "127.0.0.1"


@dataclass(frozen=True)
class KnownServer:
    port: int
    label: str
    """Lane-name prefix (``ollama``, ``lmstudio``, ...)."""
    native: str = "openai"
    """``ollama`` probes ``/api/tags`` first and makes native Ollama lanes."""


DEFAULT_SERVERS = (
    KnownServer(11434, "ollama", native="ollama"),
    KnownServer(1234, "lmstudio"),
    KnownServer(8080, "llamacpp"),  # also LocalAI
    KnownServer(9931, "llamacpp"),
    KnownServer(8000, "vllm"),
    KnownServer(30000, "sglang"),
    KnownServer(1337, "jan"),
)


def _lane_name(label: str, model: str) -> str:
    short = re.sub(r"[^A-Za-z0-9._:-]+", "-", model.split("/")[-1]).strip("-") or "model"
    return f"{label}:{short}"


def _models_from_openai(data: Any) -> list[str]:
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    return [str(m["id"]) for m in items if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]]


def _models_from_ollama(data: Any) -> list[str]:
    items = data.get("models") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    out = []
    for m in items:
        if isinstance(m, dict):
            name = m.get("model") or m.get("name")
            if isinstance(name, str) and name:
                out.append(name)
    return out


async def _get_json(client: httpx2.AsyncClient, url: str) -> Any:
    try:
        resp = await client.get(url)
    except (httpx2.HTTPError, OSError):
        return None
    if resp.status_code != 200:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


async def probe(client: httpx2.AsyncClient, server: KnownServer, *, max_models: int = 8) -> list[BackendSpec]:
    """Backends served on one port (empty if nothing answers)."""
    base = f"http://{HOST}:{server.port}"
    if server.native == "ollama":
        models = _models_from_ollama(await _get_json(client, f"{base}/api/tags"))
        if models:
            return [
                BackendSpec(name=_lane_name(server.label, m), kind="ollama", url=base, model=m)
                for m in models[:max_models]
            ]
    models = _models_from_openai(await _get_json(client, f"{base}/v1/models"))
    return [
        BackendSpec(name=_lane_name(server.label, m), kind="openai", url=f"{base}/v1", model=m)
        for m in models[:max_models]
    ]


async def discover(servers: tuple[KnownServer, ...] = DEFAULT_SERVERS, *, timeout: float = 0.5) -> list[BackendSpec]:
    """Probe every server concurrently; backends in ``servers`` order, names unique."""
    limits = httpx2.Timeout(timeout, connect=timeout)
    async with httpx2.AsyncClient(timeout=limits, trust_env=False, follow_redirects=False) as client:
        found = await asyncio.gather(*(probe(client, s) for s in servers), return_exceptions=True)
    specs: list[BackendSpec] = []
    seen: set[str] = set()
    for server, result in zip(servers, found):
        if isinstance(result, BaseException):
            continue
        for spec in result:
            if spec.name in seen:  # same server kind on a second port
                spec = dataclasses.replace(spec, name=f"{spec.name}@{server.port}")
            if spec.name not in seen:
                seen.add(spec.name)
                specs.append(spec)
    return specs


__all__ = ["DEFAULT_SERVERS", "HOST", "KnownServer", "discover", "probe"]
