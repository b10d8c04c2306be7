"""The ``text`` lane mode: the model writes its command in a shell code block.

Invariant: a command runs only when the model finished it and meant it:
either a shell block closed (the command is taken the moment it closes, and
the lane stops reading, so a fast lane acts before its reply ends), or the
reply ended naturally and the extractor's looser rules found one. A reply
that did not end naturally (cut by ``max_tokens``, a content filter, ...)
runs nothing: its verdict is "reply cut mid-command". A stream cut without
any finish reason is a lane error. Text inside ``<think>…</think>`` is never
the command (``race/extract.py``).

After a failed turn the model is told what ran, what it printed (the tail),
what was wrong and how many turns are left.
"""

from __future__ import annotations

from typing import Any

from thunderdome.backends.base import BackendError, ChatRequest
from thunderdome.core.events import StreamEnded
from thunderdome.race.engine import Lane, Race
from thunderdome.race.extract import CommandExtractor
from thunderdome.race.reply import cut_reason, read_reply
from thunderdome.race.turns import Attempt, Judgement, Messages, tail

FEEDBACK_OUTPUT_LIMIT = 1500
"""Characters of stdout / stderr (the tail) shown to the model after a failure."""
NO_COMMAND = "no command found"
CUT_MID_COMMAND = "reply cut mid-command"
TOKEN_LIMIT_ENDS = frozenset({"length", "max_tokens"})


class TextMode:
    """``text`` mode: ask in plain chat, take the command from a code block."""

    name = "text"

    async def attempt(self, race: Race, lane: Lane, messages: Messages, turn: int, sim: dict[str, Any] | None) -> Attempt:
        request = ChatRequest(messages=messages, max_tokens=race.max_tokens, lane=lane.name, turn=turn, sim=sim)
        extractor = CommandExtractor()
        reply = await read_reply(race, lane, request, extractor.feed)
        if reply.early or lane.ended:
            return Attempt(reply.text, extractor.command)
        cut = cut_reason(race, lane, reply)
        if cut:
            raise BackendError(cut)
        if not reply.natural:
            return Attempt(reply.text, None, cut_detail(reply.ended, race.max_tokens))
        command = extractor.finish()
        return Attempt(reply.text, command, "" if command is not None else NO_COMMAND)

    def follow_up(self, messages: Messages, attempt: Attempt, judged: Judgement, turns_left: int) -> Messages:
        return messages + [
            {"role": "assistant", "content": attempt.text},
            {"role": "user", "content": feedback_message(attempt.command, judged.result, judged.detail, turns_left)},
        ]


def cut_detail(ended: StreamEnded | None, max_tokens: int) -> str:
    """The verdict of a reply that did not end naturally: nothing ran."""
    why = ended.finish_reason if ended is not None else None
    if why in TOKEN_LIMIT_ENDS:
        return f"{CUT_MID_COMMAND} (at max_tokens={max_tokens}): nothing ran"
    said = "no finish reason" if why is None else f"finish reason {why!r}"
    return f"{CUT_MID_COMMAND} ({said}): nothing ran"


def describe_exit(res: Any) -> str:
    """One line on how a command ended."""
    if res.timed_out:
        return f"It timed out after {res.duration:.1f} s and was killed."
    if res.exit_code is None:
        why = res.reason or "it was killed"
        return f"It did not exit normally ({why})."
    return f"It exited with code {res.exit_code} after {res.duration:.2f} s."


def feedback_message(command: str | None, res: Any, detail: str, turns_left: int) -> str:
    """The next user message after a failed turn: what ran, what it printed,
    what was wrong, how many turns are left."""
    more = f"You have {turns_left} more {'turn' if turns_left == 1 else 'turns'}."
    if command is None and detail.startswith(CUT_MID_COMMAND):
        return (
            f"Your reply was cut before it ended ({detail}). Reply with just the command in one "
            f"```bash code block, and keep the reply short. {more}"
        )
    if command is None:
        return (
            "I could not find a shell command in your reply. Reply with the command in one "
            f"```bash code block. {more}"
        )
    parts = [f"Your command ran:\n```bash\n{command}\n```"]
    if res is not None:  # what it did, when the act kept its result
        parts.append(describe_exit(res))
        for name, text in (("stdout", res.stdout), ("stderr", res.stderr)):
            if text.strip():
                parts.append(f"{name}:\n```\n{tail(text, FEEDBACK_OUTPUT_LIMIT).rstrip()}\n```")
    parts.append(f"That did not solve the task: {detail}.")
    parts.append(f"{more} Reply with a corrected command in one ```bash code block.")
    return "\n\n".join(parts)


__all__ = ["CUT_MID_COMMAND", "NO_COMMAND", "TextMode", "cut_detail", "feedback_message"]
