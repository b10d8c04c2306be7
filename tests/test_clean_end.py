"""A clean end is a clean end (issue #14.2), over real loopback HTTP.

A stream that ends with its end marker after tokens, naming no finish
reason, is a finish with a note (it can win); only a stream with no end
marker, or with the marker and no token at all (llama-cpp-python's cut: role
chunk, then ``[DONE]``), is cut: the lane errors."""

from __future__ import annotations

import json
from typing import Any

from _emulator import RawServer, chunked  # type: ignore[import-not-found]

from thunderdome.core.events import Event, LaneFinished
from thunderdome.race.reply import NO_FINISH_REASON
from thunderdome.race.runner import run_race
from thunderdome.race.tasks import load_task
from thunderdome.output.report import standings_table
from thunderdome.core.specs import BackendSpec

TOKENS = 100


def _frame(delta: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}).encode() + b"\n\n"


ROLE = _frame({"role": "assistant", "content": None})
WORDS = [_frame({"content": f" w{i}"}) for i in range(TOKENS)]
DONE = b"data: [DONE]\n\n"


async def _race(pieces: list[bytes]):
    events: list[Event] = []
    async with RawServer(lambda seen: chunked(pieces)) as server:
        spec = BackendSpec(name="lane", kind="openai", url=server.url + "/v1", model="m")
        standings = await run_race(load_task("long-essay"), [spec], [events.append], max_tokens=TOKENS + 50)
    return standings, events


async def test_tokens_then_done_without_finish_reason_is_a_finish_with_a_note() -> None:
    standings, events = await _race([ROLE, *WORDS, DONE])
    results = standings.results()
    lane = results["lanes"][0]
    assert lane["status"] == "winner" and results["winner"] == "lane", lane
    assert lane["tokens"] == TOKENS and lane["error"] is None and lane["finish_reason"] is None
    ends = [e for e in events if isinstance(e, LaneFinished)]
    assert [e.reason for e in ends] == [NO_FINISH_REASON]
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(standings_table(standings, standings.finished_t, final=True, width=200))
    assert "no finish reason" in console.export_text()  # the note is shown, not dropped


async def test_role_chunk_then_done_is_a_cut() -> None:
    standings, _ = await _race([ROLE, DONE])
    lane = standings.results()["lanes"][0]
    assert lane["status"] == "error" and standings.results()["winner"] is None
    assert lane["error"] == "stream cut: ended without a finish reason after 0 tokens"


async def test_tokens_without_done_is_a_cut() -> None:
    standings, _ = await _race([ROLE, *WORDS])
    lane = standings.results()["lanes"][0]
    assert lane["status"] == "error" and lane["tokens"] == TOKENS
    assert lane["error"] == f"stream ended without [DONE] after {TOKENS} tokens (likely cut)"
