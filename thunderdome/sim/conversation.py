"""What a chat request says, read the same way for all four protocols.

Invariant: ``read(protocol, body)`` looks only at the body and returns the few
facts the emulator answers from: the prompt's size in tokens, the last user
message's text (the reply table's key), whether the conversation ends with a
tool result, and the shell tool offered (``tools.find_shell_tool``). It
raises ValueError only for a Responses ``input`` that is not a string or a
list of items, since the other protocols' messages were always taken leniently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from thunderdome.sim.replies import tokenize
from thunderdome.sim.tools import ShellTool, find_shell_tool

PER_MESSAGE_TOKENS = 3
"""Chat-template overhead counted per message."""


@dataclass(frozen=True)
class Conversation:
    prompt_tokens: int
    last_user: str
    after_tool_result: bool
    """The last message is a tool's result (``role: tool``, a ``tool_result``
    block, a ``function_call_output`` item): time for the closing text."""
    shell_tool: ShellTool | None


def _texts(parts: list[Any]) -> str:
    return "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def text_of(content: Any) -> str:
    """Text of a message content: a string, or parts with ``text``; an
    Anthropic ``tool_result`` part adds its own content (one level deep)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    out = []
    for p in content:
        if not isinstance(p, dict):
            continue
        inner = p.get("content") if p.get("type") == "tool_result" else None
        if isinstance(inner, str):
            out.append(inner)
        elif isinstance(inner, list):
            out.append(_texts(inner))
        elif isinstance(p.get("text"), str):
            out.append(p["text"])
    return "".join(out)


def _is_tool_result(protocol: str, message: Mapping[str, Any]) -> bool:
    if protocol == "anthropic":
        content = message.get("content")
        return isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") == "tool_result" for p in content
        )
    return message.get("role") == "tool"


def _responses_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Responses ``input`` as chat-like messages (``function_call_output`` as ``role: tool``)."""
    raw = body.get("input")
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ValueError("input must be a string or a list of input items")
    messages = []
    for item in raw:
        kind = item.get("type", "message")
        if kind == "function_call_output":
            messages.append({"role": "tool", "content": text_of(item.get("output"))})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": text_of(item.get("arguments"))})
        elif kind == "message":
            messages.append({"role": item.get("role"), "content": item.get("content")})
    return messages


def read(protocol: str, body: Mapping[str, Any]) -> Conversation:
    """The facts of one request body. Raises ValueError (a bad Responses input)."""
    if protocol == "responses":
        messages: Any = _responses_messages(body)
        system = body.get("instructions")
    else:
        messages = body.get("messages")
        system = body.get("system")
    messages = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    texts = [text_of(system)]
    last_user = ""
    for m in messages:
        text = text_of(m.get("content"))
        texts.append(text)
        if m.get("role") == "user" and not _is_tool_result(protocol, m):
            last_user = text
    count = sum(len(tokenize(t)) for t in texts) + PER_MESSAGE_TOKENS * len(messages)
    return Conversation(
        prompt_tokens=max(1, count),
        last_user=last_user,
        after_tool_result=bool(messages) and _is_tool_result(protocol, messages[-1]),
        shell_tool=find_shell_tool(protocol, body.get("tools")),
    )


__all__ = ["Conversation", "read", "text_of"]
