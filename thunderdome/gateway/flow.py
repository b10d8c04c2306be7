"""Write flow control for the gateway's protocols: a writer waits while its transport's buffer is full.

Invariant: between the transport's ``pause_writing`` and ``resume_writing``
(or the connection's loss: ``writable_again``), ``writable()`` waits; at
any other time it returns at once.
"""

from __future__ import annotations

import asyncio


class WriteFlow:
    """Mixed into an ``asyncio.Protocol``."""

    _paused: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        if self._paused is None or self._paused.done():
            self._paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self.writable_again()

    def writable_again(self) -> None:
        """Let every waiting writer go (resumed, or the connection is gone)."""
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)

    async def writable(self) -> None:
        if self._paused is not None:
            await self._paused


__all__ = ["WriteFlow"]
