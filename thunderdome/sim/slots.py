"""A one-at-a-time server in the emulator: slots, a queue, and what the server says about them.

Invariant: a model's ``SlotPool`` runs at most ``capacity`` requests at once
and hands its slots out in arrival order (FIFO); a request whose client left
while it waited leaves the queue and never takes a slot. ``/slots`` and
``/metrics`` read the pools as they are at that moment, shaped as llama.cpp's
``llama-server`` shapes them (``/slots``: one object per slot with
``is_processing`` and ``next_token[0].n_decoded``; ``/metrics``:
``llamacpp:requests_processing`` / ``llamacpp:requests_deferred``), plus
vLLM's ``vllm:num_requests_running`` / ``vllm:num_requests_waiting`` gauges.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

from thunderdome.sim.http import ClientGone

N_CTX = 4096
"""The context size ``/slots`` reports (the emulator has none: a plausible one)."""
POLL_S = 0.25
"""How often a waiting request checks that its client is still there."""


class SlotPool:
    """The slots of one model: ``capacity`` requests at a time, the rest wait."""

    def __init__(self, capacity: int) -> None:
        self.running: list[dict[str, Any] | None] = [None] * capacity
        """Per slot: the request record it serves (its ``tokens`` so far), or None."""
        self.waiting: deque[asyncio.Future[int]] = deque()
        self._tasks = itertools.count(1)
        self.task_ids = [0] * capacity

    @asynccontextmanager
    async def slot(self, record: dict[str, Any], gone: Callable[[], bool]) -> AsyncIterator[int]:
        """Hold a slot for ``record`` while the block runs; wait in line for
        one first. Raises ``ClientGone`` if ``gone()`` while it waits."""
        index = await self._take(gone)
        self.running[index] = record
        self.task_ids[index] = next(self._tasks)
        try:
            yield index
        finally:
            self._release(index)

    async def _take(self, gone: Callable[[], bool]) -> int:
        free = next((i for i, r in enumerate(self.running) if r is None), None)
        if free is not None:  # a free slot means no one waits: each release hands its slot on
            return free
        turn: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        try:
            while not turn.done():
                await asyncio.wait([turn], timeout=POLL_S)
                if not turn.done() and gone():
                    raise ClientGone()
        except BaseException:
            if turn.done():
                self._release(turn.result())  # handed a slot just as we left
            else:
                turn.cancel()
                self.waiting.remove(turn)
            raise
        return turn.result()

    def _release(self, index: int) -> None:
        self.running[index] = None
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                self.running[index] = {"tokens": 0}  # reserved until its owner takes it
                turn.set_result(index)
                return

    @property
    def processing(self) -> int:
        return sum(r is not None for r in self.running)

    def slots_json(self) -> list[dict[str, Any]]:
        """``GET /slots``, as llama-server answers it."""
        return [
            {
                "id": i,
                "id_task": self.task_ids[i],
                "n_ctx": N_CTX,
                "speculative": False,
                "is_processing": r is not None,
                "next_token": [{"has_next_token": r is not None, "n_decoded": (r or {}).get("tokens", 0)}],
            }
            for i, r in enumerate(self.running)
        ]


def metrics_text(pools: dict[str, SlotPool]) -> str:
    """``GET /metrics`` (Prometheus text): llama.cpp's gauges summed over the
    pools, vLLM's per model (``model_name`` label)."""
    running = sum(p.processing for p in pools.values())
    waiting = sum(len(p.waiting) for p in pools.values())
    lines = [
        "# HELP llamacpp:requests_processing Number of requests processing.",
        "# TYPE llamacpp:requests_processing gauge",
        f"llamacpp:requests_processing {running}",
        "# HELP llamacpp:requests_deferred Number of requests deferred.",
        "# TYPE llamacpp:requests_deferred gauge",
        f"llamacpp:requests_deferred {waiting}",
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
        *(f'vllm:num_requests_running{{model_name="{m}"}} {p.processing}.0' for m, p in pools.items()),
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
        "# TYPE vllm:num_requests_waiting gauge",
        *(f'vllm:num_requests_waiting{{model_name="{m}"}} {len(p.waiting)}.0' for m, p in pools.items()),
    ]
    return "\n".join(lines) + "\n"


__all__ = ["N_CTX", "SlotPool", "metrics_text"]
