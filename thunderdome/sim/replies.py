"""What the emulator says: a lossless tokenizer, generated text, reply choice.

Invariant: ``"".join(tokenize(text)) == text`` for every string, and every
token is non-empty; so a client that concatenates the streamed deltas gets
back exactly the chosen reply (or its first ``max_tokens`` tokens). Generated
text is a pure function of its length and seed. Replies are lazy: a token is
tokenized or generated (a paragraph at a time) only when the stream asks for
it, so the first token of a 100k-token reply costs no more than a short one's.
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Iterable, Iterator, Mapping

_TOKEN = re.compile(r" ?[^\W\d_]{1,8}| ?\d{1,3}| ?_| ?[^\w\s]|\n|[ \t]+|\s")


def tokenize(text: str) -> list[str]:
    """Split into word pieces with their leading space, digits in threes,
    punctuation and newlines; joining the pieces gives back ``text``."""
    return _TOKEN.findall(text)


def iter_tokens(text: str) -> Iterator[str]:
    """``tokenize(text)``, one token at a time (no work before the first)."""
    return (m.group() for m in _TOKEN.finditer(text))


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


class GeneratedTokens:
    """The tokens of deterministic text of exactly ``n`` tokens drawn from
    ``bank``, made one paragraph at a time as they are consumed. ``made``
    counts the tokens produced so far (the paragraph being read included)."""

    def __init__(self, bank: tuple[str, ...], n: int, seed: int, title: str) -> None:
        self.bank, self.n, self.seed, self.title = bank, n, seed, title
        self.made = 0

    def __iter__(self) -> Iterator[str]:
        left = self.n
        if left <= 0:
            return
        rng = random.Random(f"text:{self.seed}:{len(self.bank)}")
        piece = self.title
        while True:
            # Pieces end with a newline, which is always a token of its own,
            # so tokenizing piece by piece equals tokenizing the whole text.
            toks = tokenize(piece)[:left]
            self.made += len(toks)
            yield from toks
            left -= len(toks)
            if left <= 0:
                return
            piece = " ".join(rng.choice(self.bank) for _ in range(rng.randint(3, 6))) + "\n\n"


def generated_text_tokens(n: int, seed: int = 0) -> GeneratedTokens:
    """The tokens of ``generate_text(n, seed)``, lazily."""
    return GeneratedTokens(_ESSAY, n, seed, _TITLE)


def generated_reasoning_tokens(n: int, seed: int = 0) -> GeneratedTokens:
    """The tokens of ``generate_reasoning(n, seed)``, lazily."""
    return GeneratedTokens(_REASONING, n, seed, "")


FLOOD_CHARS = 10 * 1024 * 1024
"""Length of a ``flood_line`` answer (characters, no newline among them)."""
FLOOD_PIECE = ("flood " * 171)[:1024]
"""One token of a ``flood_line`` answer: 1 KiB of text without a newline."""


def flood_line_tokens(chars: int = FLOOD_CHARS) -> Iterator[str]:
    """The ``flood_line`` fault's answer: ``chars`` characters in one line,
    a ``FLOOD_PIECE`` per token (the last one shorter), made as consumed."""
    whole, rest = divmod(chars, len(FLOOD_PIECE))
    yield from itertools.repeat(FLOOD_PIECE, whole)
    if rest:
        yield FLOOD_PIECE[:rest]


def generate_text(n: int, seed: int = 0) -> str:
    """A plausible English essay about fast inference, exactly ``n`` tokens long.
    It contains non-ASCII characters early (an em dash is token 2)."""
    return "".join(generated_text_tokens(n, seed))


def generate_reasoning(n: int, seed: int = 0) -> str:
    """Plausible model 'thinking' text, exactly ``n`` tokens long."""
    return "".join(generated_reasoning_tokens(n, seed))


class Reply:
    """The tokens one request will stream, in order: reasoning, then answer,
    at most ``max_tokens`` of them; produced lazily by ``tokens()``."""

    def __init__(
        self,
        reasoning: Iterable[str],
        answer: Iterable[str],
        *,
        max_tokens: int | None = None,
        wrong: bool = False,
    ) -> None:
        self._sources = (reasoning, answer)
        self.max_tokens = max_tokens
        self.wrong = wrong
        """True when ``wrong_reply`` was chosen instead of the right answer."""
        self.finish_reason: str | None = None
        """``stop`` or ``length`` (cut by max_tokens); known when ``tokens()``
        yields its last token (or ends, for an empty reply)."""

    @property
    def made(self) -> int:
        """Tokens of generated text produced so far (a measure of laziness)."""
        return sum(s.made for s in self._sources if isinstance(s, GeneratedTokens))

    def tokens(self) -> Iterator[tuple[str, str, bool]]:
        """(text, channel, is_last) per token; channel is ``reasoning`` or
        ``answer``. Looks one token ahead, so ``finish_reason`` is set before
        the last token is yielded. Iterate once."""
        reasoning, answer = self._sources
        source: Iterator[tuple[str, str]] = itertools.chain(
            zip(reasoning, itertools.repeat("reasoning")), zip(answer, itertools.repeat("answer"))
        )
        capped = source if self.max_tokens is None else itertools.islice(source, max(0, self.max_tokens))
        prev: tuple[str, str] | None = None
        for item in capped:
            if prev is not None:
                yield prev[0], prev[1], False
            prev = item
        cut = self.max_tokens is not None and next(source, None) is not None
        self.finish_reason = "length" if cut else "stop"
        if prev is not None:
            yield prev[0], prev[1], True


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
    flood_at: int | None = None,
) -> Reply:
    """Pick the reply (lazily: no text is tokenized or generated here).
    Precedence for the answer: directive ``reply``, then directive ``tokens``
    (generated), then the server's reply table, then generated text of the
    profile's length. ``wrong_reply`` replaces the answer with seeded
    probability ``wrong_rate``. ``flood_at`` (fault ``flood_line``): after
    that many answer tokens the answer becomes ``flood_line_tokens()``.
    ``max_tokens`` caps reasoning plus answer; a cut makes finish_reason ``length``."""
    answer: Iterable[str]
    if reply is not None:
        answer = iter_tokens(reply)
    elif tokens is not None:
        answer = generated_text_tokens(tokens, seed)
    elif table_reply is not None:
        answer = iter_tokens(table_reply)
    else:
        answer = generated_text_tokens(profile_reply_tokens, seed)
    wrong = False
    if wrong_reply is not None and wrong_rate > 0:
        wrong = random.Random(f"wrong:{seed}").random() < wrong_rate
        if wrong:
            answer = iter_tokens(wrong_reply)
    if flood_at is not None:
        answer = itertools.chain(itertools.islice(answer, flood_at), flood_line_tokens())
    think: Iterable[str]
    if reasoning is not None:
        think = iter_tokens(reasoning)
    else:
        think = generated_reasoning_tokens(profile_reasoning_tokens, seed)
    return Reply(think, answer, max_tokens=max_tokens, wrong=wrong)


__all__ = [
    "GeneratedTokens",
    "Reply",
    "choose_reply",
    "flood_line_tokens",
    "generate_reasoning",
    "generate_text",
    "generated_reasoning_tokens",
    "generated_text_tokens",
    "iter_tokens",
    "match_table",
    "tokenize",
]
