"""Timing profiles of the emulator, and the schedule a profile implies.

Invariant: a profile fully determines *when* each token of a reply is due,
relative to the moment the request arrived: token ``i`` (0-based, the first
reasoning or answer token) is due at ``ttft + i / tps + jitter_i`` seconds,
where ``jitter_i`` is seeded noise of at most ``jitter / tps`` (capped below
half a step, so due times strictly increase). ``jitter_i`` is a pure function
of (profile, seed, i), so any token's due time costs O(1) and nothing is
precomputed per request. The server multiplies these offsets by its time
scale and paces from the arrival time; it never sums sleeps.

The three public profiles reproduce the long race of the public benchmark
(DESIGN.md): with N tokens, wall time = ttft + (N - 1) / tps and output speed
(N - 1) / (e2e - ttft) = tps exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

LONG_RACE_TOKENS = 878
"""Tokens of the public long generation race."""

MAX_JITTER = 0.49
"""Jitter is capped at this fraction of a step: neighbours never swap."""

_M64 = (1 << 64) - 1


def _noise(key: int, i: int) -> float:
    """Uniform in [-1, 1), a pure function of (key, i): splitmix64 of the i-th
    step of a Weyl sequence seeded by ``key`` (counter-based, no state)."""
    z = (key + (i + 1) * 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    z ^= z >> 31
    return (z >> 11) * (2.0 / (1 << 53)) - 1.0


@dataclass(frozen=True)
class Schedule:
    """Due times of one reply's tokens (seconds after arrival, unscaled)."""

    ttft: float
    tps: float
    amp: float
    """Largest jitter in seconds (``min(jitter, MAX_JITTER) / tps``)."""
    key: int
    """Seeds the noise (from the profile name and the request's seed)."""

    def due(self, i: int) -> float:
        """When token ``i`` is due. Token 0 carries no jitter, so TTFT is exact."""
        if i <= 0:
            return self.ttft
        return self.ttft + i / self.tps + self.amp * _noise(self.key, i)


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

    def schedule(self, seed: int = 0) -> Schedule:
        """The due times of one reply, computed per token on demand (O(1) each)."""
        digest = hashlib.blake2b(f"jitter:{seed}:{self.name}".encode(), digest_size=8).digest()
        amp = max(0.0, min(self.jitter, MAX_JITTER)) / self.tps
        return Schedule(self.ttft, self.tps, amp, int.from_bytes(digest, "little"))

    def offsets(self, n: int, seed: int = 0) -> list[float]:
        """Due times (seconds after arrival, unscaled) of ``n`` tokens, as a list
        (for tests and tools; the server asks ``schedule(seed).due(i)`` per token).

        Token 0 carries no jitter, so TTFT is exact; later tokens move by at
        most ``jitter / tps`` and strictly increase.
        """
        due = self.schedule(seed).due
        return [due(i) for i in range(n)]

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


__all__ = ["LONG_RACE_TOKENS", "MAX_JITTER", "PROFILES", "Profile", "Schedule", "get_profile"]
