"""What the emulator says: a lossless tokenizer, generated text, reply choice.

Invariant: ``"".join(tokenize(text)) == text`` for every string, and every
token is non-empty; so a client that concatenates the streamed deltas gets
back exactly the chosen reply (or its first ``max_tokens`` tokens). Generated
text is a pure function of its length and seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Mapping

_TOKEN = re.compile(r" ?[^\W\d_]{1,8}| ?\d{1,3}| ?_| ?[^\w\s]|\n|[ \t]+|\s")


def tokenize(text: str) -> list[str]:
    """Split into word pieces with their leading space, digits in threes,
    punctuation and newlines; joining the pieces gives back ``text``."""
    return _TOKEN.findall(text)


_TITLE = "Fast inference — why the first token matters\n\n"

_ESSAY = (
    "A coding agent spends most of its life waiting for tokens.",
    "Two numbers decide how long that wait feels: time to first token and output speed.",
    "Time to first token is the pause before anything happens; output speed is how fast the answer pours out once it starts.",
    "A hosted API often wins the first race because its queue is short and its prompt cache is warm.",
    "A local box can still win a long race if it sustains a steady rate for minutes.",
    "Memory bandwidth sets the ceiling: every generated token reads the active weights once.",
    "When a 120B model does not fit in VRAM, layers spill to system RAM and each token crawls across the PCIe bus.",
    "That is why an RTX 4090 offloading a large model can fall to single-digit tokens per second.",
    "Unified memory changes the trade-off: the whole model stays resident, at a lower peak bandwidth.",
    "Batching helps throughput for many users but rarely helps the one user staring at the terminal.",
    "Speculative decoding drafts several tokens with a small model and lets the large model verify them in one pass.",
    "Quantization trades a little accuracy for a lot of bandwidth — 4-bit weights move four times less data than 16-bit ones.",
    "Prompt processing is compute-bound, while generation is bandwidth-bound; a long prompt shifts the balance toward the GPU with more FLOPs.",
    "A fair benchmark sends the same prompt to every backend at the same instant and stamps each byte as it arrives.",
    "Averages hide stalls, so inter-token latency belongs in the report as p50, p90 and p99.",
    "Server-reported figures are useful, but the client clock is the one the user actually experiences.",
    "For an agent loop, the first useful token matters more than the last, because the command can run as soon as it is complete.",
    "For a long essay, the finish line is the last token, and a fast starter can be overtaken halfway.",
    "Network jitter adds a few milliseconds; a cold model load can add tens of seconds.",
    "Keep-alive connections avoid a fresh TCP and TLS handshake on every turn.",
    "Streaming lets a person read along, which makes a slow backend feel faster than it is.",
    "The honest answer to “which backend is fastest?” is always: for which task, and measured how?",
    "Throughput per watt is a third race that nobody puts on the poster.",
    "A leaderboard should rank by what was measured and label every estimate as an estimate.",
    "Replaying a recorded race shows exactly what happened, without the network, at a meetup or in a talk.",
    "Tokens are not words: one word may take several tokens, and code takes more than prose.",
    "A reasoning model thinks before it answers, so its first answer token arrives long after its first token.",
    "Context length grows the KV cache, and a large cache slows every step a little more.",
    "Flash attention and paged KV caches keep long contexts from eating all the memory.",
    "In the end, speed is a feature the user feels in every single turn.",
)

_REASONING = (
    "The user wants a concrete answer, so I should think about the constraints first.",
    "Let me check which parts of the task matter most.",
    "There may be an edge case here; I should handle it.",
    "The simplest command that does the job is usually the right one.",
    "I will double-check the numbers before answering.",
    "Okay, that looks consistent, so I can write the answer now.",
    "Maybe there is a shorter way, but clarity matters more.",
    "I should not invent details that the prompt does not give.",
)


def _generate(bank: tuple[str, ...], n: int, seed: int, title: str) -> str:
    """Deterministic text of exactly ``n`` tokens drawn from ``bank``."""
    if n <= 0:
        return ""
    rng = random.Random(f"text:{seed}:{len(bank)}")
    parts = [title]
    count = len(tokenize(title))
    while count < n:
        para = " ".join(rng.choice(bank) for _ in range(rng.randint(3, 6))) + "\n\n"
        parts.append(para)
        count += len(tokenize(para))
    return "".join(tokenize("".join(parts))[:n])


def generate_text(n: int, seed: int = 0) -> str:
    """A plausible English essay about fast inference, exactly ``n`` tokens long.
    It contains non-ASCII characters early (an em dash is token 2)."""
    return _generate(_ESSAY, n, seed, _TITLE)


def generate_reasoning(n: int, seed: int = 0) -> str:
    """Plausible model 'thinking' text, exactly ``n`` tokens long."""
    return _generate(_REASONING, n, seed, "")


@dataclass(frozen=True)
class Reply:
    """The tokens one request will stream, in order: reasoning, then answer."""

    reasoning: tuple[str, ...]
    answer: tuple[str, ...]
    finish_reason: str
    """``stop`` or ``length`` (cut by max_tokens)."""
    wrong: bool = False
    """True when ``wrong_reply`` was chosen instead of the right answer."""

    @property
    def tokens(self) -> list[tuple[str, str]]:
        """(text, channel) pairs; channel is ``reasoning`` or ``answer``."""
        return [(t, "reasoning") for t in self.reasoning] + [(t, "answer") for t in self.answer]

    @property
    def answer_text(self) -> str:
        return "".join(self.answer)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)


def match_table(table: Mapping[str, str], prompt: str) -> str | None:
    """The reply whose key is the longest substring of ``prompt``, if any."""
    best: str | None = None
    for key in table:
        if key in prompt and (best is None or len(key) > len(best)):
            best = key
    return None if best is None else table[best]


def choose_reply(
    *,
    reply: str | None,
    tokens: int | None,
    reasoning: str | None,
    wrong_reply: str | None,
    wrong_rate: float,
    seed: int,
    profile_reply_tokens: int,
    profile_reasoning_tokens: int,
    table_reply: str | None,
    max_tokens: int | None,
) -> Reply:
    """Pick the reply. Precedence for the answer: directive ``reply``, then
    directive ``tokens`` (generated), then the server's reply table, then
    generated text of the profile's length. ``wrong_reply`` replaces the answer
    with seeded probability ``wrong_rate``. ``max_tokens`` caps reasoning plus
    answer; a cut makes finish_reason ``length``."""
    if reply is not None:
        text = reply
    elif tokens is not None:
        text = generate_text(tokens, seed)
    elif table_reply is not None:
        text = table_reply
    else:
        text = generate_text(profile_reply_tokens, seed)
    wrong = False
    if wrong_reply is not None and wrong_rate > 0:
        wrong = random.Random(f"wrong:{seed}").random() < wrong_rate
        if wrong:
            text = wrong_reply
    if reasoning is not None:
        think = tokenize(reasoning)
    else:
        think = tokenize(generate_reasoning(profile_reasoning_tokens, seed))
    answer = tokenize(text)
    finish = "stop"
    if max_tokens is not None and len(think) + len(answer) > max_tokens:
        finish = "length"
        cap = max(0, max_tokens)
        think, answer = think[:cap], answer[: max(0, cap - len(think))]
    return Reply(tuple(think), tuple(answer), finish, wrong)


__all__ = [
    "Reply",
    "choose_reply",
    "generate_reasoning",
    "generate_text",
    "match_table",
    "tokenize",
]
