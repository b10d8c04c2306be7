"""Native tool calls in the emulator: which tool is the shell, and what a sim lane calls.

Invariant: a request that offers a shell-like tool (found by name and by the
schema of its ``command`` field, or Codex's ``cmd``) and whose conversation does not end with a
tool result is answered with exactly one call of that tool, whose arguments
are ``{"command": C}`` (or ``{"cmd": C}``; ``C`` the command the race's own extractor finds in
the reply the lane would have written, or ``["bash", "-lc", C]`` when the
schema wants an argv list); a conversation that ends with a tool result is
answered with ``CLOSING_TEXT``. The argument text streams as output tokens on
channel ``tool``, paced and counted like any other token.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from thunderdome.race.extract import extract_command
from thunderdome.sim.replies import Reply, choose_reply

FINISH_TOOL = "tool_calls"
"""The finish reason of a reply that ends in a tool call (each encoder maps it
to its protocol's word)."""
SHELL_NAMES = ("bash", "shell", "Bash", "execute_command", "exec_command")
"""Tool names agents give their shell tool (Codex, Claude Code, OpenCode, Cline, ...)."""
COMMAND_FIELDS = ("command", "cmd")
"""Argument names a shell tool takes its command in."""
CLOSING_TEXT = "Done: the command ran. That should settle it."
"""The answer after a tool result."""


@dataclass(frozen=True)
class ShellTool:
    """The tool a sim lane calls: its name, and whether ``command`` is an argv list."""

    name: str
    argv: bool = False
    field: str = "command"
    """The argument the command goes in (``command``; Codex's ``exec_command`` says ``cmd``)."""


@dataclass(frozen=True)
class ToolCall:
    """One call: the tool's name and its arguments, as an object and as the JSON text streamed."""

    name: str
    input: dict[str, Any]
    arguments: str
    id_hex: str = field(default_factory=lambda: secrets.token_hex(12))
    """Random part of the protocol's call ids (``call_…``, ``toolu_…``, ``fc_…``)."""


def _schema_of(protocol: str, tool: Mapping[str, Any]) -> tuple[str | None, Any]:
    """(name, parameters schema) of one offered tool, as each protocol spells it."""
    if protocol in ("openai", "ollama"):
        fn = tool.get("function")
        fn = fn if isinstance(fn, Mapping) else {}
        return fn.get("name"), fn.get("parameters")
    if protocol == "anthropic":
        kind = tool.get("type")
        if isinstance(kind, str) and kind.startswith("bash_"):  # the built-in bash tool: {"command": str}
            return tool.get("name"), {"properties": {"command": {"type": "string"}}}
        return tool.get("name"), tool.get("input_schema")
    if tool.get("type") != "function":  # responses
        return None, None
    return tool.get("name"), tool.get("parameters")


def _command_field(schema: Any) -> tuple[str, str] | None:
    """(field, ``string`` | ``array``) of a schema whose command property
    (``COMMAND_FIELDS``, first found) is one of them."""
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    for name in COMMAND_FIELDS:
        command = props.get(name) if isinstance(props, Mapping) else None
        kind = command.get("type") if isinstance(command, Mapping) else None
        if kind in ("string", "array"):
            return name, kind
    return None


def find_shell_tool(protocol: str, tools: Any) -> ShellTool | None:
    """The offered tool a shell command goes to: a well-known shell name with a
    ``command`` field first, else any tool with a ``command`` field; else None."""
    if not isinstance(tools, list):
        return None
    fits: list[tuple[bool, ShellTool]] = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        name, schema = _schema_of(protocol, tool)
        command = _command_field(schema)
        if isinstance(name, str) and name and command is not None:
            fits.append((name in SHELL_NAMES, ShellTool(name, argv=command[1] == "array", field=command[0])))
    named = [t for known, t in fits if known]
    return (named or [t for _, t in fits] or [None])[0]


def call_for(tool: ShellTool, reply_text: str | None) -> ToolCall | None:
    """The call that runs the command in ``reply_text`` (None: no command in it)."""
    command = extract_command(reply_text) if reply_text else None
    if not command:
        return None
    value: Any = ["bash", "-lc", command] if tool.argv else command
    args = {tool.field: value}
    return ToolCall(tool.name, args, json.dumps(args, ensure_ascii=False))


class ToolCallReply:
    """A ``Reply`` whose answer is one tool call's argument text: the same
    reasoning, then the arguments on channel ``tool``; ``finish_reason`` is
    ``tool_calls`` when the arguments are complete, ``length`` when cut."""

    def __init__(self, inner: Reply, call: ToolCall, *, wrong: bool) -> None:
        self.inner = inner
        self.call = call
        self.wrong = wrong
        self.finish_reason: str | None = None

    @property
    def made(self) -> int:
        return self.inner.made

    def tokens(self) -> Iterator[tuple[str, str, bool]]:
        for text, channel, last in self.inner.tokens():
            if last:
                self.finish_reason = self._finish()
            yield text, "tool" if channel == "answer" else channel, last
        self.finish_reason = self._finish()

    def _finish(self) -> str | None:
        inner = self.inner.finish_reason
        return FINISH_TOOL if inner == "stop" else inner


def choose_answer(
    *,
    shell_tool: ShellTool | None,
    after_tool_result: bool,
    table_reply: str | None,
    **choice: Any,
) -> Reply | ToolCallReply:
    """What a request is answered with. ``choice`` are ``choose_reply``'s
    arguments (``reply``, ``wrong_reply``, ``wrong_rate``, ``seed``, ...).
    After a tool result: ``CLOSING_TEXT``. Offered a shell tool: a call of it
    with the command of the reply that would have been written (the wrong one
    when the seeded draw says so). Else the reply itself."""
    if after_tool_result:
        return choose_reply(**{**choice, "reply": CLOSING_TEXT, "wrong_reply": None}, table_reply=table_reply)
    spoken = choose_reply(**choice, table_reply=table_reply)
    if shell_tool is None:
        return spoken
    if spoken.wrong:
        source = choice["wrong_reply"]
    elif choice["reply"] is not None:
        source = choice["reply"]
    else:
        source = table_reply if choice["tokens"] is None else None
    call = call_for(shell_tool, source)
    if call is None:
        return spoken
    inner = choose_reply(**{**choice, "reply": call.arguments, "wrong_reply": None}, table_reply=None)
    return ToolCallReply(inner, call, wrong=spoken.wrong)


__all__ = [
    "CLOSING_TEXT",
    "FINISH_TOOL",
    "SHELL_NAMES",
    "ShellTool",
    "ToolCall",
    "ToolCallReply",
    "call_for",
    "choose_answer",
    "find_shell_tool",
]
