"""What every streaming protocol's client must do alike, against the real
emulator over loopback: one table of where the protocols differ (their
finish reasons, the quirks their servers show), one test per behaviour.

What only one protocol does (its parser, its request shape, its usage
source) stays in that protocol's own test file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from _emulator import assert_well_ordered, collect, emulator, request, sim_backend  # type: ignore[import-not-found]

__all__ = ["emulator"]

REPLY = "Hello wörld 😀 — the quick brown fox jumps over the lazy dog."

QUIRKS = ("split_utf8", "trickle", "keepalive", "no_usage")
"""Wire quirks every protocol's servers show, which a client must ride out."""


@dataclass(frozen=True)
class Wire:
    """Where one protocol differs from the others."""

    stop: str
    """The finish reason of a whole reply."""
    length: str
    """The finish reason of a reply cut by ``max_tokens``."""
    quirks: tuple[str, ...] = QUIRKS
    silent_without_usage: bool = True
    """Under ``no_usage`` the client reports no usage at all (Anthropic still
    reports the input count its ``message_start`` carries)."""


WIRES = {
    "openai": Wire(stop="stop", length="length", quirks=(*QUIRKS, "choices_null")),
    "ollama": Wire(stop="stop", length="length"),
    "anthropic": Wire(stop="end_turn", length="max_tokens", silent_without_usage=False),
}

THINKERS: list[tuple[str, dict[str, Any]]] = [
    ("openai", {"reasoning_field": "reasoning_content"}),
    ("openai", {"reasoning_field": "reasoning"}),
    ("ollama", {}),
    ("anthropic", {}),
]
"""Each protocol's way of streaming reasoning (OpenAI servers use either field)."""


@pytest.mark.parametrize(("protocol", "extra"), THINKERS)
async def test_reasoning_is_its_own_channel_and_comes_first(emulator, protocol: str, extra: dict[str, Any]) -> None:
    directive = {"reply": "42", "reasoning": "Let me think about it.", "time_scale": 0.01, **extra}
    out = await collect(sim_backend(emulator.url, protocol, directive, model="thinker"))
    assert_well_ordered(out)
    assert (out.reasoning, out.answer) == ("Let me think about it.", "42")
    first_answer = next(i for i, e in enumerate(out.deltas) if e.channel == "answer")
    assert all(e.channel == "reasoning" for e in out.deltas[:first_answer])


@pytest.mark.parametrize("protocol", list(WIRES))
async def test_max_tokens_is_sent(emulator, protocol: str) -> None:
    out = await collect(sim_backend(emulator.url, protocol, {"tokens": 200}), request(max_tokens=6))
    assert_well_ordered(out)
    assert out.ended.finish_reason == WIRES[protocol].length
    assert out.usages[-1].output_tokens == 6


@pytest.mark.parametrize(
    ("protocol", "quirk"), [(protocol, quirk) for protocol, wire in WIRES.items() for quirk in wire.quirks]
)
async def test_quirks_still_succeed(emulator, protocol: str, quirk: str) -> None:
    wire = WIRES[protocol]
    out = await collect(sim_backend(emulator.url, protocol, {"reply": REPLY, "fault": quirk}))
    assert_well_ordered(out)
    assert out.answer == REPLY
    assert out.ended.finish_reason == wire.stop
    if quirk != "no_usage":
        assert out.usages[-1].output_tokens == len(out.deltas)
    elif wire.silent_without_usage:
        assert out.usages == []


@pytest.mark.parametrize("protocol", list(WIRES))
async def test_cut_stream_ends_with_no_finish_reason(emulator, protocol: str) -> None:
    out = await collect(sim_backend(emulator.url, protocol, {"reply": REPLY, "fault": "cut", "fault_at": 3}))
    assert_well_ordered(out)
    assert len(out.deltas) == 3
    assert out.ended.finish_reason is None
