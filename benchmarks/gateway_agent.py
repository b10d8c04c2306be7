"""One lane's agent in the gateway benchmark: streamed chat requests on a shared schedule, timed.

Invariant: standard library only (it also runs inside an agent's sandbox,
by the sandbox's own ``python3``), one process per lane as real agents
are. Every process follows the same schedule on CLOCK_MONOTONIC (one clock
for the whole machine, sandboxes included): round ``r``'s slot for the
``i``-th way of that round's order starts at ``start + (r * WAYS + i) *
slot``, the order rotating each round, so the ways interleave round by
round and the lanes of one way are in flight together. Each way keeps one
kept-alive connection (as agents do), opened before the first round; then
the lane writes its ``ready`` file and waits for the ``go`` file, which
holds ``start`` once every lane is ready. It prints one JSON list of
``[way, tag, sent, first content byte]``.

``python3 gateway_agent.py SPEC`` — SPEC is JSON: ``{"lane": 0, "ways":
{way: [host, port]}, "order": [...], "rounds": R, "slot": s, "ready":
path, "go": path, "body": {...}, "headers": {...}}``.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from typing import Any

_CONTENT = re.compile(rb'"content":"[^"]')
_END = b"0\r\n\r\n"
WAIT_S = 120.0


def _request(body: dict[str, Any], headers: dict[str, str], tag: str) -> bytes:
    data = json.dumps(body).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer sk-throwaway\r\nx-thunderdome-tag: {tag}\r\n{extra}"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    return head + data


def _one(sock: socket.socket, request: bytes) -> tuple[float, float]:
    """One streamed request on a kept-alive connection: (sent, first content byte)."""
    sent = time.monotonic()
    sock.sendall(request)
    first = 0.0
    seen = b""
    while not seen.endswith(_END):
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the connection closed mid-reply")
        seen += data
        if not first and _CONTENT.search(seen):
            first = time.monotonic()
    if not first:
        raise RuntimeError("no content arrived")
    return sent, first


def _start(ready: str, go: str) -> float:
    """Say this lane is ready, then wait for the shared start time."""
    with open(ready, "w") as fh:
        fh.write("ready")
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            with open(go) as fh:
                return float(fh.read())
        except (OSError, ValueError):
            time.sleep(0.005)
    raise TimeoutError(f"no start time in {go} within {WAIT_S:g} s")


def run(spec: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    ways: dict[str, socket.socket] = {}
    for way, (host, port) in spec["ways"].items():
        sock = ways[way] = socket.create_connection((host, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = _start(spec["ready"], spec["go"])
    order: list[str] = spec["order"]
    out: list[tuple[str, str, float, float]] = []
    for r in range(spec["rounds"]):
        turn = order[r % len(order):] + order[:r % len(order)]  # no way always goes first
        for i, way in enumerate(turn):
            if way not in ways:
                continue  # another process's slot
            at = start + (r * len(order) + i) * spec["slot"]
            time.sleep(max(0.0, at - time.monotonic()))
            tag = f"{way}-{r}-{spec['lane']}"
            sent, first = _one(ways[way], _request(spec["body"], spec["headers"], tag))
            out.append((way, tag, sent, first))
    for sock in ways.values():
        sock.close()
    return out


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
