"""Answers to Thunderdome task prompts, for ``thunderdome sim serve``.

Invariant: a prompt that a known task's prompt template makes (its ``{name}``
fields filled with any values) is answered with that task's reference reply,
its fields filled with the same values, so a lane of any kind pointed at the
emulator plays the task like a perfect model (``kill -9`` of the PIDs its
prompt names). So does an agent lane's program, whose message holds the
task's prompt inside its own framing (the task's system text before it, the
agent's notes after): a prompt the template makes, starting on a line of
the message and ending at a line's end, is found there too. Pure string
work: the templates come in as plain strings (the command line loads the
tasks; the emulator never imports the race), fields are read exactly as the
race fills them (``{name}`` only), and a message no template's prompt is in
is answered with None. Work per message is bounded: a pattern runs only
where the template's literal head is found, at most ``MAX_TRIES`` places.
"""

from __future__ import annotations

import re
from typing import Iterable

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_TRIES = 8
"""Places in one message where a template's prompt is tried (where its head is)."""


def _pattern(template: str) -> re.Pattern[str]:
    """``template`` as a full-match pattern: literals escaped, each field a
    lazy group (a field used again must repeat what it matched)."""
    parts: list[str] = []
    seen: set[str] = set()
    at = 0
    for field in _FIELD.finditer(template):
        parts.append(re.escape(template[at : field.start()]))
        name = field.group(1)
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
        seen.add(name)
        at = field.end()
    parts.append(re.escape(template[at:]))
    return re.compile("".join(parts) + r"(?=\s*(?:\n|\Z))", re.DOTALL)


class TaskReplies:
    """``answer(prompt)``: the reference reply of the task whose prompt template made ``prompt``."""

    def __init__(self, tasks: Iterable[tuple[str, str]]) -> None:
        """``tasks``: (prompt template, reference reply template) pairs."""
        self._tasks = []
        for prompt, reply in tasks:
            prompt = prompt.strip()
            head = _FIELD.split(prompt, maxsplit=1)[0]
            self._tasks.append((head, _pattern(prompt), reply))

    def __len__(self) -> int:
        return len(self._tasks)

    def answer(self, prompt: str) -> str | None:
        prompt = prompt.strip()
        for head, pattern, reply in self._tasks:
            found = self._find(prompt, head, pattern)
            if found is not None:
                values = found.groupdict()
                return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), reply)
        return None

    @staticmethod
    def _find(prompt: str, head: str, pattern: re.Pattern[str]) -> re.Match[str] | None:
        """The template's prompt: the whole message, else within it from a line's start."""
        whole = pattern.fullmatch(prompt) if prompt.startswith(head) else None
        if whole is not None:
            return whole
        at = prompt.find(head, 1)
        for _ in range(MAX_TRIES):
            if at < 0:
                return None
            if prompt[at - 1] == "\n":
                found = pattern.match(prompt, at)
                if found is not None:
                    return found
            at = prompt.find(head, at + 1)
        return None


__all__ = ["TaskReplies"]
