"""Was a request that got no first token waiting in the server's queue? Ask the server.

Invariant: a probe is two short GETs at most (``/slots``, then ``/metrics``)
on the lane's own client, to the origin the lane already talks to, with the
headers it already sends there, within ``PROBE_TIMEOUT_S`` in all; it runs on
the lane's own task only after its first-token timeout fired, so no other lane
waits for it. It says "queued" only when the server's own figures say a
request was waiting, never from the client's guess:

- llama.cpp ``/slots``: no slot idle, and every busy slot has decoded tokens
  already (so none of them is this request, which has none); when ``/slots``
  answers, its word is final, whatever ``/metrics`` would say;
- else llama.cpp ``/metrics``: ``llamacpp:requests_deferred`` >= 1;
- else vLLM ``/metrics``: ``vllm:num_requests_waiting`` >= 1 (for the lane's
  model when the gauge is labelled by ``model_name``).

The gauges count requests, not this one: a request still in its own prefill
while another waits reads as queued there (``/slots`` has no such doubt).

Anything else (an error, a 404, a timeout, a shape it does not know) is no
answer, and the timeout keeps its usual wording.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2

from thunderdome.backends.errors import secs

PROBE_TIMEOUT_S = 1.0
"""The whole probe's budget: a busy server that cannot answer this fast says nothing."""
PROBE_LIMIT = 256 * 1024
"""Bytes of a probe's answer read at most."""
_SAMPLE = re.compile(r'^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([-+0-9.eE]+|NaN)\s*$')


@dataclass(frozen=True)
class Busy:
    """The server said a request was waiting: ``others`` requests ran, per ``source``."""

    others: int
    source: str


def queued_reason(first_token_s: float, busy: Busy) -> str:
    """``queued for 60 s: the server was busy with 1 other request (llama.cpp /slots)``."""
    plural = "" if busy.others == 1 else "s"
    return f"queued for {secs(first_token_s)} s: the server was busy with {busy.others} other request{plural} ({busy.source})"


def origin(base_url: str) -> str:
    """``http://host:8080/v1`` -> ``http://host:8080``: where ``/slots`` and ``/metrics`` live."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def is_slot_list(said: Any) -> bool:
    """``said`` is a ``/slots`` answer (a list of slot objects)."""
    return isinstance(said, list) and bool(said) and all(isinstance(s, dict) and "is_processing" in s for s in said)


def from_slots(slots: Any) -> Busy | None:
    if not is_slot_list(slots):
        return None
    busy = [s for s in slots if s.get("is_processing") is True]
    if len(busy) < len(slots) or not all(_decoded(s) > 0 for s in busy):
        return None
    return Busy(len(busy), "llama.cpp /slots")


def _decoded(slot: dict[str, Any]) -> int:
    """``next_token.n_decoded`` (an object in the README, a one-item list in the source)."""
    nxt = slot.get("next_token")
    nxt = nxt[0] if isinstance(nxt, list) and nxt else nxt
    value = nxt.get("n_decoded") if isinstance(nxt, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def from_metrics(text: str, model: str) -> Busy | None:
    gauges: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match is None:
            continue
        name, labels, value = match.groups()
        if name.startswith("vllm:") and labels and "model_name=" in labels and f'model_name="{model}"' not in labels:
            continue
        try:
            gauges[name] = gauges.get(name, 0.0) + float(value)
        except ValueError:
            continue
    if gauges.get("llamacpp:requests_deferred", 0) >= 1:
        return Busy(int(gauges.get("llamacpp:requests_processing", 0)), "llama.cpp /metrics")
    if gauges.get("vllm:num_requests_waiting", 0) >= 1:
        return Busy(int(gauges.get("vllm:num_requests_running", 0)), "vLLM /metrics")
    return None


async def _get(client: httpx2.AsyncClient, url: str, headers: dict[str, str]) -> bytes | None:
    """The body of a 200 answer, up to ``PROBE_LIMIT`` bytes; None otherwise."""
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code != 200:
            return None
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > PROBE_LIMIT:
                return None
        return bytes(body)


async def probe(client: httpx2.AsyncClient, base_url: str, model: str, headers: dict[str, str]) -> Busy | None:
    """What the server at ``base_url`` says about its queue right now (None: nothing)."""
    root, query = origin(base_url), f"?model={quote(model, safe='')}"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            slots = await _get(client, f"{root}/slots{query}", headers)
            said = _json(slots) if slots is not None else None
            if is_slot_list(said):  # the slots know which request is whose: their word is final
                return from_slots(said)
            metrics = await _get(client, f"{root}/metrics{query}", headers)
            return from_metrics(metrics.decode("utf-8", "replace"), model) if metrics is not None else None
    except (TimeoutError, httpx2.HTTPError):
        return None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


__all__ = ["PROBE_LIMIT", "PROBE_TIMEOUT_S", "Busy", "from_metrics", "from_slots", "is_slot_list", "origin", "probe", "queued_reason"]
