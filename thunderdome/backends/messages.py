"""A request's neutral messages and tools, in each protocol's shape.

Invariant: pure functions of ``ChatRequest.messages`` / ``ChatRequest.tools``
(see ``backends.base.ChatRequest`` for the neutral shape); the input is never
changed. Plain messages come out as they did before tools existed (OpenAI
and Ollama: as they went in; Anthropic and Responses: role and content, the
system messages where the protocol wants them). Arguments travel as JSON text in the neutral shape;
protocols that want an object (Anthropic, Ollama) get it parsed, and
arguments that are not a JSON object are a ``BackendError`` before anything
is sent. An assistant message's ``signed_reasoning`` goes back only where the
protocol signs reasoning (Anthropic: ``thinking`` / ``redacted_thinking``
blocks, first, text and signature exactly as they came); the others drop it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from thunderdome.backends.base import BackendError, ToolSpec


def arguments_object(call: dict[str, Any]) -> dict[str, Any]:
    """A neutral tool call's arguments as an object (empty text: ``{}``)."""
    text = call.get("arguments") or ""
    if isinstance(text, dict):
        return dict(text)
    try:
        value = json.loads(text) if str(text).strip() else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise BackendError(f"tool call {call.get('name')!r}: its arguments are not a JSON object")
    return value


def _calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = message.get("tool_calls")
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


def _without_signed(message: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``message`` for a protocol that signs no reasoning."""
    out = dict(message)
    out.pop("signed_reasoning", None)
    return out


def _signed_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Anthropic ``thinking`` / ``redacted_thinking`` blocks of a neutral assistant message."""
    blocks = message.get("signed_reasoning")
    out: list[dict[str, Any]] = []
    for b in blocks if isinstance(blocks, list) else []:
        if isinstance(b, dict) and b.get("redacted"):
            out.append({"type": "redacted_thinking", "data": b.get("signature", "")})
        elif isinstance(b, dict):
            out.append({"type": "thinking", "thinking": b.get("text", ""), "signature": b.get("signature", "")})
    return out


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    return {"role": message.get("role", "user"), "content": message.get("content") or ""}


def function_tools(tools: Iterable[ToolSpec]) -> list[dict[str, Any]]:
    """OpenAI Chat Completions and Ollama: ``{"type": "function", "function": {...}}``."""
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


@dataclass(frozen=True)
class _FunctionWire:
    """Where OpenAI Chat Completions and Ollama differ; their messages are
    otherwise one shape (a tool result is a ``tool`` message, an assistant's
    calls are its ``tool_calls``)."""

    result_key: str
    """The key of a tool result that names the call it answers."""
    result_from: str
    """The neutral key that value comes from (the call's id, or the tool's name)."""
    call: Callable[[dict[str, Any]], dict[str, Any]]
    """One neutral tool call in the protocol's shape."""
    null_content: bool
    """An assistant message with calls and no text says ``content: null``."""


_OPENAI = _FunctionWire(
    result_key="tool_call_id",
    result_from="tool_call_id",
    call=lambda c: {
        "id": c.get("id", ""),
        "type": "function",
        "function": {"name": c.get("name", ""), "arguments": c.get("arguments") or "{}"},
    },
    null_content=True,
)
_OLLAMA = _FunctionWire(
    result_key="tool_name",
    result_from="name",
    call=lambda c: {"function": {"name": c.get("name", ""), "arguments": arguments_object(c)}},
    null_content=False,
)


def _function_messages(messages: Iterable[dict[str, Any]], wire: _FunctionWire) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.get("role") == "tool":
            out.append({"role": "tool", wire.result_key: m.get(wire.result_from, ""), "content": m.get("content") or ""})
            continue
        message = _without_signed(m)
        calls = _calls(m)
        if calls:
            if wire.null_content:
                message["content"] = m.get("content") or None
            message["tool_calls"] = [wire.call(c) for c in calls]
        out.append(message)
    return out


def openai_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI Chat Completions: arguments as JSON text, results by call id."""
    return _function_messages(messages, _OPENAI)


def ollama_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama: arguments as an object, results by tool name."""
    return _function_messages(messages, _OLLAMA)


def anthropic_tools(tools: Iterable[ToolSpec]) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]


def anthropic_messages(messages: Iterable[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """``(system, messages)``: system messages joined into ``system``; tool
    results become ``tool_result`` blocks of one user message (consecutive
    results share it, as the API wants)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "system":
            system.append(m.get("content") or "")
        elif role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.get("tool_call_id", ""), "content": m.get("content") or ""}
            last = out[-1] if out else None
            if last is not None and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif _calls(m) or _signed_blocks(m):
            blocks = _signed_blocks(m)  # first: thinking precedes the text and the tool_use it led to
            blocks += [{"type": "text", "text": m["content"]}] if m.get("content") else []
            blocks += [
                {"type": "tool_use", "id": c.get("id", ""), "name": c.get("name", ""), "input": arguments_object(c)}
                for c in _calls(m)
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append(_plain(m))
    return "\n\n".join(system), out


def responses_tools(tools: Iterable[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters} for t in tools]


def responses_input(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Responses API's ``input`` items: messages, then an assistant's
    calls as ``function_call`` items, results as ``function_call_output``. An
    assistant's text is a typed ``message`` item with ``output_text`` (the
    shape the API echoes; llama-server refuses the untyped short form)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.get("role") == "tool":
            out.append({"type": "function_call_output", "call_id": m.get("tool_call_id", ""), "output": m.get("content") or ""})
            continue
        calls = _calls(m)
        if m.get("role") == "assistant" and m.get("content"):  # llama-server refuses an assistant item without its type
            out.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": m["content"]}]})
        elif m.get("content") or not calls:
            out.append(_plain(m))
        out += [
            {"type": "function_call", "call_id": c.get("id", ""), "name": c.get("name", ""), "arguments": c.get("arguments") or "{}"}
            for c in calls
        ]
    return out


__all__ = [
    "anthropic_messages",
    "anthropic_tools",
    "arguments_object",
    "function_tools",
    "ollama_messages",
    "openai_messages",
    "responses_input",
    "responses_tools",
]
