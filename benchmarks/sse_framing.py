"""SSE framing on the hot path: Thunderdome's ``SSEDecoder`` vs httpx2's built-in ``EventSource``.

Invariant: both sides frame the very same byte chunks (the emulator's own
wire encoders' frames, cut into chunks as a socket delivers them) out of the
same kind of in-memory ``httpx2.Response``, and must produce the same
``(event, data)`` sequence, or the benchmark fails; the figure is the median
over interleaved repeats of the time per event, from the first chunk to the
last event (no socket, no JSON parsing: framing only). Ours is what the
backends run: ``response.stream`` chunks, each stamped and split whole
(``SSEDecoder.split``). httpx2's is its public API: ``EventSource(response)``
(``aiter_text`` decoding, then its line and event decoders), each event
stamped as it is yielded.

    python -m benchmarks.sse_framing [--tokens 2000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any, AsyncIterator, Callable

from benchmarks.common import Figure, add_common_args, command, log, report

BENCH = "sse_framing"


def _frames(protocol: str, tokens: int) -> list[bytes]:
    """One stream's frames as the emulator writes them (one write per token)."""
    from thunderdome.sim.wire import AnthropicEncoder, OpenAIEncoder, Stats

    encoder = (OpenAIEncoder if protocol == "openai" else AnthropicEncoder)("bench", include_usage=True)
    stats = Stats(prompt_tokens=10, t_arrival=0.0, t_received=0.0)
    encoder.warm()
    return [encoder.head(stats), *(encoder.token(f" w{i}", "answer", None, stats) for i in range(tokens)),
            encoder.finish("stop", stats)]


def _per_write(frames: list[bytes]) -> list[bytes]:
    return frames


def _coalesced(frames: list[bytes], n: int = 16) -> list[bytes]:
    """``n`` writes per chunk: a burst read at once (a reader behind the stream)."""
    return [b"".join(frames[i:i + n]) for i in range(0, len(frames), n)]


def _crlf(frames: list[bytes]) -> list[bytes]:
    """Every line ended in CRLF (sse-starlette and friends)."""
    return [f.replace(b"\n", b"\r\n") for f in frames]


def _halves(frames: list[bytes]) -> list[bytes]:
    """Every write split in two (a frame straddling two reads)."""
    return [part for f in frames for part in (f[: len(f) // 2], f[len(f) // 2:])]


CASES: dict[str, tuple[str, Callable[[list[bytes]], list[bytes]]]] = {
    "openai, one write per chunk": ("openai", _per_write),
    "anthropic, one write per chunk": ("anthropic", _per_write),
    "openai, 16 writes per chunk": ("openai", _coalesced),
    "openai, CRLF lines": ("openai", _crlf),
    "openai, writes split across chunks": ("openai", _halves),
}


def _response(chunks: list[bytes]) -> Any:
    import httpx2

    class Chunks(httpx2.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Chunks(),
                           request=httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions"))


async def ours(chunks: list[bytes]) -> tuple[float, list[tuple[str, str]]]:
    from thunderdome.backends.sse import SSEDecoder

    response = _response(chunks)
    split = SSEDecoder().split
    got: list[tuple[str, str]] = []
    clock = time.perf_counter
    start = clock()
    async for chunk in response.stream:
        t = clock()  # noqa: F841 - the stamp the backends take per chunk
        frames, error = split(chunk)
        if error is not None:
            raise error
        got += frames
    return clock() - start, got


async def builtin(chunks: list[bytes]) -> tuple[float, list[tuple[str, str]]]:
    import httpx2

    response = _response(chunks)
    got: list[tuple[str, str]] = []
    clock = time.perf_counter
    start = clock()
    async for sse in httpx2.EventSource(response):
        t = clock()  # noqa: F841 - the stamp, per event
        got.append((sse.event, sse.data))
    return clock() - start, got


def measure(tokens: int, repeats: int) -> dict[str, dict[str, list[float]]]:
    """``{case: {"ours" | "httpx2": [seconds per event, per repeat]}}``."""
    out: dict[str, dict[str, list[float]]] = {}
    sides = {"ours": ours, "httpx2": builtin}
    for case, (protocol, cut) in CASES.items():
        chunks = cut(_frames(protocol, tokens))
        _, want = asyncio.run(ours(chunks))
        _, theirs = asyncio.run(builtin(chunks))
        if theirs != want:
            raise RuntimeError(f"{case}: the two framings disagree ({len(want)} vs {len(theirs)} events)")
        times = out[case] = {"ours": [], "httpx2": []}
        gc.disable()
        try:
            for k in range(repeats):
                for side in ("ours", "httpx2") if k % 2 == 0 else ("httpx2", "ours"):
                    elapsed, _ = asyncio.run(sides[side](chunks))
                    times[side].append(elapsed / len(want))
        finally:
            gc.enable()
        log(f"[{BENCH}] {case}: {len(want)} events in {len(chunks)} chunks")
    return out


def run(*, quick: bool = True, tokens: int = 2000, repeats: int | None = None) -> list[Figure]:
    repeats = repeats or (15 if quick else 60)
    got = measure(tokens, repeats)
    cmd = command(BENCH, ["--tokens", str(tokens), "--repeats", str(repeats)])
    figures = []
    for case, times in got.items():
        mine, theirs = statistics.median(times["ours"]) * 1e6, statistics.median(times["httpx2"]) * 1e6
        figures.append(Figure(
            BENCH, f"{case}: time per event", f"ours {mine:.2f} us, httpx2 EventSource {theirs:.2f} us "
            f"({theirs / mine:.1f}x; medians of {repeats})", "ours <= httpx2's", mine <= theirs, cmd,
            {"ours_us": mine, "httpx2_us": theirs, "tokens": tokens, "repeats": repeats}))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{BENCH}", description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=2000, help="tokens per stream")
    p.add_argument("--repeats", type=int, default=15, help="interleaved repeats per side")
    add_common_args(p)
    args = p.parse_args(argv)
    report(run(tokens=args.tokens, repeats=args.repeats), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
