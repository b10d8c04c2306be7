"""Runs one streamed (or whole) answer on the clock: pacing, faults, quirks.

Invariant: token ``i`` is written at ``base + scale * schedule.due(i)``
where ``base`` is the request's arrival time, or when a slot took it on a
server running ``slots`` at a time (moved later only by a stall fault); each wait is computed from that schedule and the current clock, never
by summing sleeps, so a late write delays nothing after it. A writer that fell
behind sends at once. Nothing O(reply length) happens before token 0: the
reply's tokens are drawn lazily and each due time costs O(1). The request
record (``t_first_token``, ``t_last_token``, ``tokens``) is stamped just
before each token's write.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from thunderdome.sim.directives import Directives
from thunderdome.sim.faults import BURST, MID_STREAM
from thunderdome.sim.http import ClientGone, Responder
from thunderdome.sim.profiles import Schedule
from thunderdome.sim.replies import Reply
from thunderdome.sim.wire import Encoder, Stats

if TYPE_CHECKING:
    from thunderdome.sim.tools import ToolCallReply

POLL_S = 0.25
"""Longest single sleep, so a gone client is noticed during long waits."""
WAKE_EARLY_S = 0.0005
"""Waits longer than twice this end with a short one: a CPU that idled for
milliseconds wakes late (~0.25 ms on a shared VM, measured), one that just
woke does not (~0.04 ms), so the last wake-up before a due time is cheap."""
SPLIT_GAP_S = 0.002
HUGE_PIECE = b"x" * 65536
COLLECT_SLICE = 512
"""Non-streaming answers gather their tokens in slices this long, yielding
to the loop in between, so a long reply never blocks other streams."""


class StreamRun:
    """One request's answer. Call ``run()`` (streaming) or ``run_whole()``."""

    def __init__(
        self,
        out: Responder,
        enc: Encoder,
        reply: Reply | ToolCallReply,
        schedule: Schedule,
        directives: Directives,
        stats: Stats,
        record: dict[str, Any],
        scale: float,
    ) -> None:
        self.out = out
        self.enc = enc
        self.reply = reply
        self.due = schedule.due
        """Token slot -> due time (unscaled seconds after ``base``)."""
        self.d = directives
        self.stats = stats
        self.record = record
        self.scale = scale
        self.base = stats.t_start

    # -- clock ---------------------------------------------------------------

    async def _sleep_until(self, due: float) -> None:
        """Return at ``due`` or just after: how soon after depends on the loop
        (``precise_loop``: tens of microseconds; asyncio's default: up to 1 ms)."""
        while True:
            if self.out.client_gone():
                raise ClientGone()
            left = due - time.monotonic()
            if left <= 0:
                return
            nap = left - WAKE_EARLY_S if left > 2 * WAKE_EARLY_S else left
            await asyncio.sleep(min(nap, POLL_S))

    async def wait_slot(self, i: int) -> None:
        """Wait until token slot ``i`` is due."""
        await self._sleep_until(self.base + self.scale * self.due(i))

    async def stall(self) -> None:
        """No bytes for ``stall_s`` (scaled); the schedule moves by the stall."""
        start = time.monotonic()
        await self._sleep_until(start + self.scale * self.d.stall_s)
        self.base += time.monotonic() - start

    # -- writing -------------------------------------------------------------

    async def emit(self, data: bytes) -> None:
        """Write frames; with ``split_utf8`` split inside a multi-byte char."""
        if "split_utf8" in self.d.quirks:
            cut = next((k for k, b in enumerate(data) if b >= 0xC0), -1)
            if cut >= 0:
                await self.out.send(data[: cut + 1])
                await asyncio.sleep(SPLIT_GAP_S)
                await self.out.send(data[cut + 1 :])
                return
        await self.out.send(data)

    def reported(self) -> Stats:
        """The stats the final frames report (``undercount``: a third of the tokens)."""
        if "undercount" not in self.d.quirks:
            return self.stats
        return replace(self.stats, completion_tokens=self.stats.completion_tokens // 3)

    def _stamp(self, i: int, channel: str) -> None:
        now = time.monotonic()
        st = self.stats
        if st.t_first is None:
            st.t_first = now
            self.record["t_first_token"] = now
        st.t_last = now
        st.completion_tokens = i + 1
        if channel == "reasoning":
            st.reasoning_tokens += 1
        self.record["t_last_token"] = now
        self.record["tokens"] = i + 1
        if i == 0:
            self.record["generated"] = self.reply.made

    # -- faults --------------------------------------------------------------

    async def _fault_at_slot(self, i: int) -> bool:
        """Fire the mid-stream fault at slot ``i``; True when the answer is over."""
        fault, enc = self.d.fault, self.enc
        await self.wait_slot(i)
        if fault == "drop_mid":
            self.out.abort()
            return True
        if fault == "stall_after":
            await self.stall()
            return False
        if fault == "bad_json":
            await self.out.send(enc.bad_json())
            return False
        if fault == "bad_utf8":
            await self.out.send(enc.bad_utf8())
            return False
        if fault == "huge_line":
            await self._huge_line()
            return True
        if fault in ("error_frame", "no_end", "cut"):
            if fault == "error_frame":
                await self.out.send(enc.error_frame("The server is overloaded (thunderdome-sim error_frame)"))
            elif fault == "cut":
                await self.out.send(enc.cut())
            await self.out.end()
            return True
        raise AssertionError(f"not a mid-stream fault: {fault}")

    async def _huge_line(self) -> None:
        """An endless line: 64 KiB pieces until the client leaves (or 1 GiB, then silence)."""
        await self.out.send(self.enc.huge_prefix())
        gap = max(0.002, 0.01 * self.scale)
        for _ in range(16384):
            await self.out.send(HUGE_PIECE)
            await asyncio.sleep(gap)
        await self._sleep_until(float("inf"))

    # -- the two shapes of answer --------------------------------------------

    async def run(self) -> None:
        """Stream: headers, head frames, paced tokens, finish frames, end."""
        d, enc, out, reply = self.d, self.enc, self.out, self.reply
        keepalive = "keepalive" in d.quirks
        # Headers and head frames leave in one write (one syscall, one wake-up
        # of the reader), unless a stall must come between them.
        stall_first = d.fault == "stall_before"
        headers = {"Content-Type": enc.content_type, "Cache-Control": "no-cache"}
        await out.start(200, headers, chunked=True, hold=not stall_first)
        if stall_first:
            await self.stall()
        await self.emit(enc.head(self.stats))
        if keepalive:
            await self.emit(enc.keepalive())
        await out.flush()
        enc.warm()
        mid_fault = d.fault if d.fault in MID_STREAM else None
        burst, held = "burst" in d.quirks, b""
        i = 0
        for text, channel, last in reply.tokens():
            if mid_fault and i == d.fault_at:
                if held:  # what a burst holds leaves before the fault
                    await self.emit(held)
                    held = b""
                if await self._fault_at_slot(i):
                    return
            if keepalive:
                prev = self.due(i - 1) if i else 0.0
                await self._sleep_until(self.base + self.scale * (prev + self.due(i)) / 2)
                await self.emit(enc.keepalive())
            await self.wait_slot(i)
            self._stamp(i, channel)
            frame = enc.token(text, channel, reply.finish_reason if last else None, self.stats)
            if burst and not last and i % BURST != BURST - 1:
                held += frame
            else:
                await self.emit(held + frame)
                held = b""
            i += 1
        assert reply.finish_reason is not None
        self.record["generated"] = reply.made
        if mid_fault and d.fault_at >= i and await self._fault_at_slot(i):
            return
        self.stats.t_end = time.monotonic()
        await self.emit(enc.finish(reply.finish_reason, self.reported()))
        await out.end()

    async def _collect(self) -> tuple[list[str], list[str]]:
        """All (reasoning, answer or tool) tokens, gathered in slices between yields."""
        reasoning: list[str] = []
        answer: list[str] = []
        for k, (text, channel, _last) in enumerate(self.reply.tokens(), 1):
            (reasoning if channel == "reasoning" else answer).append(text)
            if k % COLLECT_SLICE == 0:
                if self.out.client_gone():
                    raise ClientGone()
                await asyncio.sleep(0)
        return reasoning, answer

    async def run_whole(self) -> None:
        """Non-streaming: wait as long as generation would take, then one JSON body.
        Honours stall_before/stall_after (extra wait), drop_mid (abort at the
        fault slot) and bad_json (a truncated body); other faults do not apply."""
        d, st, reply = self.d, self.stats, self.reply
        reasoning, answer = await self._collect()
        n = len(reasoning) + len(answer)
        if d.fault == "stall_before" or (d.fault == "stall_after" and d.fault_at < n):
            await self.stall()
        if d.fault == "drop_mid" and d.fault_at <= n:
            await self.wait_slot(d.fault_at)
            self.out.abort()
            return
        if n:
            await self.wait_slot(n - 1)
            now = time.monotonic()
            st.t_first = st.t_last = now
            st.completion_tokens, st.reasoning_tokens = n, len(reasoning)
            self.record.update(t_first_token=now, t_last_token=now, tokens=n, generated=reply.made)
        st.t_end = time.monotonic()
        assert reply.finish_reason is not None
        obj = self.enc.whole("".join(reasoning), "".join(answer), reply.finish_reason, self.reported())
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        if d.fault == "bad_json":
            body = body[: len(body) // 2]
        await self.out.send_full(200, body, "application/json")


__all__ = ["StreamRun"]
