"""Timing profiles of the emulator, and the schedule a profile implies.

Invariant: a profile fully determines *when* each token of a reply is due,
relative to the moment the request was received: token ``i`` (0-based, the
first reasoning or answer token) is due at ``ttft + i / tps + jitter_i``
seconds, where ``jitter_i`` is seeded noise of at most ``jitter / tps`` and due
times strictly increase. The server multiplies these offsets by its time scale
and paces from the start time; it never sums sleeps.

The three public profiles reproduce the long race of the public benchmark
(DESIGN.md): with N tokens, wall time = ttft + (N - 1) / tps and output speed
(N - 1) / (e2e - ttft) = tps exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LONG_RACE_TOKENS = 878
"""Tokens of the public long generation race."""


@dataclass(frozen=True)
class Profile:
    """How one emulated backend behaves in time."""

    name: str
    """The model id that selects this profile (``model: dgx-spark``)."""
    ttft: float
    """Seconds from request receipt to the first token."""
    tps: float
    """Tokens per second once generating (the output speed)."""
    jitter: float = 0.05
    """Per-token timing noise as a fraction of one inter-token interval."""
    reasoning_tokens: int = 0
    """Reasoning tokens generated before the answer (they are paced too)."""
    reply_tokens: int = LONG_RACE_TOKENS
    """Length of the generated long reply when the request names none."""
    description: str = ""

    def offsets(self, n: int, seed: int = 0) -> list[float]:
        """Due times (seconds after receipt, unscaled) of ``n`` tokens.

        Token 0 carries no jitter, so TTFT is exact; later tokens move by at
        most ``jitter / tps`` and are clamped to stay strictly increasing.
        """
        rng = random.Random(f"jitter:{seed}:{self.name}")
        step = 1.0 / self.tps
        amp = self.jitter * step
        out: list[float] = []
        prev = float("-inf")
        for i in range(n):
            noise = 0.0 if i == 0 else rng.uniform(-amp, amp)
            due = self.ttft + i * step + noise
            if due <= prev:
                due = prev + step * 0.01
            out.append(due)
            prev = due
        return out

    def e2e(self, n: int) -> float:
        """Wall time of an ``n``-token reply without jitter: ttft + (n-1)/tps."""
        return self.ttft + max(0, n - 1) / self.tps


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "cloud",
            ttft=0.90,
            tps=208.0,
            description="Hosted API of the public race: first token in 0.90 s, "
            "208 tok/s; 878 tokens end at ~5.12 s (public: 5.11 s).",
        ),
        Profile(
            "dgx-spark",
            ttft=1.39,
            tps=42.9,
            description="DGX Spark of the public race: 1.39 s TTFT, 42.9 tok/s; "
            "878 tokens end at ~21.83 s (public: 21.83 s).",
        ),
        Profile(
            "rtx4090-offload",
            ttft=2.05,
            tps=8.7,
            reply_tokens=800,
            description="RTX 4090 offloading a 120B model to RAM: 2.05 s TTFT, "
            "8.7 tok/s. The public wall time (93.89 s) and rate imply ~800 tokens "
            "for this lane, not 878: 2.05 + 799 / 8.7 = 93.89 s.",
        ),
        Profile("instant", ttft=0.01, tps=2000.0, description="For tests: near-instant."),
        Profile("fast-local", ttft=0.15, tps=120.0, description="A quick local GPU server."),
        Profile(
            "thinker",
            ttft=0.3,
            tps=80.0,
            reasoning_tokens=40,
            description="A reasoning model: 40 reasoning tokens before the answer.",
        ),
        Profile(
            "slow-start",
            ttft=3.0,
            tps=300.0,
            description="Slow to start, then very fast (wins long races late).",
        ),
    )
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``. Raises KeyError naming the known profiles."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise KeyError(f"unknown sim profile {name!r} (known: {known})") from None


__all__ = ["LONG_RACE_TOKENS", "PROFILES", "Profile", "get_profile"]
